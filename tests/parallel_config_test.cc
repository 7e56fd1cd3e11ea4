// Up-front validation: every way a config can be wrong gets INVALID_ARGUMENT with a message that
// names the field and the fix (the seed instead hangs, asserts or fails late on some ranks).
#include "common/parallel_config.h"

#include "common/layout.h"
#include "tests/test_util.h"

namespace cohort {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

absl::Status Check(const ParallelConfig& c) { return ValidateParallelConfig(c).status(); }

TEST(Validate, SequenceParallelMismatch_NamesBothSides) {
  ParallelConfig c{.world_size = 4, .sequence_parallel_size = 4, .ulysses_degree = 2};
  absl::Status s = Check(c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("sequence_parallel_size (4)"),
                                 HasSubstr("ulysses_degree x ring_degree (2 x 1 = 2)")));
}

TEST(Validate, WorldTooSmall_SaysWhatToSet) {
  ParallelConfig c{.world_size = 2, .ulysses_degree = 4};
  EXPECT_THAT(Check(c).message(),
              AllOf(HasSubstr("world_size (2) is smaller"), HasSubstr("set world_size to 4")));
}

TEST(Validate, WorldTooLarge_IsRefusedNotHung) {
  ParallelConfig c{.world_size = 6, .ulysses_degree = 2};
  EXPECT_THAT(Check(c).message(),
              AllOf(HasSubstr("world_size (6) is larger"), HasSubstr("ranks 2..5")));
}

TEST(Validate, ZeroAndNegativeDegrees_NameTheField) {
  ParallelConfig zero{.world_size = 4, .tensor_parallel_size = 0};
  EXPECT_THAT(Check(zero).message(), HasSubstr("tensor_parallel_size must be at least 1, got 0"));
  ParallelConfig negative{.world_size = 4, .ring_degree = -2};
  EXPECT_THAT(Check(negative).message(), HasSubstr("ring_degree must be at least 1, got -2"));
  ParallelConfig no_world{.world_size = 0};
  EXPECT_THAT(Check(no_world).message(), HasSubstr("world_size must be at least 1"));
  ParallelConfig sp_zero{.world_size = 1, .sequence_parallel_size = 0};
  EXPECT_FALSE(Check(sp_zero).ok());
}

TEST(Validate, HugeProducts_DoNotOverflow) {
  ParallelConfig c{
      .world_size = 1 << 20, .data_parallel_size = 1 << 20, .tensor_parallel_size = 1 << 20};
  EXPECT_THAT(Check(c).message(), HasSubstr("exceeds the largest supported world"));
  ParallelConfig big{.world_size = 4, .ulysses_degree = int64_t{1} << 40};
  EXPECT_THAT(Check(big).message(), HasSubstr("ulysses_degree is"));
  ParallelConfig sp_overflow{.world_size = 4, .ulysses_degree = 1 << 19, .ring_degree = 1 << 19};
  EXPECT_THAT(Check(sp_overflow).message(), HasSubstr("ulysses_degree x ring_degree"));
}

TEST(Validate, FullyShardNotDividing_NamesTheOrphanRanks) {
  ParallelConfig c{.world_size = 4, .ulysses_degree = 4, .fully_shard_degree = 3};
  EXPECT_THAT(Check(c).message(),
              AllOf(HasSubstr("fully_shard_degree (3) does not divide"), HasSubstr("ranks 3..3")));
}

TEST(Validate, FullyShardAboveDit) {
  ParallelConfig c{.world_size = 2, .ulysses_degree = 2, .fully_shard_degree = 4};
  EXPECT_THAT(Check(c).message(), HasSubstr("fully_shard_degree (4) exceeds"));
}

TEST(Validate, ReplicateWithoutFullyShard) {
  ParallelConfig c{.world_size = 2, .data_parallel_size = 2, .hsdp_replicate_size = 2};
  EXPECT_THAT(Check(c).message(), HasSubstr("needs fully_shard_degree > 1"));
}

TEST(Validate, CombinedHsdpReplicateContradictingDit) {
  ParallelConfig c{
      .world_size = 8, .ulysses_degree = 8, .fully_shard_degree = 4, .hsdp_replicate_size = 4};
  EXPECT_THAT(Check(c).message(), HasSubstr("set hsdp_replicate_size to 2"));
}

TEST(Validate, ExpertParallelWithoutMoe) {
  ParallelConfig c{.world_size = 4, .ulysses_degree = 4, .enable_expert_parallel = true};
  EXPECT_THAT(Check(c).message(), HasSubstr("needs an MoE model"));
  c.is_moe = true;
  EXPECT_TRUE(Check(c).ok());
}

TEST(Validate, StandaloneHsdp_DerivesDitFromShards) {
  ParallelConfig c{.world_size = 8, .fully_shard_degree = 2, .hsdp_replicate_size = 4};
  absl::StatusOr<DerivedSizes> d = ValidateParallelConfig(c);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->standalone_hsdp);
  EXPECT_EQ(d->dit_parallel_size, 8);
  EXPECT_EQ(d->effective_dp_size, 8);
}

TEST(Validate, EpLayoutNames) {
  EXPECT_EQ(*ParseEpLayout("masked"), EpLayout::kMasked);
  EXPECT_EQ(*ParseEpLayout("seed"), EpLayout::kSeed);
  EXPECT_THAT(ParseEpLayout("other").status().message(), HasSubstr("'seed' or 'masked'"));
}

TEST(Validate, ShortStringNamesTheDegrees) {
  ParallelConfig c{
      .world_size = 8, .data_parallel_size = 2, .cfg_parallel_size = 2, .ulysses_degree = 2};
  EXPECT_EQ(c.ShortString(), "dp2 x cfg2 x ulysses2 (world 8)");
}

}  // namespace
}  // namespace cohort
