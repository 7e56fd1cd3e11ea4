// The identity-provider seam: the default "<hostname>:<device>", and Agent::Start taking its
// identity from a provider (or failing with the provider's error); ResolvePodIdentity: identity
// and rank hint from the flags, else the pod's environment.
#include "agent/identity.h"

#include <map>
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

// A fake environment for ResolvePodIdentity.
EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(PodIdentityTest, PodOrdinal_IsTheDigitsAfterTheLastDash) {
  EXPECT_EQ(PodOrdinal("cohort-agent-12"), 12);
  EXPECT_EQ(PodOrdinal("cohort-agent-0"), 0);
  EXPECT_EQ(PodOrdinal("lws-0-3"), 3) << "a LeaderWorkerSet worker: <group>-<worker>";
  EXPECT_EQ(PodOrdinal("cohort-agent"), std::nullopt);
  EXPECT_EQ(PodOrdinal("cohort-agent-"), std::nullopt);
  EXPECT_EQ(PodOrdinal("cohort-agent-x7"), std::nullopt);
  EXPECT_EQ(PodOrdinal("cohort-agent-+7"), std::nullopt);
  EXPECT_EQ(PodOrdinal("agent7"), std::nullopt);
  EXPECT_EQ(PodOrdinal("cohort-agent-99999999999"), std::nullopt) << "overflows an int";
}

TEST(PodIdentityTest, NothingSet_DefaultIdentity_NoHint) {
  absl::StatusOr<PodIdentity> pod = ResolvePodIdentity({}, Env({}));
  ASSERT_THAT(pod, IsOk());
  EXPECT_EQ(pod->identity, "");
  EXPECT_EQ(pod->identity_source, "default");
  EXPECT_EQ(pod->rank_hint, std::nullopt);
  EXPECT_EQ(pod->rank_hint_source, "none");
  EXPECT_EQ(pod->pod_namespace, "");
}

TEST(PodIdentityTest, PodNameOnly_IdentityIsThePodName_HintItsOrdinal) {
  absl::StatusOr<PodIdentity> pod =
      ResolvePodIdentity({}, Env({{"POD_NAME", "cohort-agent-12"}, {"POD_NAMESPACE", "training"}}));
  ASSERT_THAT(pod, IsOk());
  EXPECT_EQ(pod->identity, "cohort-agent-12") << "the bare pod name, no namespace";
  EXPECT_EQ(pod->identity_source, "env POD_NAME");
  EXPECT_EQ(pod->rank_hint, 12);
  EXPECT_EQ(pod->rank_hint_source, "POD_NAME's ordinal suffix");
  EXPECT_EQ(pod->pod_namespace, "training");
}

TEST(PodIdentityTest, PodNameWithoutSuffix_NoHint) {
  absl::StatusOr<PodIdentity> pod = ResolvePodIdentity({}, Env({{"POD_NAME", "trainer"}}));
  ASSERT_THAT(pod, IsOk());
  EXPECT_EQ(pod->identity, "trainer");
  EXPECT_EQ(pod->rank_hint, std::nullopt);
  EXPECT_EQ(pod->rank_hint_source, "none");
}

TEST(PodIdentityTest, IndexVariables_WinOverTheSuffix_InTheirOrder) {
  std::map<std::string, std::string> env = {{"POD_NAME", "cohort-agent-1"},
                                            {"LWS_WORKER_INDEX", "4"}};
  absl::StatusOr<PodIdentity> pod = ResolvePodIdentity({}, Env(env));
  ASSERT_THAT(pod, IsOk());
  EXPECT_EQ(pod->rank_hint, 4);
  EXPECT_EQ(pod->rank_hint_source, "env LWS_WORKER_INDEX");

  env["POD_INDEX"] = "3";
  pod = ResolvePodIdentity({}, Env(env));
  ASSERT_THAT(pod, IsOk());
  EXPECT_EQ(pod->rank_hint, 3);
  EXPECT_EQ(pod->rank_hint_source, "env POD_INDEX");

  env["COHORT_POD_INDEX"] = "2";
  pod = ResolvePodIdentity({}, Env(env));
  ASSERT_THAT(pod, IsOk());
  EXPECT_EQ(pod->rank_hint, 2);
  EXPECT_EQ(pod->rank_hint_source, "env COHORT_POD_INDEX");
}

TEST(PodIdentityTest, EmptyVariables_CountAsUnset) {
  absl::StatusOr<PodIdentity> pod =
      ResolvePodIdentity({}, Env({{"POD_NAME", ""}, {"COHORT_POD_INDEX", ""}, {"POD_INDEX", "5"}}));
  ASSERT_THAT(pod, IsOk());
  EXPECT_EQ(pod->identity_source, "default");
  EXPECT_EQ(pod->rank_hint, 5);
  EXPECT_EQ(pod->rank_hint_source, "env POD_INDEX");
}

TEST(PodIdentityTest, Flags_WinOverTheEnvironment) {
  PodIdentityFlags flags;
  flags.identity = "explicit";
  flags.rank_hint = 6;
  absl::StatusOr<PodIdentity> pod = ResolvePodIdentity(
      flags, Env({{"POD_NAME", "cohort-agent-1"}, {"POD_INDEX", "1"}, {"COHORT_POD_INDEX", "1"}}));
  ASSERT_THAT(pod, IsOk());
  EXPECT_EQ(pod->identity, "explicit");
  EXPECT_EQ(pod->identity_source, "flag --identity");
  EXPECT_EQ(pod->rank_hint, 6);
  EXPECT_EQ(pod->rank_hint_source, "flag --rank-hint");
}

TEST(PodIdentityTest, RankHintMinusOne_ExplicitlyNone_EnvIgnored) {
  PodIdentityFlags flags;
  flags.rank_hint = -1;
  absl::StatusOr<PodIdentity> pod =
      ResolvePodIdentity(flags, Env({{"POD_NAME", "cohort-agent-1"}, {"POD_INDEX", "1"}}));
  ASSERT_THAT(pod, IsOk());
  EXPECT_EQ(pod->identity, "cohort-agent-1");
  EXPECT_EQ(pod->rank_hint, std::nullopt);
  EXPECT_EQ(pod->rank_hint_source, "flag --rank-hint");
}

TEST(PodIdentityTest, BadIndex_IsAnErrorNamingTheVariableAndTheFix) {
  for (const char* bad : {"abc", "-1", "3x", " 3", "+3", "99999999999"}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(ResolvePodIdentity({}, Env({{"POD_NAME", "cohort-agent-1"}, {"POD_INDEX", bad}})),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("$POD_INDEX"), HasSubstr("non-negative integer"),
                               HasSubstr("--rank-hint"))));
  }
  EXPECT_THAT(ResolvePodIdentity({}, Env({{"LWS_WORKER_INDEX", "two"}})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("$LWS_WORKER_INDEX")));
  // A bad variable that loses to a good one earlier in the order is not read.
  EXPECT_THAT(ResolvePodIdentity({}, Env({{"COHORT_POD_INDEX", "2"}, {"POD_INDEX", "abc"}})),
              IsOk());
  // A bad first one does not fall through to the next.
  EXPECT_THAT(ResolvePodIdentity({}, Env({{"COHORT_POD_INDEX", "abc"}, {"POD_INDEX", "2"}})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("$COHORT_POD_INDEX")));
}

TEST(PodIdentityTest, BadIndex_IrrelevantUnderTheFlag) {
  PodIdentityFlags flags;
  flags.rank_hint = 2;
  absl::StatusOr<PodIdentity> pod = ResolvePodIdentity(flags, Env({{"POD_INDEX", "abc"}}));
  ASSERT_THAT(pod, IsOk());
  EXPECT_EQ(pod->rank_hint, 2);
}

}  // namespace
}  // namespace cohort::agent
