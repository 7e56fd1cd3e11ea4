// Elastic dp as pure functions: the smaller config and the old -> new rank map after losing
// ranks, and the grow-back decision.
#include "coordinator/elastic_dp.h"

#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

using ::testing::HasSubstr;

ParallelConfig Config(int64_t dp, int64_t tp, int64_t pp = 1) {
  ParallelConfig c;
  c.data_parallel_size = dp;
  c.tensor_parallel_size = tp;
  c.pipeline_parallel_size = pp;
  c.world_size = dp * tp * pp;
  return c;
}

TEST(ShrinkDp, OneRankOfAMiddleReplicaLost_ReplicaDropped_HigherRanksMoveDown) {
  // dp=3 x tp=2: replicas {0,1} {2,3} {4,5}; rank 3 lost.
  absl::StatusOr<DpShrink> shrink = ShrinkDp(Config(3, 2), {3});
  ASSERT_TRUE(shrink.ok()) << shrink.status();
  EXPECT_EQ(shrink->config.data_parallel_size, 2);
  EXPECT_EQ(shrink->config.world_size, 4);
  EXPECT_EQ(shrink->config.tensor_parallel_size, 2);
  EXPECT_EQ(shrink->replicas_dropped, 1);
  EXPECT_EQ(shrink->new_rank, (std::map<int, int>{{0, 0}, {1, 1}, {4, 2}, {5, 3}}));
}

TEST(ShrinkDp, SeveralRanksOfOneReplica_DropOneReplica) {
  absl::StatusOr<DpShrink> shrink = ShrinkDp(Config(4, 2), {0, 1});
  ASSERT_TRUE(shrink.ok()) << shrink.status();
  EXPECT_EQ(shrink->config.data_parallel_size, 3);
  EXPECT_EQ(shrink->replicas_dropped, 1);
  EXPECT_EQ(shrink->new_rank.count(0), 0u);
  EXPECT_EQ(shrink->new_rank.at(2), 0);
  EXPECT_EQ(shrink->new_rank.at(7), 5);
}

TEST(ShrinkDp, RanksOfTwoReplicas_DropBoth) {
  absl::StatusOr<DpShrink> shrink = ShrinkDp(Config(4, 1), {1, 3});
  ASSERT_TRUE(shrink.ok()) << shrink.status();
  EXPECT_EQ(shrink->config.data_parallel_size, 2);
  EXPECT_EQ(shrink->replicas_dropped, 2);
  EXPECT_EQ(shrink->new_rank, (std::map<int, int>{{0, 0}, {2, 1}}));
}

TEST(ShrinkDp, NothingMissing_SameConfigEveryRankInPlace) {
  absl::StatusOr<DpShrink> shrink = ShrinkDp(Config(2, 2), {});
  ASSERT_TRUE(shrink.ok()) << shrink.status();
  EXPECT_EQ(shrink->config.data_parallel_size, 2);
  EXPECT_EQ(shrink->replicas_dropped, 0);
  EXPECT_EQ(shrink->new_rank, (std::map<int, int>{{0, 0}, {1, 1}, {2, 2}, {3, 3}}));
}

TEST(ShrinkDp, EveryReplicaBroken_FailedPrecondition) {
  absl::StatusOr<DpShrink> shrink = ShrinkDp(Config(2, 2), {0, 3});
  EXPECT_EQ(shrink.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(shrink.status().message(), HasSubstr("no dp replica is complete"));
}

TEST(ShrinkDp, MissingRankOutsideTheWorld_InvalidArgument) {
  EXPECT_EQ(ShrinkDp(Config(2, 2), {4}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ShrinkDp(Config(2, 2), {-1}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ShrinkDp, InvalidConfig_InvalidArgument) {
  ParallelConfig bad = Config(2, 2);
  bad.world_size = 5;
  EXPECT_EQ(ShrinkDp(bad, {0}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CanGrowBack, EnoughAgentsForTheFullWorld) {
  EXPECT_FALSE(CanGrowBack(Config(3, 2), 5));
  EXPECT_TRUE(CanGrowBack(Config(3, 2), 6));
  EXPECT_TRUE(CanGrowBack(Config(3, 2), 7));
}

}  // namespace
}  // namespace cohort::coordinator
