// Agent identity: the stable name an agent joins its pool under (AgentOptions::identity). The
// coordinator keys membership by it: the same identity on a new incarnation is the same member
// coming back (it gets its rank back), and two live agents may not share one.
//
// IdentityProvider is the seam for where the name comes from. The default is
// "<hostname>:<device>"; a Kubernetes provider (pod name and the GPU it was given, from the
// downward API) implements the same interface and is passed in AgentOptions::identity_provider.
#ifndef COHORT_AGENT_IDENTITY_H_
#define COHORT_AGENT_IDENTITY_H_

#include <string>

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

}  // namespace cohort::agent

#endif  // COHORT_AGENT_IDENTITY_H_
