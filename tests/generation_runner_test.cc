// GenerationRunner without a coordinator: plans built over the "none" backend and over Gloo on
// loopback with an in-memory rendezvous store, teardowns, aborts, checks, the backend factory
// seam, and where the runner's log lines go.
#include "agent/generation_runner.h"

#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/comm/rendezvous_store.h"
#include "agent/generation_protos.h"
#include "common/logging.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "tests/comm/status_matchers.h"

namespace cohort::agent {
namespace {

using ::cohort::testing::IsOk;
using ::cohort::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Every message a runner sent, in order.
class Outbox {
 public:
  GenerationRunner::SendFn Sender() {
    return [this](const v1::AgentMessage& m) {
      absl::MutexLock lock(&mu_);
      messages_.push_back(m);
    };
  }
  std::vector<v1::AgentMessage> messages() const {
    absl::MutexLock lock(&mu_);
    return messages_;
  }
  // The messages that carry `Has` (e.g. &v1::AgentMessage::has_report).
  std::vector<v1::AgentMessage> Of(bool (v1::AgentMessage::*has)() const) const {
    std::vector<v1::AgentMessage> out;
    for (const v1::AgentMessage& m : messages()) {
      if ((m.*has)()) out.push_back(m);
    }
    return out;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<v1::AgentMessage> messages_ ABSL_GUARDED_BY(mu_);
};

// A plan's groups as runs become the same group specs as listed ranks; a malformed run is refused
// naming the group.
TEST(GroupRequests, RunsAndListedRanksAreTheSameGroups_MalformedRunsAreRefused) {
  auto requests = [](const std::string& groups) {
    v1::Plan plan;
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
        "rank: 5 world_size: 8 layout { " + groups + " }", &plan));
    return GroupRequests(plan);
  };
  for (const char* tp : {"ranks: 4 ranks: 5 ranks: 6 ranks: 7",
                         "compact { runs { first: 4 count: 4 stride: 1 } }"}) {
    absl::StatusOr<std::vector<GroupSpec>> specs = requests(
        "group_sets { kind: GROUP_KIND_WORLD groups { compact { runs { first: 0 count: 8 stride: 1 "
        "} } } } "
        "group_sets { kind: GROUP_KIND_TP groups { index: 1 " +
        std::string(tp) +
        " } } "
        "group_sets { kind: GROUP_KIND_DP groups { index: 1 compact { runs { first: 1 count: 2 "
        "stride: 4 } } } "
        "}");
    ASSERT_THAT(specs.status(), IsOk());
    ASSERT_EQ(specs->size(), 2u);  // the world is built from world_size
    EXPECT_THAT((*specs)[0].ranks, ElementsAre(4, 5, 6, 7));
    EXPECT_EQ((*specs)[0].rank_in_group, 1);
    EXPECT_EQ((*specs)[0].group_index, 1);
    EXPECT_THAT((*specs)[1].ranks, ElementsAre(1, 5));
    EXPECT_EQ((*specs)[1].rank_in_group, 1);
  }
  EXPECT_THAT(
      requests("group_sets { kind: GROUP_KIND_TP groups { compact { runs { first: 4 count: 5 "
               "stride: 1 } } } }")
          .status(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("malformed plan: tp group: a group has rank 8, outside the "
                         "world of 8")));
  EXPECT_THAT(
      requests("group_sets { kind: GROUP_KIND_TP groups { compact { runs { first: 0 count: 2 "
               "stride: 1 } } } }")
          .status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank not in its group")));
}

// Generation keys of one pool over one in-memory store, as the coordinator would keep them.
GenerationRunner::StoreFactory StoresOver(InMemoryRendezvousStore* base) {
  return [base](const std::string& pool, int64_t generation) {
    return std::make_unique<PrefixedRendezvousStore>(*base,
                                                     absl::StrCat(pool, "/", generation, "/"));
  };
}

// The plan of `rank` in a world of `world_size` whose only model-parallel group is one tp group
// of every rank.
v1::Plan TpPlan(const std::string& backend, int64_t generation, int rank, int world_size) {
  v1::Plan plan;
  plan.set_pool("default");
  plan.set_generation(generation);
  plan.set_rank(rank);
  plan.set_world_size(world_size);
  plan.set_backend(backend);
  plan.set_deadline_ms(20'000);
  plan.set_verify(true);
  for (v1::GroupKind kind : {v1::GROUP_KIND_WORLD, v1::GROUP_KIND_TP}) {
    v1::GroupSet* set = plan.mutable_layout()->add_group_sets();
    set->set_kind(kind);
    v1::RankGroup* group = set->add_groups();
    group->set_index(0);
    for (int r = 0; r < world_size; ++r) group->add_ranks(r);
  }
  return plan;
}

v1::Teardown TeardownOf(int64_t generation, bool abort, const std::string& reason = "") {
  v1::Teardown teardown;
  teardown.set_generation(generation);
  teardown.set_scope(v1::DESTROY_SCOPE_ALL);
  teardown.set_abort(abort);
  teardown.set_reason(reason);
  return teardown;
}

GenerationRunnerOptions Options(const std::string& identity) {
  GenerationRunnerOptions options;
  options.identity = identity;
  return options;
}

TEST(GenerationRunnerTest, Build_NoneBackend_ReadyWithoutVerification) {
  InMemoryRendezvousStore store;
  Outbox out;
  GenerationRunner runner(Options("agent-0"), StoresOver(&store), out.Sender());

  runner.Build(TpPlan("none", 1, 0, 2));

  std::vector<v1::AgentMessage> reports = out.Of(&v1::AgentMessage::has_report);
  ASSERT_EQ(reports.size(), 1u);
  const v1::GenerationReport& report = reports[0].report();
  EXPECT_TRUE(report.ok()) << report.error();
  ASSERT_EQ(report.groups_size(), 2);
  for (const v1::GroupReport& g : report.groups()) {
    EXPECT_EQ(g.state(), v1::COMM_STATE_READY);
    EXPECT_EQ(g.verify_sum(), 0) << "backend none has nothing to verify";
  }
  std::vector<std::string> phases;
  for (const v1::AgentMessage& m : out.Of(&v1::AgentMessage::has_progress)) {
    phases.push_back(m.progress().phase());
  }
  EXPECT_THAT(phases, ElementsAre("world", "groups"));
  EXPECT_THAT(runner.WaitForReady(absl::ZeroDuration(), 1), IsOk());
  EXPECT_EQ(runner.HeldCommunicators(), 2);
  EXPECT_EQ(store.size(), 0u) << "backend none needs no rendezvous";
  const v1::HeldState held = runner.Held();
  EXPECT_TRUE(held.holding());
  EXPECT_EQ(held.generation(), 1);
  EXPECT_EQ(held.backend(), "none");
  EXPECT_EQ(held.groups_size(), 2);
}

TEST(GenerationRunnerTest, Build_GlooTwoRanks_VerifiesEveryGroupThenTearsDown) {
  InMemoryRendezvousStore store;
  Outbox out[2];
  std::unique_ptr<GenerationRunner> runners[2];
  for (int r = 0; r < 2; ++r) {
    runners[r] = std::make_unique<GenerationRunner>(Options(absl::StrCat("agent-", r)),
                                                    StoresOver(&store), out[r].Sender());
  }
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] { runners[r]->Build(TpPlan("gloo", 1, r, 2)); });
  }
  for (std::thread& t : threads) t.join();

  for (int r = 0; r < 2; ++r) {
    std::vector<v1::AgentMessage> reports = out[r].Of(&v1::AgentMessage::has_report);
    ASSERT_EQ(reports.size(), 1u);
    const v1::GenerationReport& report = reports[0].report();
    ASSERT_TRUE(report.ok()) << report.error();
    ASSERT_EQ(report.groups_size(), 2);
    for (const v1::GroupReport& g : report.groups()) {
      EXPECT_EQ(g.state(), v1::COMM_STATE_READY);
      EXPECT_EQ(g.verify_sum(), 1) << "global ranks 0 + 1";
    }
    ASSERT_NE(runners[r]->groups(), nullptr);
    EXPECT_EQ(runners[r]->groups()->generation, 1);
  }

  for (int r = 0; r < 2; ++r) {
    runners[r]->TearDown(TeardownOf(1, /*abort=*/false));
    std::vector<v1::AgentMessage> teardowns = out[r].Of(&v1::AgentMessage::has_teardown);
    ASSERT_EQ(teardowns.size(), 1u);
    EXPECT_TRUE(teardowns[0].teardown().ok()) << teardowns[0].teardown().error();
    for (const v1::GroupReport& g : teardowns[0].teardown().groups()) {
      EXPECT_EQ(g.state(), v1::COMM_STATE_DESTROYED);
    }
    EXPECT_EQ(runners[r]->HeldCommunicators(), 0);
    EXPECT_EQ(runners[r]->groups(), nullptr);
    EXPECT_THAT(runners[r]->WaitForTeardown(absl::ZeroDuration(), 1, /*world_too=*/true), IsOk());
    EXPECT_FALSE(runners[r]->Held().holding());
  }
}

TEST(GenerationRunnerTest, Build_UnknownBackend_ReportsTheFailure) {
  InMemoryRendezvousStore store;
  Outbox out;
  GenerationRunner runner(Options("agent-0"), StoresOver(&store), out.Sender());

  runner.Build(TpPlan("bogus", 1, 0, 1));

  std::vector<v1::AgentMessage> reports = out.Of(&v1::AgentMessage::has_report);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_FALSE(reports[0].report().ok());
  EXPECT_THAT(reports[0].report().error(), HasSubstr("unknown backend"));
  EXPECT_THAT(runner.WaitForReady(absl::ZeroDuration(), 1),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("unknown backend")));
  EXPECT_EQ(runner.HeldCommunicators(), 0);
}

TEST(GenerationRunnerTest, AbortNow_BeforeTheBuild_SkipsThePlanAndTellsTheEngine) {
  InMemoryRendezvousStore store;
  Outbox out;
  GenerationRunner runner(Options("agent-0"), StoresOver(&store), out.Sender());
  std::vector<absl::Status> told;
  runner.OnAbort([&told](const absl::Status& why) { told.push_back(why); });

  runner.AbortNow(TeardownOf(1, /*abort=*/true, "rank 1 lost"));
  runner.Build(TpPlan("none", 1, 0, 2));

  EXPECT_EQ(out.Of(&v1::AgentMessage::has_report).size(), 0u);
  EXPECT_EQ(runner.HeldCommunicators(), 0);
  EXPECT_THAT(runner.generation_status(),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("rank 1 lost")));
  ASSERT_EQ(told.size(), 1u);
  EXPECT_THAT(told[0], StatusIs(absl::StatusCode::kAborted, HasSubstr("rank 1 lost")));
}

TEST(GenerationRunnerTest, AbortThenTeardown_OfAReadyGeneration_ReportsAborted) {
  InMemoryRendezvousStore store;
  Outbox out;
  GenerationRunner runner(Options("agent-0"), StoresOver(&store), out.Sender());
  runner.Build(TpPlan("none", 1, 0, 2));
  ASSERT_THAT(runner.WaitForReady(absl::ZeroDuration(), 1), IsOk());

  runner.AbortNow(TeardownOf(1, /*abort=*/true, "peer lost"));
  runner.TearDown(TeardownOf(1, /*abort=*/true, "peer lost"));

  std::vector<v1::AgentMessage> teardowns = out.Of(&v1::AgentMessage::has_teardown);
  ASSERT_EQ(teardowns.size(), 1u);
  EXPECT_TRUE(teardowns[0].teardown().ok());
  ASSERT_EQ(teardowns[0].teardown().groups_size(), 2);
  for (const v1::GroupReport& g : teardowns[0].teardown().groups()) {
    EXPECT_EQ(g.state(), v1::COMM_STATE_ABORTED);
  }
  EXPECT_EQ(runner.HeldCommunicators(), 0);
  EXPECT_THAT(runner.generation_status(), StatusIs(absl::StatusCode::kAborted));
}

TEST(GenerationRunnerTest, NotePlan_OfANewerGeneration_SupersedesAnOlderPlan) {
  InMemoryRendezvousStore store;
  Outbox out;
  GenerationRunner runner(Options("agent-0"), StoresOver(&store), out.Sender());

  runner.NotePlan(2);
  runner.Build(TpPlan("none", 1, 0, 2));

  EXPECT_EQ(out.Of(&v1::AgentMessage::has_report).size(), 0u);
  EXPECT_THAT(runner.WaitForReady(absl::ZeroDuration(), 1),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("superseded by generation 2")));
}

TEST(GenerationRunnerTest, Check_RefusedUnlessAllowed) {
  InMemoryRendezvousStore store;
  Outbox out;
  GenerationRunner runner(Options("agent-0"), StoresOver(&store), out.Sender());
  runner.Build(TpPlan("none", 1, 0, 2));
  v1::Check check;
  check.set_generation(1);

  runner.Check(check);

  std::vector<v1::AgentMessage> states = out.Of(&v1::AgentMessage::has_group_states);
  ASSERT_EQ(states.size(), 1u);
  ASSERT_EQ(states[0].group_states().groups_size(), 2);
  for (const v1::GroupReport& g : states[0].group_states().groups()) {
    EXPECT_THAT(g.error(), HasSubstr("check refused"));
  }
}

TEST(GenerationRunnerTest, Check_Allowed_NoneBackendGroupsAreReady) {
  InMemoryRendezvousStore store;
  Outbox out;
  GenerationRunnerOptions options = Options("agent-0");
  options.allow_checks = true;
  GenerationRunner runner(options, StoresOver(&store), out.Sender());
  runner.Build(TpPlan("none", 1, 0, 2));
  v1::Check check;
  check.set_generation(1);
  v1::Check other;
  other.set_generation(7);

  runner.Check(check);
  runner.Check(other);

  std::vector<v1::AgentMessage> states = out.Of(&v1::AgentMessage::has_group_states);
  ASSERT_EQ(states.size(), 2u);
  ASSERT_EQ(states[0].group_states().groups_size(), 2);
  for (const v1::GroupReport& g : states[0].group_states().groups()) {
    EXPECT_EQ(g.state(), v1::COMM_STATE_READY);
    EXPECT_EQ(g.error(), "");
  }
  EXPECT_EQ(states[1].group_states().generation(), 7);
  EXPECT_EQ(states[1].group_states().groups_size(), 0) << "not the generation held";
}

TEST(GenerationRunnerTest, BackendFactory_ServesThePlansBackend) {
  InMemoryRendezvousStore store;
  Outbox out;
  GenerationRunnerOptions options = Options("agent-0");
  std::vector<std::string> asked;
  // A double standing in for NCCL: the plan names "nccl", the factory hands out "none".
  options.backend_factory = [&asked](absl::string_view name, const BackendOptions& backend) {
    asked.emplace_back(name);
    return MakeBackend("none", backend);
  };
  GenerationRunner runner(options, StoresOver(&store), out.Sender());

  runner.Build(TpPlan("nccl", 1, 0, 2));

  EXPECT_THAT(asked, ElementsAre("nccl"));
  EXPECT_THAT(runner.WaitForReady(absl::ZeroDuration(), 1), IsOk());
}

TEST(GenerationRunnerTest, SessionEnded_EndsWaitsForReady) {
  InMemoryRendezvousStore store;
  Outbox out;
  GenerationRunner runner(Options("agent-0"), StoresOver(&store), out.Sender());

  runner.SessionEnded(absl::UnavailableError("coordinator gone"));

  EXPECT_THAT(runner.WaitForReady(absl::Hours(1), 1),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("coordinator gone")));
}

// An engine that embeds the agent keeps its own default logger: the agent's lines go to the
// "cohort" logger only.
TEST(GenerationRunnerTest, Logs_GoToTheCohortLogger_NotTheEnginesDefault) {
  std::ostringstream engine_lines;
  auto engine = std::make_shared<spdlog::logger>(
      "engine", std::make_shared<spdlog::sinks::ostream_sink_mt>(engine_lines));
  spdlog::set_default_logger(engine);
  std::ostringstream cohort_lines;
  spdlog::drop(kLibraryLoggerName);
  auto cohort = std::make_shared<spdlog::logger>(
      kLibraryLoggerName, std::make_shared<spdlog::sinks::ostream_sink_mt>(cohort_lines));
  spdlog::register_logger(cohort);

  {
    InMemoryRendezvousStore store;
    Outbox out;
    GenerationRunner runner(Options("agent-0"), StoresOver(&store), out.Sender());
    runner.Build(TpPlan("none", 1, 0, 2));
    runner.Build(TpPlan("bogus", 2, 0, 2));
  }
  cohort->flush();
  engine->flush();

  EXPECT_THAT(cohort_lines.str(), HasSubstr("generation 1 READY"));
  EXPECT_THAT(cohort_lines.str(), HasSubstr("generation 2 failed"));
  EXPECT_EQ(engine_lines.str(), "");
  EXPECT_EQ(spdlog::default_logger(), engine);
  spdlog::drop(kLibraryLoggerName);
}

}  // namespace
}  // namespace cohort::agent
