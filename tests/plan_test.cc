// BuildPlan on its own: a rank's plan carries its own group of each kind and the pool's settings,
// its groups listed or as runs (SetRanks / RanksOf).
#include "coordinator/plan.h"

#include "common/layout_proto.h"
#include "google/protobuf/text_format.h"
#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

using ::testing::HasSubstr;

TEST(BuildPlan, OwnGroupOfEachKind_AndThePoolsSettings) {
  ParallelConfig config{.world_size = 4, .data_parallel_size = 2, .tensor_parallel_size = 2};
  absl::StatusOr<Layout> layout = Layout::Build(config);
  ASSERT_TRUE(layout.ok()) << layout.status();
  v1::InitOptions options;
  options.set_backend("nccl");
  const v1::Plan plan = BuildPlan("p", 3, config, *layout, options, absl::Seconds(60), 1, false);
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
  const v1::Plan plan = BuildPlan("p", 1, config, *layout, options, absl::Seconds(60), 0, false);
  EXPECT_EQ(plan.backend(), "gloo");
  EXPECT_EQ(plan.deadline_ms(), 1234);
  EXPECT_FALSE(plan.verify());
}

// Every group of `layout`, listed and as runs, reads back as itself.
void ExpectRoundTrip(const Layout& layout) {
  for (GroupKind kind : layout.kinds()) {
    for (const RankList& ranks : layout.groups(kind)) {
      for (bool compact : {false, true}) {
        v1::RankGroup group;
        SetRanks(ranks, compact, &group);
        EXPECT_EQ(group.ranks_size() > 0, !compact);
        absl::StatusOr<RankList> back = RanksOf(group, layout.world_size());
        ASSERT_TRUE(back.ok()) << back.status();
        EXPECT_EQ(*back, ranks) << GroupKindName(kind) << (compact ? " as runs" : " listed");
      }
    }
  }
}

TEST(RankRuns, EveryGroupOfSeveralLayoutsReadsBackAsItself) {
  for (const ParallelConfig& config : {ParallelConfig{.world_size = 8,
                                      .data_parallel_size = 2,
                                      .tensor_parallel_size = 2,
                                      .pipeline_parallel_size = 2},
                                       ParallelConfig{.world_size = 16,
                                       .data_parallel_size = 2,
                                       .cfg_parallel_size = 2,
                                       .ulysses_degree = 2,
                                       .ring_degree = 2},
                                       ParallelConfig{.world_size = 24,
                                       .cfg_parallel_size = 2,
                                       .ulysses_degree = 3,
                                       .tensor_parallel_size = 2,
                                       .pipeline_parallel_size = 2},
                                       ParallelConfig{.world_size = 1}}) {
    absl::StatusOr<Layout> layout = Layout::Build(config);
    ASSERT_TRUE(layout.ok()) << layout.status();
    ExpectRoundTrip(*layout);
  }
}

TEST(RankRuns, EquallySpacedRanksAreOneRun) {
  RankList world(16384);
  for (int r = 0; r < 16384; ++r) world[r] = r;
  v1::RankGroup group;
  SetRanks(world, true, &group);
  ASSERT_EQ(group.compact().runs_size(), 1);
  EXPECT_EQ(group.compact().runs(0).first(), 0);
  EXPECT_EQ(group.compact().runs(0).count(), 16384);
  EXPECT_EQ(group.compact().runs(0).stride(), 1);
  SetRanks({3, 11, 19, 20, 40}, true, &group);
  ASSERT_EQ(group.compact().runs_size(), 2);
  EXPECT_EQ(group.compact().runs(0).ShortDebugString(), "first: 3 count: 3 stride: 8");
  EXPECT_EQ(group.compact().runs(1).ShortDebugString(), "first: 20 count: 2 stride: 20");
}

TEST(BuildPlan, RankRuns_AWorldOf16384FitsInAFewHundredBytes) {
  ParallelConfig config{.world_size = 16384, .data_parallel_size = 2048, .tensor_parallel_size = 8};
  absl::StatusOr<Layout> layout = Layout::Build(config);
  ASSERT_TRUE(layout.ok()) << layout.status();
  const v1::Plan listed = BuildPlan("p", 1, config, *layout, {}, absl::Seconds(60), 4097, false);
  const v1::Plan runs = BuildPlan("p", 1, config, *layout, {}, absl::Seconds(60), 4097, true);
  EXPECT_GT(listed.ByteSizeLong(), 16384u);  // the world group alone: 16,384 ranks
  EXPECT_LT(runs.ByteSizeLong(), 512u);
  ASSERT_EQ(runs.layout().group_sets_size(), listed.layout().group_sets_size());
  for (int i = 0; i < runs.layout().group_sets_size(); ++i) {
    const v1::RankGroup& g = runs.layout().group_sets(i).groups(0);
    EXPECT_EQ(g.ranks_size(), 0);
    absl::StatusOr<RankList> ranks = RanksOf(g, 16384);
    ASSERT_TRUE(ranks.ok()) << ranks.status();
    const v1::RankGroup& l = listed.layout().group_sets(i).groups(0);
    EXPECT_EQ(*ranks, RankList(l.ranks().begin(), l.ranks().end()));
    EXPECT_EQ(g.index(), l.index());
  }
}

// One builder for a whole generation, its groups built once and shared: every rank still gets its
// own groups, in the form it asked for, and the settings every plan shares.
TEST(PlanBuilder, EveryRankItsOwnGroupsInItsForm_SharedGroupsBuiltOnce) {
  ParallelConfig config{.world_size = 32,
                        .data_parallel_size = 2,
                        .cfg_parallel_size = 2,
                        .ulysses_degree = 2,
                        .tensor_parallel_size = 4};
  absl::StatusOr<Layout> layout = Layout::Build(config);
  ASSERT_TRUE(layout.ok()) << layout.status();
  v1::InitOptions options;
  options.set_backend("nccl");
  PlanBuilder builder("p", 7, config, *layout, options, absl::Seconds(30));
  for (int pass = 0; pass < 2; ++pass) {  // the second pass reads only built groups
    for (int r = 0; r < 32; ++r) {
      const bool runs = (r + pass) % 2 == 0;
      const v1::Plan plan = builder.Build(r, runs);
      EXPECT_EQ(plan.rank(), r);
      EXPECT_EQ(plan.pool(), "p");
      EXPECT_EQ(plan.generation(), 7);
      EXPECT_EQ(plan.world_size(), 32);
      EXPECT_EQ(plan.backend(), "nccl");
      EXPECT_EQ(plan.deadline_ms(), 30000);
      ASSERT_EQ(plan.layout().group_sets_size(), static_cast<int>(layout->kinds().size()));
      for (int k = 0; k < plan.layout().group_sets_size(); ++k) {
        const GroupKind kind = layout->kinds()[k];
        const v1::GroupSet& set = plan.layout().group_sets(k);
        EXPECT_EQ(set.kind(), ToProto(kind));
        ASSERT_EQ(set.groups_size(), 1);
        const v1::RankGroup& g = set.groups(0);
        EXPECT_EQ(g.has_compact(), runs) << "rank " << r << " kind " << k;
        EXPECT_EQ(g.ranks_size() > 0, !runs) << "rank " << r << " kind " << k;
        absl::StatusOr<RankList> ranks = RanksOf(g, 32);
        ASSERT_TRUE(ranks.ok()) << ranks.status();
        EXPECT_EQ(*ranks, layout->GroupOf(kind, r)) << "rank " << r << " kind " << k;
        EXPECT_EQ(g.index(), layout->GroupIndexOf(kind, r));
      }
    }
  }
}

// A malformed group is refused with what is wrong, and a run claiming billions of ranks
// allocates no more than the world.
TEST(RankRuns, MalformedGroupsAreRefusedNamingTheFault) {
  auto error_of = [](const std::string& text) {
    v1::RankGroup group;
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &group)) << text;
    absl::StatusOr<RankList> ranks = RanksOf(group, 8);
    EXPECT_FALSE(ranks.ok()) << text;
    EXPECT_EQ(ranks.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(ranks.status().message());
  };
  EXPECT_THAT(error_of(""), HasSubstr("no ranks"));
  EXPECT_THAT(error_of("ranks: 1 compact { runs { first: 2 count: 1 stride: 1 } }"),
              HasSubstr("one form"));
  EXPECT_THAT(error_of("compact { runs { first: 0 count: 0 stride: 1 } }"),
              HasSubstr("count and stride"));
  EXPECT_THAT(error_of("compact { runs { first: 0 count: 2 stride: 0 } }"),
              HasSubstr("count and stride"));
  EXPECT_THAT(error_of("compact { runs { first: 0 count: 2 stride: -1 } }"),
              HasSubstr("count and stride"));
  EXPECT_THAT(error_of("compact { runs { first: 6 count: 3 stride: 1 } }"),
              HasSubstr("rank 8, outside the world of 8"));
  EXPECT_THAT(error_of("compact { runs { first: -1 count: 1 } }"), HasSubstr("rank -1"));
  EXPECT_THAT(
      error_of("compact { runs { first: 4 count: 2 stride: 1 } runs { first: 0 count: 1 } }"),
      HasSubstr("not ascending (5 then 0)"));
  EXPECT_THAT(error_of("ranks: 3 ranks: 3"), HasSubstr("not ascending"));
  EXPECT_THAT(error_of("compact { runs { first: 0 count: 2147483647 stride: 1 } }"),
              HasSubstr("rank 8"));
  EXPECT_THAT(error_of("compact { runs { first: 2147483647 count: 2 stride: 2147483647 } }"),
              HasSubstr("outside the world"));
}

}  // namespace
}  // namespace cohort::coordinator
