// The seed-style API, embedded in N real processes (one per rank) on loopback with Gloo: each
// process initializes two configs in turn, checks every getter against the layout and runs
// all_reduce, all_gather, all_to_all, broadcast, send/recv and barrier on real groups.
#include <fstream>

#include "gmock/gmock.h"
#include "tests/cluster.h"

namespace cohort::testing {
namespace {

std::vector<std::unique_ptr<ChildProcess>> StartRanks(Cluster& cluster, int n,
                                                      const std::string& first,
                                                      const std::string& second) {
  std::vector<std::unique_ptr<ChildProcess>> ranks;
  for (int r = 0; r < n; ++r) {
    auto child = ChildProcess::Spawn({std::string(COHORT_BIN_DIR) + "/embedded_rank",
                                      cluster.address(), absl::StrCat(r), first, second},
                                     absl::StrCat(cluster.log_dir(), "/embedded-", r, ".log"));
    EXPECT_TRUE(child.has_value());
    if (child.has_value()) ranks.push_back(std::make_unique<ChildProcess>(std::move(*child)));
  }
  return ranks;
}

std::string ReadLog(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(ParallelState, FourRanks_TwoConfigs_GettersAndCollectives) {
  Cluster cluster;
  ASSERT_TRUE(cluster.ok());
  auto ranks = StartRanks(cluster, 4, "world=4,ulysses=2,ring=2", "world=4,cfg=2,pp=2");
  ASSERT_EQ(ranks.size(), 4u);
  for (size_t r = 0; r < ranks.size(); ++r) {
    std::optional<std::string> line = ranks[r]->ReadLine(absl::Seconds(60));
    EXPECT_EQ(line.value_or("<nothing>"), "ok")
        << ReadLog(absl::StrCat(cluster.log_dir(), "/embedded-", r, ".log"));
    std::optional<int> status = ranks[r]->WaitExit(absl::Seconds(30));
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "rank " << r;
  }
}

TEST(ParallelState, RanksDisagreeOnTheConfig_OneIsToldWhy) {
  Cluster cluster;
  ASSERT_TRUE(cluster.ok());
  auto a = StartRanks(cluster, 1, "world=2,tp=2", "world=2,tp=2");
  // The second rank asks for a different config once the first one's is in place.
  ASSERT_TRUE(
      cluster.WaitFor([](const v1::PoolState& s) { return s.has_config(); }, absl::Seconds(30))
          .ok());
  auto child = ChildProcess::Spawn({std::string(COHORT_BIN_DIR) + "/embedded_rank",
                                    cluster.address(), "1", "world=2,dp=2", "world=2,dp=2"},
                                   cluster.log_dir() + "/embedded-mismatch.log");
  ASSERT_TRUE(child.has_value());
  std::optional<int> status = child->WaitExit(absl::Seconds(60));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(WEXITSTATUS(*status), 1);
  EXPECT_THAT(ReadLog(cluster.log_dir() + "/embedded-mismatch.log"),
              ::testing::HasSubstr("every rank must pass the same config"));
}

}  // namespace
}  // namespace cohort::testing
