// Roster on its own: rank hints, lowest free ranks, standbys, missing ranks, recovery ranks,
// promotion and reassignment plans, durable ranks.
#include "coordinator/roster.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/coordinator.h"
#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

class NullSink : public SessionSink {
 public:
  void Send(const v1::CoordinatorMessage&) override {}
  void Close(const absl::Status&) override {}
};

class RosterTest : public ::testing::Test {
 protected:
  // Adds a member the way the Coordinator does: rank from FreeRank, arrival order, attached.
  Member& Add(const std::string& identity, int rank, std::optional<int> hint = std::nullopt,
              bool attached = true) {
    Member& m = roster_.members()[identity];
    m.identity = identity;
    roster_.SetRank(m, rank);
    m.join_seq = ++seq_;
    if (hint.has_value()) m.join.set_rank_hint(*hint);
    m.sink = attached ? &sink_ : nullptr;
    return m;
  }

  Roster roster_;
  NullSink sink_;
  uint64_t seq_ = 0;
};

TEST_F(RosterTest, FreeRank_HintWinsWhenFreeAndInside_OtherwiseLowestFree) {
  EXPECT_EQ(roster_.FreeRank(3, 4), 3);
  Add("a", 3);
  EXPECT_EQ(roster_.FreeRank(3, 4), 0);  // taken
  EXPECT_EQ(roster_.FreeRank(7, 4), 0);  // outside the world
  EXPECT_EQ(roster_.FreeRank(-1, 4), 0);
  EXPECT_EQ(roster_.FreeRank(std::nullopt, 4), 0);
  EXPECT_EQ(roster_.FreeRank(100, 0), 100);  // no world yet: no upper bound
}

TEST_F(RosterTest, FreeRank_EveryRankTaken_Standby) {
  Add("a", 0);
  Add("b", 1);
  EXPECT_EQ(roster_.FreeRank(std::nullopt, 2), -1);
  EXPECT_EQ(roster_.FreeRank(std::nullopt, 0), 2);
}

TEST_F(RosterTest, MissingRanks_CountOnlyAttachedMembersInsideTheWorld) {
  Add("a", 0);
  Add("b", 1, std::nullopt, /*attached=*/false);
  Add("c", 5);
  Add("s", -1);
  EXPECT_EQ(roster_.MissingRanks(3), (std::vector<int>{1, 2}));
  EXPECT_EQ(roster_.AtRank(1)->identity, "b");
  EXPECT_EQ(roster_.AtRank(2), nullptr);
}

TEST_F(RosterTest, ByRank_AgreesWithAtRankForEveryRank_OutsideTheWorldLeftOut) {
  Add("a", 2);
  Add("b", 0, std::nullopt, /*attached=*/false);
  Add("c", 5);  // outside a world of 4
  Add("s", -1);
  const std::vector<Member*> by_rank = roster_.ByRank(4);
  ASSERT_EQ(by_rank.size(), 4u);
  for (int r = 0; r < 4; ++r) EXPECT_EQ(by_rank[r], roster_.AtRank(r)) << "rank " << r;
  EXPECT_EQ(by_rank[0]->identity, "b");
  EXPECT_EQ(by_rank[1], nullptr);
  EXPECT_EQ(by_rank[2]->identity, "a");
  const Roster& view = roster_;
  EXPECT_EQ(view.ByRank(4)[2], roster_.AtRank(2));
  EXPECT_TRUE(roster_.ByRank(0).empty());
}

TEST_F(RosterTest, RecoveryRank_HeldBeatsDurable_ClaimedRanksRefused) {
  roster_.LoadRank("a", 1);
  v1::JoinRequest a;
  a.set_identity("a");
  EXPECT_EQ(roster_.RecoveryRank(a, 4), 1);  // its durable rank
  a.mutable_held()->set_holding(true);
  a.mutable_held()->set_rank(2);
  EXPECT_EQ(roster_.RecoveryRank(a, 4), 2);  // what it holds wins
  Member& b = Add("b", -1);
  b.held.set_holding(true);
  b.held.set_rank(2);  // b holds rank 2: a's claim falls back to its durable rank
  EXPECT_EQ(roster_.RecoveryRank(a, 4), 1);
  Add("c", 1);  // and rank 1 is had by c
  EXPECT_EQ(roster_.RecoveryRank(a, 4), -1);
}

TEST_F(RosterTest, PlanPromotions_HintsFirst_ThenLowestFreeByArrival) {
  Add("r0", 0);
  Add("s1", -1, /*hint=*/3);
  Add("s2", -1);
  Add("s3", -1, /*hint=*/9);  // outside the world: no hint
  Add("gone", -1, std::nullopt, /*attached=*/false);
  const std::vector<std::pair<std::string, int>> plan = roster_.PlanPromotions(4);
  EXPECT_EQ(plan, (std::vector<std::pair<std::string, int>>{{"s1", 3}, {"s2", 1}, {"s3", 2}}));
}

TEST_F(RosterTest, PlanPromotions_NoFreeRank_NothingPlanned) {
  Add("r0", 0);
  Add("s", -1);
  EXPECT_TRUE(roster_.PlanPromotions(1).empty());
}

TEST_F(RosterTest, PlanReassignment_HintThenCurrentThenLowest_RestStandby) {
  Add("a", 0, /*hint=*/1);
  Add("b", 1);
  Add("c", 2);
  Add("d", -1);
  Add("gone", 0, std::nullopt, /*attached=*/false);
  const std::map<std::string, int> plan = roster_.PlanReassignment(3);
  // a takes its hint 1; b loses 1 and gets the lowest free (0); c keeps 2; d waits.
  EXPECT_EQ(plan, (std::map<std::string, int>{{"a", 1}, {"b", 0}, {"c", 2}, {"d", -1}}));
}

TEST_F(RosterTest, EarliestStandby_AttachedStandbyThatArrivedFirst) {
  Add("r", 0);
  Add("gone", -1, std::nullopt, /*attached=*/false);
  Add("s1", -1);
  Add("s2", -1);
  ASSERT_NE(roster_.EarliestStandby(), nullptr);
  EXPECT_EQ(roster_.EarliestStandby()->identity, "s1");
}

TEST_F(RosterTest, RememberRank_OneIdentityPerRank) {
  roster_.RememberRank("a", 0);
  roster_.RememberRank("b", 0);
  roster_.RememberRank("b", 1);
  roster_.RememberRank("c", 0);
  EXPECT_EQ(roster_.durable_ranks(), (std::map<std::string, int>{{"b", 1}, {"c", 0}}));
  roster_.ForgetRank("b");
  EXPECT_EQ(roster_.durable_ranks(), (std::map<std::string, int>{{"c", 0}}));
}

// FreeRank reads an index of the ranks held: it follows SetRank, Remove and ranks held twice in
// the middle of a reshuffle.
TEST_F(RosterTest, FreeRank_FollowsSetRankAndRemove) {
  Member& a = Add("a", 0);
  Add("b", 1);
  Member& c = Add("c", 2);
  EXPECT_EQ(roster_.FreeRank(std::nullopt, 4), 3);
  roster_.SetRank(c, 0);  // held twice for now
  EXPECT_EQ(roster_.FreeRank(std::nullopt, 4), 2);
  roster_.SetRank(a, 2);  // the reshuffle ends: 0 and 2 swapped
  EXPECT_EQ(roster_.FreeRank(std::nullopt, 4), 3);
  EXPECT_EQ(roster_.FreeRank(1, 4), 3);  // a taken hint
  roster_.Remove("b");
  EXPECT_EQ(roster_.FreeRank(std::nullopt, 4), 1);
  EXPECT_EQ(roster_.FreeRank(3, 4), 3);
  roster_.SetRank(c, -1);
  roster_.Remove("nobody");
  EXPECT_EQ(roster_.FreeRank(std::nullopt, 4), 0);
  roster_.SetRank(*roster_.Find("a"), 7);  // outside a world of 4: 0 is free
  EXPECT_EQ(roster_.FreeRank(std::nullopt, 0), 0);
  EXPECT_EQ(roster_.FreeRank(7, 0), 0);
  EXPECT_EQ(roster_.FreeRank(8, 0), 8);
}

// The rank -> identity index stays true through moves, forgets and loaded ranks.
TEST_F(RosterTest, RememberRank_AfterMovesForgetsAndLoadedRanks) {
  roster_.LoadRank("x", 2);
  roster_.LoadRank("y", 2);  // a file may give a rank twice
  roster_.LoadRank("a", 0);
  roster_.LoadRank("a", 3);  // moved: no longer in rank 0's place
  roster_.RememberRank("b", 0);
  EXPECT_EQ(roster_.durable_ranks(),
            (std::map<std::string, int>{{"a", 3}, {"b", 0}, {"x", 2}, {"y", 2}}));
  roster_.RememberRank("z", 2);  // drops both
  EXPECT_EQ(roster_.durable_ranks(), (std::map<std::string, int>{{"a", 3}, {"b", 0}, {"z", 2}}));
  roster_.ForgetRank("a");
  roster_.ForgetRank("nobody");
  roster_.RememberRank("c", 3);
  roster_.RememberRank("b", 0);  // again, same rank: kept
  EXPECT_EQ(roster_.durable_ranks(), (std::map<std::string, int>{{"b", 0}, {"c", 3}, {"z", 2}}));
  roster_.RememberRank("d", 0);
  roster_.RememberRank("d", 3);  // d leaves rank 0 empty and takes c's
  EXPECT_EQ(roster_.durable_ranks(), (std::map<std::string, int>{{"d", 3}, {"z", 2}}));
}

TEST(HintOf, OnlyInsideTheWorld) {
  v1::JoinRequest join;
  EXPECT_FALSE(HintOf(join, 4).has_value());
  join.set_rank_hint(3);
  EXPECT_EQ(HintOf(join, 4), 3);
  EXPECT_FALSE(HintOf(join, 3).has_value());
  EXPECT_FALSE(HintOf(join, 0).has_value());
  join.set_rank_hint(-1);
  EXPECT_FALSE(HintOf(join, 4).has_value());
}

}  // namespace
}  // namespace cohort::coordinator
