// The seed's rank arithmetic, on the worked examples of seed/SEMANTICS.md §2-§4.
#include "common/rank_generator.h"

#include "tests/test_util.h"

namespace cohort {
namespace {

using ::testing::HasSubstr;

RankGroups Masked(int64_t world, std::vector<int64_t> sizes, std::vector<bool> mask) {
  absl::StatusOr<RankGroups> g = GenerateMaskedOrthogonalRankGroups(world, sizes, mask);
  EXPECT_TRUE(g.ok()) << g.status();
  return g.ok() ? *g : RankGroups{};
}

TEST(MaskedOrthogonal, DocstringExample_DpOfTpDpPp) {
  // sizes [2,3,4], mask [F,T,F]: 8 groups, group 7 = [19,21,23].
  RankGroups g = Masked(24, {2, 3, 4}, {false, true, false});
  ASSERT_EQ(g.size(), 8u);
  EXPECT_EQ(g[0], (RankList{0, 2, 4}));
  EXPECT_EQ(g[1], (RankList{1, 3, 5}));
  EXPECT_EQ(g[2], (RankList{6, 8, 10}));
  EXPECT_EQ(g[7], (RankList{19, 21, 23}));
}

TEST(MaskedOrthogonal, TwoMaskedDimensions) {
  EXPECT_EQ(Masked(12, {2, 3, 2}, {true, false, true}),
            (RankGroups{{0, 1, 6, 7}, {2, 3, 8, 9}, {4, 5, 10, 11}}));
}

TEST(MaskedOrthogonal, EmptyMaskGivesSingletons) {
  EXPECT_EQ(Masked(4, {2, 2}, {false, false}), (RankGroups{{0}, {1}, {2}, {3}}));
}

TEST(MaskedOrthogonal, WorldAboveProduct_IsRefused) {
  absl::StatusOr<RankGroups> g = GenerateMaskedOrthogonalRankGroups(10, {2, 2}, {true, false});
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(g.status().message(), HasSubstr("exceeds"));
}

TEST(MaskedOrthogonal, MismatchedMask_IsRefused) {
  EXPECT_FALSE(GenerateMaskedOrthogonalRankGroups(4, {2, 2}, {true}).ok());
  EXPECT_FALSE(GenerateMaskedOrthogonalRankGroups(4, {2, 0}, {true, false}).ok());
}

TEST(RankGenerator, WorkedExample_Tp2Sp2Cfg2) {
  auto gen = RankGenerator::Create({.tp = 2, .sp = 2, .pp = 1, .cfg = 2, .dp = 1});
  ASSERT_TRUE(gen.ok()) << gen.status();
  EXPECT_EQ(gen->world_size(), 8);
  EXPECT_EQ(*gen->GetRanks("tp"), (RankGroups{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  EXPECT_EQ(*gen->GetRanks("sp"), (RankGroups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(*gen->GetRanks("cfg"), (RankGroups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
  EXPECT_EQ(*gen->GetRanks("tp-sp"), (RankGroups{{0, 1, 2, 3}, {4, 5, 6, 7}}));
  EXPECT_EQ(*gen->GetRanks("sp-cfg"), (RankGroups{{0, 2, 4, 6}, {1, 3, 5, 7}}));
  EXPECT_EQ(gen->GetRanks("pp")->size(), 8u);
}

TEST(RankGenerator, CustomOrder_TpPpDp) {
  auto gen = RankGenerator::Create({.tp = 2, .pp = 2, .dp = 2}, "tp-pp-dp");
  ASSERT_TRUE(gen.ok()) << gen.status();
  EXPECT_EQ(*gen->GetRanks("dp"), (RankGroups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
  // Missing size-1 dimensions are appended to the order.
  EXPECT_EQ(gen->order(), "tp-pp-dp-sp-cfg");
}

TEST(RankGenerator, MissingNonTrivialDimension_IsRefused) {
  auto gen = RankGenerator::Create({.tp = 2, .sp = 2}, "tp-pp-cfg-dp");
  EXPECT_EQ(gen.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(gen.status().message(), HasSubstr("sp"));
}

TEST(RankGenerator, UnknownToken_IsRefused) {
  auto gen = RankGenerator::Create({.tp = 2});
  ASSERT_TRUE(gen.ok());
  EXPECT_THAT(gen->GetRanks("xx").status().message(), HasSubstr("'xx'"));
  // fs is never an order dimension: only the independent path knows it.
  EXPECT_FALSE(gen->GetRanks("fs").ok());
  EXPECT_FALSE(RankGenerator::Create({.tp = 2}, "tp-ep").ok());
}

TEST(RankGenerator, IndependentFsBlocks_DropTrailingPartialBlock) {
  auto gen = RankGenerator::Create({.sp = 4, .fs = 3});
  ASSERT_TRUE(gen.ok());
  EXPECT_EQ(*gen->GetRanks("fs", true), (RankGroups{{0, 1, 2}}));
}

TEST(RankGenerator, SeedEpBlocksMixPipelineStages) {
  // SEMANTICS B1: pp=2, cfg=2 gives EP == PP groups; the masked token gives per-stage groups.
  auto gen = RankGenerator::Create({.pp = 2, .cfg = 2});
  ASSERT_TRUE(gen.ok());
  EXPECT_EQ(*gen->GetRanks("ep"), (RankGroups{{0, 1}, {2, 3}}));
  EXPECT_EQ(*gen->GetRanks("tp-sp-cfg-dp"), (RankGroups{{0, 2}, {1, 3}}));
}

TEST(RankGenerator, RankOffset_AppliedToEveryPath) {
  auto gen = RankGenerator::Create({.tp = 2, .fs = 2}, kDefaultOrder, 10);
  ASSERT_TRUE(gen.ok());
  EXPECT_EQ(*gen->GetRanks("tp"), (RankGroups{{10, 11}}));
  EXPECT_EQ(*gen->GetRanks("fs", true), (RankGroups{{10, 11}}));
  EXPECT_EQ(*gen->GetRanks("ep"), (RankGroups{{10, 11}}));
}

TEST(SequenceParallelSplit, ExplicitGroups_UlyssesLow) {
  RankGroups sp = {{0, 2, 4, 6}, {1, 3, 5, 7}};
  auto split = SplitSequenceParallelGroups(2, 2, 8, &sp);
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_EQ(split->ulysses, (RankGroups{{0, 2}, {4, 6}, {1, 3}, {5, 7}}));
  EXPECT_EQ(split->ring, (RankGroups{{0, 4}, {2, 6}, {1, 5}, {3, 7}}));
}

TEST(SequenceParallelSplit, ExplicitGroups_U3R2_BothOrientations) {
  RankGroups sp = {{0, 2, 4, 6, 8, 10}, {1, 3, 5, 7, 9, 11}};
  auto low = SplitSequenceParallelGroups(3, 2, 12, &sp, /*use_ulysses_low=*/true);
  ASSERT_TRUE(low.ok());
  EXPECT_EQ(low->ulysses, (RankGroups{{0, 2, 4}, {6, 8, 10}, {1, 3, 5}, {7, 9, 11}}));
  EXPECT_EQ(low->ring, (RankGroups{{0, 6}, {2, 8}, {4, 10}, {1, 7}, {3, 9}, {5, 11}}));
  auto high = SplitSequenceParallelGroups(3, 2, 12, &sp, /*use_ulysses_low=*/false);
  ASSERT_TRUE(high.ok());
  EXPECT_EQ(high->ring, (RankGroups{{0, 2}, {4, 6}, {8, 10}, {1, 3}, {5, 7}, {9, 11}}));
  EXPECT_EQ(high->ulysses, (RankGroups{{0, 4, 8}, {2, 6, 10}, {1, 5, 9}, {3, 7, 11}}));
}

TEST(SequenceParallelSplit, ImplicitMode_UsesContiguousBlocks) {
  auto split = SplitSequenceParallelGroups(2, 1, 4, nullptr);
  ASSERT_TRUE(split.ok());
  EXPECT_EQ(split->ulysses, (RankGroups{{0, 1}, {2, 3}}));
  EXPECT_EQ(split->ring, (RankGroups{{0}, {1}, {2}, {3}}));
}

TEST(SequenceParallelSplit, BadInput_IsRefused) {
  RankGroups wrong_count = {{0, 1}};
  EXPECT_THAT(SplitSequenceParallelGroups(2, 1, 4, &wrong_count).status().message(),
              HasSubstr("expected 2 sequence-parallel groups"));
  RankGroups wrong_size = {{0, 1, 2}, {3}};
  EXPECT_FALSE(SplitSequenceParallelGroups(2, 1, 4, &wrong_size).ok());
  EXPECT_FALSE(SplitSequenceParallelGroups(3, 1, 4, nullptr).ok());
  EXPECT_FALSE(SplitSequenceParallelGroups(0, 1, 4, nullptr).ok());
}

}  // namespace
}  // namespace cohort
