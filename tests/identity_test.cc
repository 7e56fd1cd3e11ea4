// The identity-provider seam: the default "<hostname>:<device>", and Agent::Start taking its
// identity from a provider (or failing with the provider's error).
#include "agent/identity.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "coordinator/server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/comm/status_matchers.h"

namespace cohort::agent {
namespace {

using ::cohort::testing::IsOk;
using ::cohort::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

// What a Kubernetes provider would be: an identity from the environment, or an error.
class FixedIdentity final : public IdentityProvider {
 public:
  explicit FixedIdentity(absl::StatusOr<std::string> identity) : identity_(std::move(identity)) {}
  absl::StatusOr<std::string> Identity() override {
    ++calls;
    return identity_;
  }
  int calls = 0;

 private:
  const absl::StatusOr<std::string> identity_;
};

TEST(IdentityTest, HostnameDeviceIdentity_IsHostColonDevice) {
  EXPECT_EQ(*HostnameDeviceIdentity(3).Identity(), absl::StrCat(LocalHostname(), ":3"));
  EXPECT_EQ(*HostnameDeviceIdentity(-1).Identity(), absl::StrCat(LocalHostname(), ":0"))
      << "a CPU-only agent is device 0";
  EXPECT_FALSE(LocalHostname().empty());
}

TEST(IdentityTest, Start_ProviderError_IsReturnedBeforeAnyJoin) {
  AgentOptions options;
  auto provider =
      std::make_shared<FixedIdentity>(absl::FailedPreconditionError("POD_NAME is not set"));
  options.identity_provider = provider;

  EXPECT_THAT(Agent::Start(options),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("agent identity"), HasSubstr("POD_NAME is not set"))));
  EXPECT_EQ(provider->calls, 1);
}

TEST(IdentityTest, Start_JoinsUnderTheProvidersIdentity) {
  auto server = coordinator::CoordinatorServer::Start({});
  ASSERT_THAT(server, IsOk());
  AgentOptions options;
  options.channel = (*server)->InProcessChannel();
  options.backends = {"none"};
  options.identity_provider = std::make_shared<FixedIdentity>(std::string("pod-7:0"));

  absl::StatusOr<std::unique_ptr<Agent>> agent = Agent::Start(options);
  ASSERT_THAT(agent, IsOk());
  EXPECT_EQ((*agent)->options().identity, "pod-7:0");
  absl::StatusOr<v1::PoolState> state = (*agent)->client().GetState("default");
  ASSERT_THAT(state, IsOk());
  ASSERT_EQ(state->members_size(), 1);
  EXPECT_EQ(state->members(0).identity(), "pod-7:0");

  (*agent)->Stop();
  (*server)->Shutdown();
}

TEST(IdentityTest, Start_ExplicitIdentity_WinsOverTheProvider) {
  auto server = coordinator::CoordinatorServer::Start({});
  ASSERT_THAT(server, IsOk());
  AgentOptions options;
  options.channel = (*server)->InProcessChannel();
  options.backends = {"none"};
  options.identity = "explicit:1";
  auto provider = std::make_shared<FixedIdentity>(std::string("pod-7:0"));
  options.identity_provider = provider;

  absl::StatusOr<std::unique_ptr<Agent>> agent = Agent::Start(options);
  ASSERT_THAT(agent, IsOk());
  EXPECT_EQ((*agent)->options().identity, "explicit:1");
  EXPECT_EQ(provider->calls, 0);

  (*agent)->Stop();
  (*server)->Shutdown();
}

}  // namespace
}  // namespace cohort::agent
