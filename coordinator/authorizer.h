// Authorizer: decides whether a Caller may do an Action on a pool. The Coordinator asks it at
// the door of every agent and admin entry point, before any state is read or changed, so a
// refusal has no effect. The default (AllowAll) allows everything: today's behaviour.
// PolicyAuthorizer (policy.h) maps callers to principals with roles (agent, operator, viewer)
// through a policy file; it also binds an agent's Join identity and its session to its
// credential (Identify, AuthorizeJoinIdentity) and makes the rendezvous store require a session
// (RequiresStoreSession).
#ifndef COHORT_COORDINATOR_AUTHORIZER_H_
#define COHORT_COORDINATOR_AUTHORIZER_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
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

// Lower case, for logs and metric labels: "join", "delete-pool".
std::string_view ActionName(Action action);
// As people read it in refusals and audit lines: "Join", "DeletePool", "Read".
absl::string_view ActionTitle(Action action);
// The least role that may do `action`: "agent" (Join, Store), "operator" (Initialize, Destroy,
// Check, DeletePool) or "viewer" (Read; operators may read too).
absl::string_view RoleNeeded(Action action);

// Who a caller is under the authorizer's rules: the principal's name and role ("agent",
// "operator", "viewer"); empty when nothing matched (or there are no rules). `subject` tells
// apart callers of one principal whose certificate pattern ends in '*': the name, '/', and what
// the '*' matched ("agents/agent-3"); otherwise the name. Sessions are bound to the subject.
struct Principal {
  std::string name;
  std::string role;
  std::string subject;
  bool matched() const { return !name.empty(); }
};

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

  // The principal `caller` is (for audit lines, and to bind a session to the credential that
  // opened it). Default: none.
  virtual Principal Identify(const Caller& /*caller*/) const { return {}; }

  // OK if `caller` (already allowed Action::kJoin on `pool`) may join as agent `identity`.
  // PERMISSION_DENIED names the identities it may use. Default: any identity.
  virtual absl::Status AuthorizeJoinIdentity(const Caller& /*caller*/,
                                             const std::string& /*identity*/) const {
    return absl::OkStatus();
  }

  // Whether every store call from outside the process must name the caller's session (then the
  // store's membership and key-ownership rules always apply). Default: no (a store call that
  // names a session is checked; one that does not is served as before).
  virtual bool RequiresStoreSession() const { return false; }
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
