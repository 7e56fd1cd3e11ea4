// Authorizer: decides whether a Caller may do an Action on a pool. The Coordinator asks it at
// the door of every agent and admin entry point, before any state is read or changed, so a
// refusal has no effect. The default (AllowAll) allows everything: today's behaviour. Issue 11's
// roles plug in here: e.g. an authorizer that maps authenticated identities to roles ("agent"
// may Join/Session/Store in its pools, "operator" may also Initialize/Destroy/DeletePool,
// "viewer" only Read) and refuses unauthenticated callers.
#ifndef COHORT_COORDINATOR_AUTHORIZER_H_
#define COHORT_COORDINATOR_AUTHORIZER_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "coordinator/caller.h"

namespace cohort::coordinator {

enum class Action {
  kJoin,        // Join, and Attach of the session it got
  kStore,       // KvSet, KvGet
  kInitialize,  // Initialize
  kDestroy,     // Destroy
  kCheck,       // Check
  kDeletePool,  // DeletePool
  kRead,        // GetState, WaitForState, ListPools, GetEvents, Watch
};

std::string_view ActionName(Action action);

class Authorizer {
 public:
  virtual ~Authorizer() = default;
  // OK if `caller` may do `action` on `pool` (the request's pool, "default" when it names none;
  // empty for a Watch of every pool). Errors: PERMISSION_DENIED (the caller may not: fix the
  // role, not the request); UNAUTHENTICATED (the action needs a proven identity). Called with
  // no coordinator lock held; must be thread-safe and quick. Must allow Caller::InProcess():
  // the coordinator's own calls (a long-poll's answer) and embedded users come as that caller.
  virtual absl::Status Authorize(const Caller& caller, Action action,
                                 const std::string& pool) const = 0;
};

// Lets every caller do everything.
class AllowAll final : public Authorizer {
 public:
  absl::Status Authorize(const Caller&, Action, const std::string&) const override {
    return absl::OkStatus();
  }
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_AUTHORIZER_H_
