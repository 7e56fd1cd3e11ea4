// cohortctl events, watch and wait against an in-process coordinator and four real Gloo
// agents: order of events, streaming, long-polls, timeouts and exit statuses.
#include <algorithm>
#include <csignal>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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
using ::cohort::testing::WatchedStream;
using ::google::protobuf::Value;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

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

}  // namespace
}  // namespace cohort
