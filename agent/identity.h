// Agent identity: the stable name an agent joins its pool under (AgentOptions::identity). The
// coordinator keys membership by it: the same identity on a new incarnation is the same member
// coming back (it gets its rank back), and two live agents may not share one.
//
// IdentityProvider is the seam for where the name comes from. The default is
// "<hostname>:<device>"; a Kubernetes provider (pod name and the GPU it was given, from the
// downward API) implements the same interface and is passed in AgentOptions::identity_provider.
#ifndef COHORT_AGENT_IDENTITY_H_
#define COHORT_AGENT_IDENTITY_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace cohort::agent {

class IdentityProvider {
 public:
  virtual ~IdentityProvider() = default;
  // This agent's identity: the same across restarts of the agent on the same GPU, distinct from
  // every other agent of the pool. Called once, when the agent starts.
  // Errors: UNAVAILABLE when the source cannot be read now (starting again may help);
  //         FAILED_PRECONDITION when the environment does not carry an identity at all.
  virtual absl::StatusOr<std::string> Identity() = 0;
};

// "<hostname>:<device>" (device 0 for a CPU-only agent, device < 0), the default.
class HostnameDeviceIdentity final : public IdentityProvider {
 public:
  explicit HostnameDeviceIdentity(int device) : device_(device) {}
  // Never fails.
  absl::StatusOr<std::string> Identity() override;

 private:
  const int device_;
};

// This host's name (gethostname), "localhost" when it cannot be read.
std::string LocalHostname();

// Identity from the pod: what cohort-agent joins as when it runs in Kubernetes (a StatefulSet or
// a LeaderWorkerSet) and is given no --identity / --rank-hint. Pure: the environment comes in
// through `env`, so it is testable without touching the process's own.
//
// Precedence (the first that is set wins; an empty variable counts as unset):
//   identity:  --identity  >  $POD_NAME  >  "<hostname>:<device>" (the default provider)
//   rank hint: --rank-hint (any value; -1 = explicitly none)  >  $COHORT_POD_INDEX  >
//              $POD_INDEX (the apps.kubernetes.io/pod-index label through the downward API)  >
//              $LWS_WORKER_INDEX (LeaderWorkerSet)  >  the ordinal suffix of $POD_NAME
//              ("cohort-agent-7" -> 7; none without a numeric suffix)  >  none
//   namespace: $POD_NAMESPACE, logged only: the identity is the bare pod name (unique within the
//              StatefulSet's namespace, which is where the pool's agents run).
// The hostname's suffix is not used: outside Kubernetes a host named "node-3" is no rank hint.
// Only the value that wins is checked: a bad $POD_INDEX does not matter under --rank-hint.
struct PodIdentityFlags {
  std::optional<std::string> identity;  // --identity, when given (non-empty)
  std::optional<int> rank_hint;         // --rank-hint, when given (< 0: none)
};

struct PodIdentity {
  std::string identity;         // empty: the default provider's "<hostname>:<device>"
  std::string identity_source;  // "flag --identity", "env POD_NAME" or "default"
  std::optional<int> rank_hint;
  std::string rank_hint_source;  // "flag --rank-hint", "env POD_INDEX", "POD_NAME's ordinal
                                 // suffix", ..., or "none"
  std::string pod_namespace;     // $POD_NAMESPACE, empty when unset
};

// A variable's value, nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
// The process's environment (getenv).
EnvLookup ProcessEnv();

// Errors: INVALID_ARGUMENT naming the variable when the rank hint it would supply is not a
// non-negative integer (the message says how to fix it).
absl::StatusOr<PodIdentity> ResolvePodIdentity(const PodIdentityFlags& flags, const EnvLookup& env);

// The StatefulSet ordinal of a pod name: the digits after its last '-' ("cohort-agent-12" -> 12);
// nullopt when there are none, or they overflow an int.
std::optional<int> PodOrdinal(std::string_view pod_name);

}  // namespace cohort::agent

#endif  // COHORT_AGENT_IDENTITY_H_
