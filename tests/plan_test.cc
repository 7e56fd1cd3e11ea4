// BuildPlan on its own: a rank's plan carries its own group of each kind and the pool's settings.
#include "coordinator/plan.h"

#include "common/layout_proto.h"
#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

TEST(BuildPlan, OwnGroupOfEachKind_AndThePoolsSettings) {
  ParallelConfig config{.world_size = 4, .data_parallel_size = 2, .tensor_parallel_size = 2};
  absl::StatusOr<Layout> layout = Layout::Build(config);
  ASSERT_TRUE(layout.ok()) << layout.status();
  v1::InitOptions options;
  options.set_backend("nccl");
  const v1::Plan plan = BuildPlan("p", 3, config, *layout, options, absl::Seconds(60), 1);
  EXPECT_EQ(plan.pool(), "p");
  EXPECT_EQ(plan.generation(), 3);
  EXPECT_EQ(plan.rank(), 1);
  EXPECT_EQ(plan.world_size(), 4);
  EXPECT_EQ(plan.backend(), "nccl");
  EXPECT_EQ(plan.deadline_ms(), 60000);
  EXPECT_TRUE(plan.verify());
  ASSERT_EQ(plan.layout().group_sets_size(), static_cast<int>(layout->kinds().size()));
  for (const v1::GroupSet& set : plan.layout().group_sets()) {
    ASSERT_EQ(set.groups_size(), 1);
    const auto& ranks = set.groups(0).ranks();
    EXPECT_NE(std::find(ranks.begin(), ranks.end(), 1), ranks.end());
  }
}

TEST(BuildPlan, DefaultsGlooAndTheOptionsDeadlineWins) {
  ParallelConfig config{.world_size = 2, .data_parallel_size = 2};
  absl::StatusOr<Layout> layout = Layout::Build(config);
  ASSERT_TRUE(layout.ok()) << layout.status();
  v1::InitOptions options;
  options.set_deadline_ms(1234);
  options.set_verify(false);
  const v1::Plan plan = BuildPlan("p", 1, config, *layout, options, absl::Seconds(60), 0);
  EXPECT_EQ(plan.backend(), "gloo");
  EXPECT_EQ(plan.deadline_ms(), 1234);
  EXPECT_FALSE(plan.verify());
}

}  // namespace
}  // namespace cohort::coordinator
