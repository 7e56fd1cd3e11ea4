// cohortctl status, members, groups and describe against an in-process coordinator and four
// real Gloo agents: json documents field by field against Layout::Build, tables, exit statuses.
#include <algorithm>
#include <csignal>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cli/table.h"
#include "common/layout_proto.h"
#include "tests/cohortctl_inspect_fixture.h"
#include "tests/test_util.h"

namespace cohort {
namespace {

using ::cohort::testing::CohortctlInspectTest;
using ::cohort::testing::Field;
using ::cohort::testing::Ints;
using ::cohort::testing::kWorld;
using ::cohort::testing::Lines;
using ::cohort::testing::Num;
using ::cohort::testing::ParseJsonOrDie;
using ::cohort::testing::Result;
using ::google::protobuf::Value;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// ---- status ---------------------------------------------------------------------------------

TEST_F(CohortctlInspectTest, Status_Json_ReadyPoolWithItsCounts) {
  FormPool();
  Result r = Ctl({"status", "-o", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  Value doc = ParseJsonOrDie(r.out);
  const auto& pools = Field(doc, "pools").list_value().values();
  ASSERT_EQ(pools.size(), 1);
  EXPECT_EQ(Field(pools[0], "pool").string_value(), "default");
  EXPECT_EQ(Field(pools[0], "phase").string_value(), "POOL_PHASE_READY");
  EXPECT_EQ(Num(Field(pools[0], "generation")), 1);
  EXPECT_EQ(Num(Field(pools[0], "world_size")), kWorld);
  EXPECT_EQ(Num(Field(pools[0], "members")), kWorld);
  EXPECT_EQ(Num(Field(pools[0], "members_ready")), kWorld);
}

TEST_F(CohortctlInspectTest, Status_Table_OneRowPerPoolNamingMissingRanks) {
  FormPool();
  ASSERT_EQ(Ctl({"init", "-n", "2", "--dp", "2", "--pool", "spare"}).status, 0);
  Result r = Ctl({"status"});
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 3) << r.out;
  EXPECT_THAT(lines[0], StartsWith("POOL"));
  EXPECT_THAT(r.out, HasSubstr("READY"));
  EXPECT_THAT(r.out, HasSubstr("4/4"));
  EXPECT_THAT(r.out, HasSubstr("0/2"));
  EXPECT_THAT(r.out, HasSubstr("[0,1]"));       // the spare pool's missing ranks
  EXPECT_THAT(r.out, Not(HasSubstr("\x1b[")));  // not a terminal: no colours

  Result one = Ctl({"status", "--pool", "spare"});
  ASSERT_EQ(one.status, 0) << one.err;
  EXPECT_EQ(Lines(one.out).size(), 2) << one.out;
  EXPECT_THAT(one.out, HasSubstr("WAITING"));

  Result ghost = Ctl({"status", "--pool", "ghost"});
  EXPECT_EQ(ghost.status, 1);
  EXPECT_THAT(ghost.err, StartsWith("error: unknown pool 'ghost'"));
}

// ---- members --------------------------------------------------------------------------------

TEST_F(CohortctlInspectTest, Members_Json_EveryRankWithItsIdentityAndPhase) {
  FormPool();
  Result r = Ctl({"members", "-o", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  Value state = Field(ParseJsonOrDie(r.out), "state");
  EXPECT_EQ(Field(state, "phase").string_value(), "POOL_PHASE_READY");
  const auto& members = Field(state, "members").list_value().values();
  ASSERT_EQ(members.size(), kWorld);
  for (int rank = 0; rank < kWorld; ++rank) {
    SCOPED_TRACE(rank);
    EXPECT_EQ(Num(Field(members[rank], "rank")), rank);
    EXPECT_EQ(Field(members[rank], "identity").string_value(), absl::StrCat("agent-", rank));
    EXPECT_EQ(Field(members[rank], "phase").string_value(), "MEMBER_PHASE_READY");
    EXPECT_EQ(Num(Field(members[rank], "generation")), 1);
    EXPECT_EQ(Field(members[rank], "backend").string_value(), "gloo");
  }
}

TEST_F(CohortctlInspectTest, Members_Table_NamesEveryRank) {
  FormPool();
  Result r = Ctl({"members"});
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 2 + kWorld) << r.out;  // headline, header, one row per rank
  EXPECT_THAT(lines[0], HasSubstr("pool default: READY, generation 1, 4/4 ready"));
  EXPECT_THAT(lines[1], StartsWith("RANK  IDENTITY  PHASE"));
  for (int rank = 0; rank < kWorld; ++rank) {
    EXPECT_THAT(lines[2 + rank], StartsWith(absl::StrCat(rank, "     agent-", rank, "   READY")))
        << r.out;
  }
  EXPECT_THAT(r.out, Not(HasSubstr("missing ranks")));

  Result wide = Ctl({"members", "-o", "wide"});
  ASSERT_EQ(wide.status, 0) << wide.err;
  // Incarnations are not shown (inspection carries no secrets).
  EXPECT_THAT(wide.out, Not(HasSubstr("INCARNATION")));
  EXPECT_THAT(wide.out, HasSubstr("UPTIME"));
  EXPECT_THAT(wide.out, HasSubstr("gloo"));
}

TEST_F(CohortctlInspectTest, Members_Table_NamesMissingRanks) {
  ASSERT_EQ(Ctl({"init", "-n", "4", "--dp", "4"}).status, 0);
  StartAgents(2);
  ASSERT_TRUE(AwaitState(MissingAre({2, 3})));  // both sessions attached
  Result r = Ctl({"members"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("missing ranks: [2,3]"));
  EXPECT_THAT(r.out, HasSubstr("agent-0"));
  EXPECT_THAT(r.out, HasSubstr("agent-1"));
  EXPECT_THAT(r.out, HasSubstr("\n3     -         MISSING"));
}

TEST_F(CohortctlInspectTest, Members_Table_DegradedPoolSaysWhy_LeftMemberShown) {
  FormPool();
  ASSERT_EQ(agents_[1]->Leave("SIGTERM (test)", absl::Seconds(20)), absl::OkStatus());
  ASSERT_TRUE(
      AwaitState([](const v1::PoolState& s) { return s.phase() == v1::POOL_PHASE_DEGRADED; }));
  Result r = Ctl({"members", "--no-color"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("pool default: DEGRADED (left), generation 1"));
  EXPECT_THAT(r.out, HasSubstr("rank 1 (agent-1) left: SIGTERM (test)"));
  EXPECT_THAT(r.out, HasSubstr("LEFT"));
}

// ---- groups ---------------------------------------------------------------------------------

TEST_F(CohortctlInspectTest, Groups_KindTp_ListsExactlyTheTpGroups) {
  FormPool();
  Result r = Ctl({"groups", "--kind", "tp"});
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  const RankGroups& tp = layout_->groups(GroupKind::kTp);
  ASSERT_EQ(lines.size(), 2 + tp.size()) << r.out;  // headline, header, one row per group
  EXPECT_THAT(lines[1], StartsWith("KIND  INDEX  RANKS  STATE"));
  for (size_t i = 0; i < tp.size(); ++i) {
    EXPECT_THAT(lines[2 + i], StartsWith(absl::StrCat("tp    ", i, "      ",
                                                      cli::FormatRanks(tp[i]), "  ready 2/2")))
        << r.out;
  }

  Result json = Ctl({"groups", "--kind", "tp", "-o", "json"});
  ASSERT_EQ(json.status, 0) << json.err;
  Value state = Field(ParseJsonOrDie(json.out), "state");
  const auto& sets = Field(Field(state, "layout"), "group_sets").list_value().values();
  ASSERT_EQ(sets.size(), 1);
  EXPECT_EQ(Field(sets[0], "kind").string_value(), "GROUP_KIND_TP");
  const auto& groups = Field(sets[0], "groups").list_value().values();
  ASSERT_EQ(groups.size(), tp.size());
  for (size_t i = 0; i < tp.size(); ++i) {
    EXPECT_EQ(Ints(Field(groups[i], "ranks")), std::vector<int>(tp[i].begin(), tp[i].end()));
  }
  for (const Value& m : Field(state, "members").list_value().values()) {
    for (const Value& g : Field(m, "groups").list_value().values()) {
      EXPECT_EQ(Field(g, "kind").string_value(), "GROUP_KIND_TP");
      EXPECT_EQ(Field(g, "state").string_value(), "COMM_STATE_READY");
    }
  }
}

TEST_F(CohortctlInspectTest, Groups_Rank_OnlyTheGroupsHoldingIt) {
  FormPool();
  const int rank = 3;
  Result r = Ctl({"groups", "--rank", "3", "-o", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  Value state = Field(ParseJsonOrDie(r.out), "state");
  const auto& sets = Field(Field(state, "layout"), "group_sets").list_value().values();
  ASSERT_EQ(sets.size(), layout_->kinds().size());
  for (int i = 0; i < sets.size(); ++i) {
    const GroupKind kind = layout_->kinds()[i];
    SCOPED_TRACE(GroupKindName(kind));
    const auto& groups = Field(sets[i], "groups").list_value().values();
    ASSERT_EQ(groups.size(), 1);
    const RankList& expected = layout_->GroupOf(kind, rank);
    EXPECT_EQ(Ints(Field(groups[0], "ranks")), std::vector<int>(expected.begin(), expected.end()));
    EXPECT_EQ(Num(Field(groups[0], "index")), layout_->GroupIndexOf(kind, rank));
  }
  Result table = Ctl({"groups", "--rank", "3"});
  ASSERT_EQ(table.status, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("world    0      [0-3]  ready 4/4"));
}

// ---- describe -------------------------------------------------------------------------------

TEST_F(CohortctlInspectTest, DescribeRank_Json_MemberAndEveryGroupHoldingIt) {
  FormPool();
  const int rank = 2;
  Result r = Ctl({"describe", "rank", "2", "-o", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  Value state = Field(ParseJsonOrDie(r.out), "state");
  const auto& members = Field(state, "members").list_value().values();
  ASSERT_EQ(members.size(), 1);
  const Value& m = members[0];
  EXPECT_EQ(Num(Field(m, "rank")), rank);
  EXPECT_EQ(Field(m, "identity").string_value(), "agent-2");
  EXPECT_EQ(Field(m, "phase").string_value(), "MEMBER_PHASE_READY");
  // Inspection carries no incarnation (a secret of the agent's process).
  EXPECT_EQ(m.struct_value().fields().count("incarnation"), 0u);
  const auto& reports = Field(m, "groups").list_value().values();
  ASSERT_EQ(reports.size(), layout_->kinds().size());
  for (const Value& g : reports) {
    v1::GroupKind proto_kind = v1::GROUP_KIND_UNSPECIFIED;
    ASSERT_TRUE(v1::GroupKind_Parse(Field(g, "kind").string_value(), &proto_kind));
    absl::StatusOr<GroupKind> kind = FromProto(proto_kind);
    ASSERT_TRUE(kind.ok());
    SCOPED_TRACE(GroupKindName(*kind));
    EXPECT_EQ(Num(Field(g, "index")), layout_->GroupIndexOf(*kind, rank));
    EXPECT_EQ(Num(Field(g, "rank_in_group")), layout_->RankInGroup(*kind, rank));
    EXPECT_EQ(Field(g, "state").string_value(), "COMM_STATE_READY");
    const RankList& group = layout_->GroupOf(*kind, rank);
    EXPECT_EQ(Num(Field(g, "size")), static_cast<int64_t>(group.size()));
  }

  Result table = Ctl({"describe", "rank", "2"});
  ASSERT_EQ(table.status, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("identity        agent-2"));
  EXPECT_THAT(table.out, HasSubstr("backend         gloo"));
  EXPECT_THAT(table.out, HasSubstr("tp       1      [2,3]  0              ready"));
}

TEST_F(CohortctlInspectTest, DescribeGroup_Tp1_NamesItsRanksAndMembers) {
  FormPool();
  Result r = Ctl({"describe", "group", "tp", "1"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("ranks [2,3]: ready 2/2"));
  EXPECT_THAT(r.out, HasSubstr("\n2     0              agent-2   READY  ready"));
  EXPECT_THAT(r.out, HasSubstr("\n3     1              agent-3   READY  ready"));

  Result json = Ctl({"describe", "group", "tp", "1", "-o", "json"});
  ASSERT_EQ(json.status, 0) << json.err;
  Value state = Field(ParseJsonOrDie(json.out), "state");
  const auto& sets = Field(Field(state, "layout"), "group_sets").list_value().values();
  ASSERT_EQ(sets.size(), 1);
  const auto& groups = Field(sets[0], "groups").list_value().values();
  ASSERT_EQ(groups.size(), 1);
  EXPECT_EQ(Ints(Field(groups[0], "ranks")), (std::vector<int>{2, 3}));
  EXPECT_EQ(Num(Field(groups[0], "index")), 1);
  const auto& members = Field(state, "members").list_value().values();
  ASSERT_EQ(members.size(), 2);
  EXPECT_EQ(Field(members[0], "identity").string_value(), "agent-2");
  EXPECT_EQ(Field(members[1], "identity").string_value(), "agent-3");
}

TEST_F(CohortctlInspectTest, DescribeGroup_MissingMembersNamed) {
  ASSERT_EQ(Ctl({"init", "-n", "4", "--tp", "2", "--pp", "2"}).status, 0);
  StartAgents(3);
  ASSERT_TRUE(AwaitState(MissingAre({3})));
  Result r = Ctl({"describe", "group", "tp", "1"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("missing members: ranks [3]"));
  EXPECT_THAT(r.out, HasSubstr("agent-2"));
}

TEST_F(CohortctlInspectTest, Describe_BadKindOrIndexOrRank_Exit2) {
  FormPool();
  Result index = Ctl({"describe", "group", "tp", "7"});
  EXPECT_EQ(index.status, 2);
  EXPECT_THAT(index.err, HasSubstr("has 2 tp groups: use an index in 0..1"));
  Result kind = Ctl({"describe", "group", "xx", "0"});
  EXPECT_EQ(kind.status, 2);
  EXPECT_THAT(kind.err, StartsWith("error: unknown group kind 'xx'"));
  Result rank = Ctl({"describe", "rank", "9"});
  EXPECT_EQ(rank.status, 2);
  EXPECT_THAT(rank.err, HasSubstr("rank 9 is outside pool 'default'"));
}

}  // namespace
}  // namespace cohort
