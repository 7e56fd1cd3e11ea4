// ElasticDpState on its own: the first shrink remembers the full config, one grow-back at a time,
// the full config is handed over once when that teardown ends, and Reset forgets everything.
#include "coordinator/elastic_dp_state.h"

#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

ParallelConfig Dp(int64_t dp, int64_t tp = 2) {
  ParallelConfig c;
  c.data_parallel_size = dp;
  c.tensor_parallel_size = tp;
  c.world_size = dp * tp;
  return c;
}

TEST(ElasticDpState, NeverShrunk_NothingToGrowBackTo) {
  ElasticDpState state;
  EXPECT_FALSE(state.full_config().has_value());
  EXPECT_FALSE(state.ShouldGrow(1000));
  EXPECT_FALSE(state.FinishGrowing().has_value());
}

TEST(ElasticDpState, FirstShrink_IsRemembered_LaterShrinksKeepIt) {
  ElasticDpState state;
  state.Shrunk(Dp(4));
  state.Shrunk(Dp(3));
  ASSERT_TRUE(state.full_config().has_value());
  EXPECT_EQ(state.full_config()->data_parallel_size, 4);
  EXPECT_EQ(state.full_config()->world_size, 8);
}

TEST(ElasticDpState, ShouldGrow_OnlyWithAgentsForTheFullConfig_AndNotTwice) {
  ElasticDpState state;
  state.Shrunk(Dp(4));  // world 8
  EXPECT_FALSE(state.ShouldGrow(7));
  EXPECT_TRUE(state.ShouldGrow(8));
  state.StartGrowing();
  EXPECT_TRUE(state.growing());
  EXPECT_FALSE(state.ShouldGrow(8));
}

TEST(ElasticDpState, FinishGrowing_HandsTheFullConfigOverOnce) {
  ElasticDpState state;
  state.Shrunk(Dp(4));
  state.StartGrowing();
  std::optional<ParallelConfig> full = state.FinishGrowing();
  ASSERT_TRUE(full.has_value());
  EXPECT_EQ(full->data_parallel_size, 4);
  EXPECT_FALSE(state.growing());
  EXPECT_FALSE(state.full_config().has_value());
  EXPECT_FALSE(state.FinishGrowing().has_value());
}

TEST(ElasticDpState, TeardownThatIsNotAGrowBack_ChangesNothing) {
  ElasticDpState state;
  state.Shrunk(Dp(4));
  EXPECT_FALSE(state.FinishGrowing().has_value());
  ASSERT_TRUE(state.full_config().has_value());
  EXPECT_EQ(state.full_config()->data_parallel_size, 4);
}

TEST(ElasticDpState, Reset_ForgetsTheFullConfigAndAGrowBack) {
  ElasticDpState state;
  state.Shrunk(Dp(4));
  state.StartGrowing();
  state.Reset();
  EXPECT_FALSE(state.growing());
  EXPECT_FALSE(state.full_config().has_value());
  EXPECT_FALSE(state.FinishGrowing().has_value());
  state.Shrunk(Dp(2));
  EXPECT_EQ(state.full_config()->data_parallel_size, 2);
}

}  // namespace
}  // namespace cohort::coordinator
