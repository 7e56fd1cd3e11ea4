// The in-process Coordinator fixture shared by the coordinator_*_test.cc files: a fake clock, a
// timer queue fired by hand, fake session sinks, and helpers that join, initialize, report and
// heartbeat the way agents do.
#ifndef COHORT_TESTS_COORDINATOR_FIXTURE_H_
#define COHORT_TESTS_COORDINATOR_FIXTURE_H_

#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/layout_proto.h"
#include "coordinator/coordinator.h"
#include "tests/test_util.h"

namespace cohort::coordinator {

class FakeSink : public SessionSink {
 public:
  void Send(const v1::CoordinatorMessage& m) override { messages.push_back(m); }
  void Close(const absl::Status& why) override { closed = why; }
  std::vector<v1::CoordinatorMessage> messages;
  // How the coordinator ended the session, if it did.
  std::optional<absl::Status> closed;

  std::vector<v1::Plan> plans() const {
    std::vector<v1::Plan> out;
    for (const auto& m : messages) {
      if (m.has_plan()) out.push_back(m.plan());
    }
    return out;
  }
  std::vector<v1::Teardown> teardowns() const {
    std::vector<v1::Teardown> out;
    for (const auto& m : messages) {
      if (m.has_teardown()) out.push_back(m.teardown());
    }
    return out;
  }
};

class CoordinatorTest : public ::testing::Test {
 protected:
  CoordinatorTest() { Reset(CoordinatorOptions{}); }

  void Reset(CoordinatorOptions options) {
    coordinator_.reset();
    coordinator_ = std::make_unique<Coordinator>(std::move(options), &clock_, &timers_);
  }

  struct Joined {
    std::string session_id;
    int rank;
    FakeSink* sink;
  };

  // Joins and attaches an agent.
  Joined JoinAgent(const std::string& identity, std::optional<int> hint = std::nullopt,
                   const std::string& incarnation = "inc-1", const std::string& pool = "",
                   const v1::HeldState& held = v1::HeldState()) {
    v1::JoinRequest request;
    *request.mutable_held() = held;
    request.set_pool(pool);
    request.set_identity(identity);
    request.set_incarnation(incarnation);
    request.add_backends("gloo");
    if (hint.has_value()) request.set_rank_hint(*hint);
    request.set_accepts_rank_runs(accepts_rank_runs_);
    absl::StatusOr<v1::JoinResponse> joined = coordinator_->Join(request);
    EXPECT_TRUE(joined.ok()) << joined.status();
    if (!joined.ok()) return {"", -2, nullptr};
    sinks_.push_back(std::make_unique<FakeSink>());
    EXPECT_TRUE(coordinator_->Attach(joined->session_id(), sinks_.back().get()).ok());
    return {joined->session_id(), joined->rank(), sinks_.back().get()};
  }

  absl::StatusOr<v1::InitializeResponse> Init(ParallelConfig config, int64_t deadline_ms = 0) {
    v1::InitializeRequest request;
    *request.mutable_config() = ToProto(config);
    request.mutable_options()->set_backend("gloo");
    request.mutable_options()->set_deadline_ms(deadline_ms);
    return coordinator_->Initialize(request);
  }

  absl::Status Report(const Joined& j, int64_t generation, bool ok, const std::string& error = "") {
    v1::AgentMessage m;
    m.mutable_report()->set_generation(generation);
    m.mutable_report()->set_ok(ok);
    m.mutable_report()->set_error(error);
    return coordinator_->HandleAgentMessage(j.session_id, m);
  }

  absl::Status TeardownDone(const Joined& j, int64_t generation, v1::DestroyScope scope) {
    v1::AgentMessage m;
    m.mutable_teardown()->set_generation(generation);
    m.mutable_teardown()->set_scope(scope);
    m.mutable_teardown()->set_ok(true);
    return coordinator_->HandleAgentMessage(j.session_id, m);
  }

  v1::PoolState State(const std::string& pool = "default") {
    absl::StatusOr<v1::PoolState> s = coordinator_->GetState(pool);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : v1::PoolState();
  }

  // Moves the clock second by second, every agent heartbeating, firing due timers.
  void Tick(const std::vector<Joined>& agents, int seconds) {
    v1::AgentMessage heartbeat;
    heartbeat.mutable_heartbeat();
    for (int i = 0; i < seconds; ++i) {
      clock_.Advance(absl::Seconds(1));
      for (const Joined& j : agents) {
        ASSERT_TRUE(coordinator_->HandleAgentMessage(j.session_id, heartbeat).ok());
      }
      timers_.FireDue();
    }
  }

  // Lets the settle window after a loss pass (CoordinatorOptions::regroup_settle): the next
  // generation starts now if every rank is attached.
  void SettleLosses() {
    clock_.Advance(coordinator_->options().regroup_settle);
    timers_.FireDue();
  }

  // agent-0 .. agent-(world-1) joined, `config` initialized and generation 1 READY (empty if
  // any step failed, with the failure reported).
  std::vector<Joined> ReadyWorld(const ParallelConfig& config) {
    std::vector<Joined> agents = JoinWorld(static_cast<int>(config.world_size));
    absl::StatusOr<v1::InitializeResponse> init = Init(config);
    EXPECT_TRUE(init.ok()) << init.status();
    if (!init.ok()) return {};
    for (const Joined& a : agents) {
      absl::Status reported = Report(a, 1, true);
      EXPECT_TRUE(reported.ok()) << reported;
      if (!reported.ok()) return {};
    }
    EXPECT_EQ(State().phase(), v1::POOL_PHASE_READY);
    return agents;
  }

  std::vector<Joined> JoinWorld(int n) {
    std::vector<Joined> out;
    for (int r = 0; r < n; ++r) out.push_back(JoinAgent("agent-" + std::to_string(r), r));
    return out;
  }

  // JoinAgent's agents read RankGroup.runs (as cohort-agent does); off: old agents.
  bool accepts_rank_runs_ = false;
  FakeClock clock_;
  TimerQueue timers_{&clock_};
  std::vector<std::unique_ptr<FakeSink>> sinks_;
  std::unique_ptr<Coordinator> coordinator_;
};

inline const ParallelConfig kDp2Cfg2U2{
    .world_size = 8, .data_parallel_size = 2, .cfg_parallel_size = 2, .ulysses_degree = 2};

// What an agent reports holding when it joins again: rank `rank` of a READY generation of
// `config` on Gloo (its world communicator READY).
inline v1::HeldState HeldOf(int rank, int64_t generation, const ParallelConfig& config) {
  v1::HeldState held;
  held.set_holding(true);
  held.set_rank(rank);
  held.set_world_size(static_cast<int>(config.world_size));
  held.set_generation(generation);
  *held.mutable_config() = ToProto(config);
  held.set_backend("gloo");
  v1::GroupReport* g = held.add_groups();
  g->set_kind(v1::GROUP_KIND_WORLD);
  g->set_state(v1::COMM_STATE_READY);
  return held;
}

// Reports READY for `j` with one group per kind of its plan.
inline absl::Status ReportWithGroups(Coordinator& coordinator, const std::string& session_id,
                                     const v1::Plan& plan) {
  v1::AgentMessage m;
  m.mutable_report()->set_generation(plan.generation());
  m.mutable_report()->set_ok(true);
  for (const v1::GroupSet& set : plan.layout().group_sets()) {
    v1::GroupReport* g = m.mutable_report()->add_groups();
    g->set_kind(set.kind());
    g->set_index(set.groups(0).index());
    g->set_state(v1::COMM_STATE_READY);
  }
  return coordinator.HandleAgentMessage(session_id, m);
}

}  // namespace cohort::coordinator

#endif  // COHORT_TESTS_COORDINATOR_FIXTURE_H_
