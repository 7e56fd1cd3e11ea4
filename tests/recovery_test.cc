// JudgeRecovery on its own: a pool is restored only when every rank is back holding the same
// generation, kind (READY or world-only), backend and config, and that config is the pool's;
// the highest generation held and one report per holder come back either way.
#include "coordinator/recovery.h"

#include <string>

#include "common/layout_proto.h"
#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

ParallelConfig Tp(int64_t tp) {
  ParallelConfig c;
  c.tensor_parallel_size = tp;
  c.world_size = tp;
  return c;
}

// A member `identity` at `rank`, holding generation `generation` of `config` (`generation` 0:
// holding nothing).
void Add(Roster& roster, const std::string& identity, int rank, int64_t generation,
         const ParallelConfig& config, const std::string& backend = "gloo",
         bool world_only = false) {
  Member& m = roster.members()[identity];
  m.identity = identity;
  roster.SetRank(m, rank);
  if (generation == 0) return;
  m.held.set_holding(true);
  m.held.set_rank(rank);
  m.held.set_world_size(static_cast<int32_t>(config.world_size));
  m.held.set_generation(generation);
  *m.held.mutable_config() = ToProto(config);
  m.held.set_backend(backend);
  m.held.set_world_only(world_only);
}

TEST(JudgeRecovery, EveryRankHoldingTheSame_Restored) {
  Roster roster;
  Add(roster, "a", 0, 4, Tp(2));
  Add(roster, "b", 1, 4, Tp(2));
  const RecoveryVerdict verdict = JudgeRecovery(roster, 2, /*complete=*/true, Tp(2), 0);
  ASSERT_TRUE(verdict.restore.has_value());
  EXPECT_EQ(verdict.restore->generation(), 4);
  EXPECT_FALSE(verdict.restore->world_only());
  EXPECT_EQ(verdict.highest_generation, 4);
  EXPECT_THAT(verdict.reports,
              ::testing::ElementsAre("a: rank 0 generation 4", "b: rank 1 generation 4"));
}

TEST(JudgeRecovery, AllWorldOnly_RestoredAsWorldOnly) {
  Roster roster;
  Add(roster, "a", 0, 3, Tp(2), "gloo", /*world_only=*/true);
  Add(roster, "b", 1, 3, Tp(2), "gloo", /*world_only=*/true);
  const RecoveryVerdict verdict = JudgeRecovery(roster, 2, true, Tp(2), 3);
  ASSERT_TRUE(verdict.restore.has_value());
  EXPECT_TRUE(verdict.restore->world_only());
  EXPECT_THAT(verdict.reports, ::testing::ElementsAre("a: rank 0 generation 3 (world only)",
                                                      "b: rank 1 generation 3 (world only)"));
}

TEST(JudgeRecovery, NotComplete_NotRestored_HighestStillReported) {
  Roster roster;
  Add(roster, "a", 0, 7, Tp(2));
  const RecoveryVerdict verdict = JudgeRecovery(roster, 2, /*complete=*/false, Tp(2), 2);
  EXPECT_FALSE(verdict.restore.has_value());
  EXPECT_EQ(verdict.highest_generation, 7);
  EXPECT_THAT(verdict.reports, ::testing::ElementsAre("a: rank 0 generation 7"));
}

TEST(JudgeRecovery, NoConfig_NotRestored) {
  Roster roster;
  Add(roster, "a", 0, 1, Tp(1));
  EXPECT_FALSE(JudgeRecovery(roster, 1, true, std::nullopt, 0).restore.has_value());
}

TEST(JudgeRecovery, ARankHoldingNothing_NotRestored) {
  Roster roster;
  Add(roster, "a", 0, 4, Tp(2));
  Add(roster, "b", 1, 0, Tp(2));
  const RecoveryVerdict verdict = JudgeRecovery(roster, 2, true, Tp(2), 0);
  EXPECT_FALSE(verdict.restore.has_value());
  EXPECT_THAT(verdict.reports, ::testing::ElementsAre("a: rank 0 generation 4"));
}

TEST(JudgeRecovery, DifferentGenerationsKindsOrBackends_Conflict) {
  {
    Roster roster;
    Add(roster, "a", 0, 4, Tp(2));
    Add(roster, "b", 1, 5, Tp(2));
    const RecoveryVerdict verdict = JudgeRecovery(roster, 2, true, Tp(2), 0);
    EXPECT_FALSE(verdict.restore.has_value());
    EXPECT_EQ(verdict.highest_generation, 5);
  }
  {
    Roster roster;
    Add(roster, "a", 0, 4, Tp(2));
    Add(roster, "b", 1, 4, Tp(2), "gloo", /*world_only=*/true);
    EXPECT_FALSE(JudgeRecovery(roster, 2, true, Tp(2), 0).restore.has_value());
  }
  {
    Roster roster;
    Add(roster, "a", 0, 4, Tp(2), "gloo");
    Add(roster, "b", 1, 4, Tp(2), "nccl");
    EXPECT_FALSE(JudgeRecovery(roster, 2, true, Tp(2), 0).restore.has_value());
  }
}

TEST(JudgeRecovery, HeldConfigOtherThanThePools_NotRestored) {
  Roster roster;
  ParallelConfig dp2;
  dp2.data_parallel_size = 2;
  dp2.world_size = 2;
  Add(roster, "a", 0, 4, dp2);
  Add(roster, "b", 1, 4, dp2);
  EXPECT_FALSE(JudgeRecovery(roster, 2, true, Tp(2), 0).restore.has_value());
  EXPECT_TRUE(JudgeRecovery(roster, 2, true, dp2, 0).restore.has_value());
}

TEST(JudgeRecovery, HighestGeneration_IsAtLeastThePools) {
  Roster roster;
  Add(roster, "a", 0, 2, Tp(1));
  Add(roster, "s", -1, 0, Tp(1));  // a standby holding nothing: no report
  const RecoveryVerdict verdict = JudgeRecovery(roster, 1, true, Tp(1), 9);
  EXPECT_EQ(verdict.highest_generation, 9);
  EXPECT_THAT(verdict.reports, ::testing::ElementsAre("a: rank 0 generation 2"));
}

}  // namespace
}  // namespace cohort::coordinator
