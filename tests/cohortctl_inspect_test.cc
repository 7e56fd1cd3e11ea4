// cohortctl's inspection commands (status, members, groups, describe, events, watch, wait)
// against an in-process coordinator on 127.0.0.1:0 and four real Gloo agents in this process:
// json documents field by field against Layout::Build, tables, yaml, exit statuses.
#include <algorithm>
#include <csignal>
#include <functional>
#include <memory>
#include <sstream>
#include <streambuf>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "agent/agent.h"
#include "cli/admin_rpc.h"
#include "cli/cohortctl.h"
#include "cli/output.h"
#include "cli/table.h"
#include "common/layout.h"
#include "common/layout_proto.h"
#include "coordinator/server.h"
#include "tests/test_util.h"

namespace cohort {
namespace {

using ::cohort::testing::Field;
using ::cohort::testing::ParseJsonOrDie;
using ::google::protobuf::Value;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr int kWorld = 4;

struct Result {
  int status;
  std::string out, err;
};

// An ostream whose text another thread can wait for (the watch test reads a running command).
class WatchedStream : public std::streambuf {
 public:
  // Waits until the text contains `needle`; false after `timeout`.
  bool WaitFor(const std::string& needle, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto seen = [&] { return absl::StrContains(text_, needle); };
    return mu_.AwaitWithTimeout(absl::Condition(&seen), timeout);
  }
  std::string text() {
    absl::MutexLock lock(&mu_);
    return text_;
  }

 protected:
  int overflow(int c) override {
    if (c == EOF) return 0;
    absl::MutexLock lock(&mu_);
    text_.push_back(static_cast<char>(c));
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    absl::MutexLock lock(&mu_);
    text_.append(s, static_cast<size_t>(n));
    return n;
  }

 private:
  absl::Mutex mu_;
  std::string text_ ABSL_GUARDED_BY(mu_);
};

std::vector<int> Ints(const Value& list) {
  std::vector<int> out;
  for (const Value& v : list.list_value().values())
    out.push_back(static_cast<int>(v.number_value()));
  return out;
}

// Number fields that protobuf JSON prints as strings (int64) or numbers (int32).
int64_t Num(const Value& v) {
  return v.has_string_value() ? std::stoll(v.string_value())
                              : static_cast<int64_t>(v.number_value());
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

class CohortctlInspectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = coordinator::CoordinatorServer::Start({});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    auto layout = Layout::Build(config_);
    ASSERT_TRUE(layout.ok()) << layout.status();
    layout_ = std::make_unique<Layout>(*std::move(layout));
  }

  void TearDown() override {
    agents_.clear();  // orderly teardown before the coordinator goes
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(1));
  }

  Result Ctl(std::vector<std::string> args, std::ostream* out_stream = nullptr) {
    args.insert(args.begin(), "cohortctl");
    args.push_back("--coordinator");
    args.push_back(server_->address());
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    std::ostringstream out, err;
    int status = cli::RunCohortctl(static_cast<int>(argv.size()), argv.data(),
                                   out_stream != nullptr ? *out_stream : out, err);
    return {status, out.str(), err.str()};
  }

  // Agents agent-0 .. agent-(n-1) with rank hints 0 .. n-1, on the in-process channel.
  void StartAgents(int n) {
    for (int r = 0; r < n; ++r) {
      agent::AgentOptions options;
      options.channel = server_->InProcessChannel();
      options.identity = absl::StrCat("agent-", r);
      options.rank_hint = r;
      options.backends = {"gloo"};
      options.connect_timeout = absl::Seconds(20);
      options.allow_checks = true;  // no engine uses these communicators
      auto started = agent::Agent::Start(options);
      ASSERT_TRUE(started.ok()) << started.status();
      agents_.push_back(*std::move(started));
    }
  }

  // Long-polls the pool's state (bounded) until `done`; false on timeout.
  bool AwaitState(const std::function<bool(const v1::PoolState&)>& done) {
    cli::ConnectionFlags flags;
    flags.coordinator = server_->address();
    v1::PoolState last;
    std::ostringstream err;
    return cli::WaitForPoolState(
               flags, absl::Seconds(30), done, [](const v1::PoolState&) {}, &last, err) ==
           cli::kExitOk;
  }
  static std::function<bool(const v1::PoolState&)> MissingAre(std::vector<int> ranks) {
    return [ranks](const v1::PoolState& s) {
      return std::vector<int>(s.missing_ranks().begin(), s.missing_ranks().end()) == ranks;
    };
  }

  // tp2 x pp2 on four agents, READY.
  void FormPool() {
    StartAgents(kWorld);
    Result init = Ctl({"init", "-n", "4", "--tp", "2", "--pp", "2", "--wait", "--timeout", "60"});
    ASSERT_EQ(init.status, 0) << init.out << init.err;
  }

  ParallelConfig config_{
      .world_size = kWorld, .tensor_parallel_size = 2, .pipeline_parallel_size = 2};
  std::unique_ptr<Layout> layout_;
  std::unique_ptr<coordinator::CoordinatorServer> server_;
  std::vector<std::unique_ptr<agent::Agent>> agents_;
};

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
  EXPECT_THAT(wide.out, HasSubstr("INCARNATION"));
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
  EXPECT_FALSE(Field(m, "incarnation").string_value().empty());
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

// ---- events ---------------------------------------------------------------------------------

TEST_F(CohortctlInspectTest, Events_JoinedPlanReadyInOrder) {
  FormPool();
  Result r = Ctl({"events", "-o", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<std::string> kinds;
  const Value doc = ParseJsonOrDie(r.out);
  for (const Value& e : Field(doc, "events").list_value().values()) {
    kinds.push_back(Field(e, "kind").string_value());
  }
  auto first = [&](const std::string& kind) {
    return std::find(kinds.begin(), kinds.end(), kind) - kinds.begin();
  };
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "EVENT_KIND_JOINED"), kWorld);
  EXPECT_LT(first("EVENT_KIND_JOINED"), first("EVENT_KIND_PLAN"));
  EXPECT_LT(first("EVENT_KIND_PLAN"), first("EVENT_KIND_READY"));
  EXPECT_LT(first("EVENT_KIND_READY"), static_cast<long>(kinds.size()));

  Result table = Ctl({"events"});
  ASSERT_EQ(table.status, 0) << table.err;
  const size_t joined = table.out.find("  JOINED ");
  const size_t plan = table.out.find("  PLAN ");
  const size_t ready = table.out.find("  READY ");
  ASSERT_NE(joined, std::string::npos) << table.out;
  ASSERT_NE(plan, std::string::npos) << table.out;
  ASSERT_NE(ready, std::string::npos) << table.out;
  EXPECT_LT(joined, plan);
  EXPECT_LT(plan, ready);
  EXPECT_THAT(Lines(table.out)[0], StartsWith("TIME"));

  Result last = Ctl({"events", "--limit", "1", "-o", "json"});
  const Value last_doc = ParseJsonOrDie(last.out);
  const auto& events = Field(last_doc, "events").list_value().values();
  ASSERT_EQ(events.size(), 1);
  EXPECT_EQ(Field(events[0], "kind").string_value(), "EVENT_KIND_READY");
}

// ---- watch ----------------------------------------------------------------------------------

TEST_F(CohortctlInspectTest, Watch_JoinPlanReadyInOrder_SigintEndsWithStatus0) {
  ASSERT_EQ(Ctl({"init", "-n", "4", "--tp", "2", "--pp", "2"}).status, 0);
  WatchedStream buffer;
  std::ostream out(&buffer);
  Result watch;
  std::thread watcher([&] { watch = Ctl({"watch", "--snapshot", "-o", "json"}, &out); });
  // The snapshot comes after the watcher is registered: no event can be missed from here on.
  bool subscribed = buffer.WaitFor("\"snapshot\"", absl::Seconds(20));
  bool ready = false;
  if (subscribed) {
    StartAgents(kWorld);
    ready = buffer.WaitFor("EVENT_KIND_READY", absl::Seconds(60));
  }
  // The watch handles SIGINT from its first line on: cancel it as Ctrl-C would. (Without that
  // line the watch already ended, and a SIGINT would end this test's process.)
  if (subscribed) std::raise(SIGINT);
  watcher.join();
  ASSERT_TRUE(subscribed) << buffer.text() << watch.err;
  ASSERT_TRUE(ready) << buffer.text();
  EXPECT_EQ(watch.status, 0) << watch.err;
  std::vector<std::string> kinds;
  std::vector<std::string> lines = Lines(buffer.text());
  ASSERT_FALSE(lines.empty());
  EXPECT_THAT(lines[0], StartsWith("{\"snapshot\":"));
  for (size_t i = 1; i < lines.size(); ++i) {
    kinds.push_back(Field(Field(ParseJsonOrDie(lines[i]), "event"), "kind").string_value());
  }
  auto first = [&](const std::string& kind) {
    return std::find(kinds.begin(), kinds.end(), kind) - kinds.begin();
  };
  EXPECT_LT(first("EVENT_KIND_JOINED"), first("EVENT_KIND_PLAN"));
  EXPECT_LT(first("EVENT_KIND_PLAN"), first("EVENT_KIND_READY"));
  EXPECT_LT(first("EVENT_KIND_READY"), static_cast<long>(kinds.size()));
}

TEST_F(CohortctlInspectTest, Watch_MaxEvents_ExitsAfterTheSnapshotAsYaml) {
  FormPool();
  Result r = Ctl({"watch", "--snapshot", "--max-events", "1", "-o", "yaml"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("---\nsnapshot:\n"));
  EXPECT_THAT(r.out, HasSubstr("\n  phase: POOL_PHASE_READY\n"));
  EXPECT_THAT(r.out, HasSubstr("\n  pool: default\n"));
  Result table = Ctl({"watch", "--snapshot", "--max-events", "1"});
  ASSERT_EQ(table.status, 0) << table.err;
  EXPECT_THAT(table.out, StartsWith("snapshot  pool default: READY, generation 1, 4/4 ready"));
}

TEST_F(CohortctlInspectTest, Watch_UnknownPool_Exit1) {
  Result r = Ctl({"watch", "--pool", "ghost"});
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, StartsWith("error: unknown pool 'ghost'"));
}

// ---- wait -----------------------------------------------------------------------------------

TEST_F(CohortctlInspectTest, Wait_ReadyExit0_DestroyedTimesOutWithExit3) {
  FormPool();
  Result ready = Ctl({"wait", "--state", "ready", "--timeout", "10s"});
  EXPECT_EQ(ready.status, 0) << ready.err;
  EXPECT_THAT(ready.out, StartsWith("pool default: READY, generation 1"));
  Result generation = Ctl({"wait", "--state", "ready", "--generation", "1", "--timeout", "0"});
  EXPECT_EQ(generation.status, 0) << generation.err;

  Result destroyed = Ctl({"wait", "--state", "destroyed", "--timeout", "0.3s"});
  EXPECT_EQ(destroyed.status, 3);
  EXPECT_THAT(destroyed.err,
              StartsWith("error: pool default not DESTROYED after 300ms: READY, generation 1, "
                         "4/4 ready"));
}

TEST_F(CohortctlInspectTest, Wait_NamesMissingRanksOnTimeout) {
  ASSERT_EQ(Ctl({"init", "-n", "4", "--dp", "4"}).status, 0);
  Result r = Ctl({"wait", "--state", "ready", "--timeout", "200ms", "-o", "json"});
  EXPECT_EQ(r.status, 3);
  EXPECT_THAT(r.err, HasSubstr("missing ranks [0-3]"));
  EXPECT_EQ(Field(Field(ParseJsonOrDie(r.out), "state"), "phase").string_value(),
            "POOL_PHASE_WAITING");
}

TEST_F(CohortctlInspectTest, Wait_AfterDestroy_ReachesDestroyed) {
  FormPool();
  ASSERT_EQ(Ctl({"destroy"}).status, 0);
  Result r = Ctl({"wait", "--state", "destroyed", "--timeout", "30s"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("pool default: DESTROYED"));
}

TEST_F(CohortctlInspectTest, Wait_BadFlagsExit2_UnknownPoolExit1) {
  EXPECT_EQ(Ctl({"wait", "--state", "ready", "--timeout", "soon"}).status, 2);
  EXPECT_EQ(Ctl({"wait", "--state", "sleeping"}).status, 2);
  Result ghost = Ctl({"wait", "--state", "ready", "--pool", "ghost", "--timeout", "1s"});
  EXPECT_EQ(ghost.status, 1);
  EXPECT_THAT(ghost.err, StartsWith("error: unknown pool 'ghost'"));
}

// ---- yaml, errors, help ---------------------------------------------------------------------

TEST_F(CohortctlInspectTest, Yaml_Members_SameDataAsJson) {
  FormPool();
  Result yaml = Ctl({"members", "-o", "yaml"});
  ASSERT_EQ(yaml.status, 0) << yaml.err;
  EXPECT_THAT(yaml.out, StartsWith("state:\n"));
  EXPECT_THAT(yaml.out, HasSubstr("\n  phase: POOL_PHASE_READY\n"));
  EXPECT_THAT(yaml.out, HasSubstr("\n  pool: default\n"));
  EXPECT_THAT(yaml.out, HasSubstr("\n  generation: \"1\"\n"));  // int64: a JSON string
  EXPECT_THAT(yaml.out, HasSubstr("\n  world_size: 4\n"));
  EXPECT_THAT(yaml.out, HasSubstr("\n  members:\n    - agent_version:"));
  for (int rank = 0; rank < kWorld; ++rank) {
    EXPECT_THAT(yaml.out, HasSubstr(absl::StrCat("\n      identity: agent-", rank, "\n")));
  }
  EXPECT_THAT(yaml.out, HasSubstr("\n      identity: agent-0\n"));
  EXPECT_THAT(yaml.out, HasSubstr("\n      rank: 0\n"));  // defaults are printed too
  // The world group: a list of scalars in flow style inside block sequences.
  EXPECT_THAT(yaml.out, HasSubstr("\n      - groups:\n          - ranks: [0, 1, 2, 3]\n"
                                  "        kind: GROUP_KIND_WORLD\n"));
}

TEST(CohortctlOutputTest, Yaml_QuotesWhatYamlWouldReadAsSomethingElse) {
  absl::StatusOr<std::string> yaml = cli::JsonToYaml(R"({
    "plain": "agent-0", "words": "plans sent", "bool": "true", "no": "NO", "num": "1.5",
    "addr": "127.0.0.1:7070", "colon": "a: b", "hash": "#x", "empty": "", "dash": "-x",
    "nl": "a\nb", "quote": "say \"hi\"", "utf8": "caf\u00e9", "int": 3, "real": 0.25,
    "t": true, "null": null, "list": [1, "x y", "[z]"], "none": [], "obj": {},
    "nested": [{"a": 1, "b": [{"c": null}]}, [1, 2], [[3], {"d": "e"}]]
  })");
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  EXPECT_EQ(*yaml,
            "addr: \"127.0.0.1:7070\"\n"
            "bool: \"true\"\n"
            "colon: \"a: b\"\n"
            "dash: \"-x\"\n"
            "empty: \"\"\n"
            "hash: \"#x\"\n"
            "int: 3\n"
            "list: [1, x y, \"[z]\"]\n"
            "nested:\n"
            "  - a: 1\n"
            "    b:\n"
            "      - c: null\n"
            "  - [1, 2]\n"
            // A block list directly inside a list starts on its own line (yaml-cpp's layout; no
            // cohortctl document has one: protobuf has no lists of lists).
            "  -\n"
            "    - [3]\n"
            "    - d: e\n"
            "nl: \"a\\nb\"\n"
            "\"no\": \"NO\"\n"
            "none: []\n"
            "\"null\": null\n"
            "num: \"1.5\"\n"
            "obj: {}\n"
            "plain: agent-0\n"
            "quote: \"say \\\"hi\\\"\"\n"
            "real: 0.25\n"
            "t: true\n"
            "utf8: \"caf\xc3\xa9\"\n"
            "words: plans sent\n");
  EXPECT_FALSE(cli::JsonToYaml("{not json").ok());
}

TEST(CohortctlOutputTest, ParseDurationFlag_UnitsAndPlainSeconds) {
  EXPECT_EQ(*ParseDurationFlag("60s"), absl::Seconds(60));
  EXPECT_EQ(*ParseDurationFlag("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseDurationFlag("2m"), absl::Minutes(2));
  EXPECT_EQ(*ParseDurationFlag("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseDurationFlag("0.3"), absl::Milliseconds(300));
  EXPECT_EQ(*ParseDurationFlag("0"), absl::ZeroDuration());
  EXPECT_FALSE(ParseDurationFlag("soon").ok());
  EXPECT_FALSE(ParseDurationFlag("-1s").ok());
  EXPECT_FALSE(ParseDurationFlag("inf").ok());
  EXPECT_FALSE(ParseDurationFlag("").ok());
}

TEST(CohortctlOutputTest, Colours_OnlyWhenAskedAndAlignedByVisibleWidth) {
  const cli::Style color(true);
  EXPECT_EQ(color.State("READY"), "\x1b[32mREADY\x1b[0m");
  EXPECT_EQ(cli::ColorOf("FAILED"), cli::Color::kRed);
  EXPECT_EQ(cli::ColorOf("MEMBER_LOST"), cli::Color::kRed);
  EXPECT_EQ(cli::ColorOf("INITIALIZING"), cli::Color::kYellow);
  EXPECT_EQ(cli::ColorOf("STANDBY"), cli::Color::kDim);
  EXPECT_EQ(cli::Style(false).State("READY"), "READY");
  // Output to anything but a terminal (here a string stream) is never coloured.
  cli::OutputFlags flags;
  std::ostringstream stream;
  EXPECT_FALSE(flags.StyleFor(stream).color());

  cli::Table table({"A", "B"});
  table.AddRow({color.State("READY"), "x"});
  table.AddRow({"FAILED!", "y"});
  std::ostringstream out;
  table.Print(out);
  EXPECT_EQ(out.str(), "A        B\n\x1b[32mREADY\x1b[0m    x\nFAILED!  y\n");
}

TEST_F(CohortctlInspectTest, Unreachable_Exit4) {
  std::vector<const char*> argv = {"cohortctl", "members", "--coordinator", "127.0.0.1:1"};
  std::ostringstream out, err;
  EXPECT_EQ(cli::RunCohortctl(static_cast<int>(argv.size()), argv.data(), out, err), 4);
  EXPECT_THAT(err.str(), HasSubstr("cannot reach the coordinator at 127.0.0.1:1"));
}

TEST_F(CohortctlInspectTest, Help_EveryCommandShowsAnExample) {
  for (std::vector<std::string> command : {std::vector<std::string>{"status"},
                                           {"members"},
                                           {"groups"},
                                           {"events"},
                                           {"watch"},
                                           {"wait"},
                                           {"describe"},
                                           {"describe", "rank"},
                                           {"describe", "group"}}) {
    SCOPED_TRACE(command[0]);
    command.push_back("--help");
    Result r = Ctl(command);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("cohortctl " + command[0]));
    EXPECT_THAT(r.out, HasSubstr("Example"));
  }
  Result rank = Ctl({"describe", "rank", "--help"});
  EXPECT_THAT(rank.out, HasSubstr("RANK"));
}

}  // namespace
}  // namespace cohort
