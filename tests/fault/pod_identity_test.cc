// Identity from the pod (issue 12): real cohort-agent processes given only the pod's environment
// (POD_NAME, POD_INDEX, no --identity / --rank-hint) join as the pod name at the pod's index, and
// pod N killed and started again gets rank N back.
#include <fstream>
#include <map>
#include <sstream>

#include "gmock/gmock.h"
#include "tests/cluster.h"

namespace cohort::testing {
namespace {

using ::testing::HasSubstr;

const ParallelConfig kConfig{.world_size = 4, .data_parallel_size = 2, .tensor_parallel_size = 2};
constexpr absl::Duration kDeadline = absl::Seconds(60);
// Heartbeats every 250 ms; a 10 s window that no busy machine misses.
const std::vector<std::string> kHeartbeats = {"--heartbeat-interval-ms", "250",
                                              "--heartbeat-misses", "40"};

// The pod environment of pod r: a StatefulSet pod's name; pod 3 also carries POD_INDEX (the
// pod-index label through the downward API) and a name without an ordinal.
std::vector<std::string> PodEnv(int r) {
  if (r == 3) return {"POD_NAME=trainer-pod", "POD_INDEX=3", "POD_NAMESPACE=ml"};
  return {absl::StrCat("POD_NAME=cohort-agent-", r), "POD_NAMESPACE=ml"};
}
std::string PodName(int r) { return r == 3 ? "trainer-pod" : absl::StrCat("cohort-agent-", r); }

// identity -> rank of the connected members.
std::map<std::string, int> Ranks(const v1::PoolState& s) {
  std::map<std::string, int> ranks;
  for (const v1::MemberState& m : s.members()) {
    if (m.connected()) ranks[m.identity()] = m.rank();
  }
  return ranks;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(PodIdentity, PodEnvOnly_IdentityIsThePodName_RankThePodIndex_RestartedPodGetsItsRankBack) {
  Cluster cluster(kHeartbeats);
  ASSERT_TRUE(cluster.ok());
  // Started in reverse: the rank comes from the pod, not from the order of arrival.
  for (int r = 3; r >= 0; --r) cluster.StartPodAgent(r, PodEnv(r));
  const std::map<std::string, int> expected = {
      {PodName(0), 0}, {PodName(1), 1}, {PodName(2), 2}, {PodName(3), 3}};
  absl::StatusOr<v1::PoolState> joined = cluster.WaitFor(
      [&](const v1::PoolState& s) { return Ranks(s).size() == expected.size(); }, kDeadline);
  ASSERT_TRUE(joined.ok()) << joined.status();

  ASSERT_TRUE(cluster.Initialize(kConfig).ok());
  absl::StatusOr<v1::PoolState> ready = cluster.WaitForPhase(v1::POOL_PHASE_READY, 1, kDeadline);
  ASSERT_TRUE(ready.ok()) << ready.status();
  ASSERT_EQ(ready->phase(), v1::POOL_PHASE_READY) << ready->error();
  EXPECT_EQ(Ranks(*ready), expected);
  ExpectReportsMatchLayout(*ready, *Layout::Build(kConfig));

  // Each value's source is logged.
  const std::string log0 = ReadFile(cluster.pod_agent_log(0));
  EXPECT_THAT(log0, HasSubstr("identity cohort-agent-0 (from env POD_NAME)"));
  EXPECT_THAT(log0, HasSubstr("rank hint 0 (from POD_NAME's ordinal suffix)"));
  EXPECT_THAT(log0, HasSubstr("pod namespace ml"));
  EXPECT_THAT(ReadFile(cluster.pod_agent_log(3)), HasSubstr("rank hint 3 (from env POD_INDEX)"));

  // Pod 2 dies (kill -9) and its replacement starts with the same pod environment.
  cluster.agent(2).Signal(SIGKILL);
  ASSERT_TRUE(cluster.agent(2).WaitExit(absl::Seconds(10)).has_value());
  ASSERT_TRUE(
      cluster
          .WaitFor([](const v1::PoolState& s) { return s.phase() == v1::POOL_PHASE_DEGRADED; },
                   kDeadline)
          .ok());
  cluster.StartPodAgent(2, PodEnv(2));
  absl::StatusOr<v1::PoolState> again = cluster.WaitFor(
      [](const v1::PoolState& s) {
        return s.generation() > 1 && s.phase() == v1::POOL_PHASE_READY;
      },
      kDeadline);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(Ranks(*again), expected);
  ExpectReportsMatchLayout(*again, *Layout::Build(kConfig));
}

TEST(PodIdentity, FlagsWinOverThePodEnv) {
  Cluster cluster(kHeartbeats);
  ASSERT_TRUE(cluster.ok());
  cluster.StartPodAgent(0, {"POD_NAME=cohort-agent-5", "POD_INDEX=not-a-number"},
                        {"--identity", "explicit", "--rank-hint", "1"});
  absl::StatusOr<v1::PoolState> joined =
      cluster.WaitFor([](const v1::PoolState& s) { return Ranks(s).size() == 1; }, kDeadline);
  ASSERT_TRUE(joined.ok()) << joined.status();
  EXPECT_EQ(Ranks(*joined), (std::map<std::string, int>{{"explicit", 1}}));
  const std::string log = ReadFile(cluster.pod_agent_log(0));
  EXPECT_THAT(log, HasSubstr("identity explicit (from flag --identity)"));
  EXPECT_THAT(log, HasSubstr("rank hint 1 (from flag --rank-hint)"));
}

TEST(PodIdentity, BadPodIndex_ExitsTwo_NamingTheVariable) {
  Cluster cluster(kHeartbeats);
  ASSERT_TRUE(cluster.ok());
  cluster.StartPodAgent(0, {"POD_NAME=cohort-agent-5", "POD_INDEX=-1"});
  std::optional<int> status = cluster.agent(0).WaitExit(absl::Seconds(20));
  ASSERT_TRUE(status.has_value()) << "the agent did not exit";
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 2);
  const std::string log = ReadFile(cluster.pod_agent_log(0));
  EXPECT_THAT(log, HasSubstr("$POD_INDEX=\"-1\" is not a pod index"));
  EXPECT_THAT(log, HasSubstr("--rank-hint"));
}

}  // namespace
}  // namespace cohort::testing
