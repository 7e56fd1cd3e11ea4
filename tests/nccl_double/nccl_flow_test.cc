// The production binaries with the NCCL backend, in several processes, on the NCCL double: a
// cohort-coordinator and N cohort-agent processes, unchanged, with <build>/nccl-double first on
// their LD_LIBRARY_PATH (agent r on fake GPU r, its own fault control file and counters). The
// scenarios a GPU cluster would see: forming every kind by split and with per-group ids at world
// 1, 2 and 8, Check, destroys; a killed agent; an asynchronous error after READY; a rank that
// never arrives; two ranks on one GPU; a build cut short by the next generation. Figures print as
// "nccl-double: ..." lines (no timing is asserted).
#include <signal.h>

#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "tests/cluster.h"
#include "tests/scratch_dir.h"

namespace cohort::testing {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kDeadline = absl::Seconds(90);

class NcclFlowTest : public ::testing::Test {
 protected:
  // A coordinator and n agents; agent r on fake GPU device(r) (default r).
  void Start(
      int n, std::function<int(int)> device = [](int r) { return r; }) {
    cluster_ = std::make_unique<Cluster>();
    ASSERT_TRUE(cluster_->ok());
    cluster_->set_agent_env([this](int r) { return AgentEnv(r); });
    device_ = std::move(device);
    for (int r = 0; r < n; ++r) StartAgent(r);
  }
  void StartAgent(int r) { cluster_->StartAgent(r, r, {"--device", absl::StrCat(device_(r))}); }

  std::vector<std::string> AgentEnv(int r) const {
    std::vector<std::string> env = {
        std::string("LD_LIBRARY_PATH=") + COHORT_NCCL_DOUBLE_LIB_DIR,
        "COHORT_NCCL_DOUBLE_DIR=" + scratch_ / "rendezvous",
        "COHORT_NCCL_DOUBLE_CONTROL=" + Control(r),
        "COHORT_NCCL_DOUBLE_STATUS=" + Status(r),
    };
    env.insert(env.end(), extra_env_.begin(), extra_env_.end());
    return env;
  }
  std::string Control(int r) const { return scratch_ / absl::StrCat("control-", r); }
  std::string Status(int r) const { return scratch_ / absl::StrCat("status-", r); }
  void WriteControl(int r, const std::string& text) {
    std::ofstream(Control(r), std::ios::trunc) << text;
  }

  absl::StatusOr<v1::InitializeResponse> Initialize(const ParallelConfig& config,
                                                    v1::InitMode mode = v1::INIT_MODE_SPLIT,
                                                    int64_t deadline_ms = 60000) {
    v1::InitializeRequest request;
    *request.mutable_config() = ToProto(config);
    request.mutable_options()->set_backend("nccl");
    request.mutable_options()->set_init_mode(mode);
    request.mutable_options()->set_deadline_ms(deadline_ms);
    return cluster_->client().Initialize(request);
  }

  // The double's counters in agent r (comms_live, comms_aborted, buffers_live, streams_live...),
  // as it last wrote them.
  std::map<std::string, long> Counters(int r) const {
    std::map<std::string, long> counters;
    for (const std::string& path : {Status(r), Status(r) + ".cuda"}) {
      std::istringstream in(ScratchDir::Read(path));
      std::string name;
      long value = 0;
      while (in >> name >> value) counters[name] = value;
    }
    return counters;
  }
  // Waits until agent r's counter `name` is `value` (the double rewrites its files as they
  // change; a process that never made a communicator has none: 0); false at the deadline.
  bool WaitCounter(int r, const std::string& name, long value) const {
    const absl::Time deadline = absl::Now() + kDeadline;
    while (absl::Now() < deadline) {
      std::map<std::string, long> c = Counters(r);
      if (c[name] == value) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }
  // After a full destroy: nothing of the double is left in any agent.
  void ExpectNothingLeft(int n) {
    for (int r = 0; r < n; ++r) {
      SCOPED_TRACE(absl::StrCat("agent ", r));
      EXPECT_TRUE(WaitCounter(r, "comms_live", 0));
      EXPECT_TRUE(WaitCounter(r, "buffers_live", 0));
      EXPECT_TRUE(WaitCounter(r, "streams_live", 0));
    }
  }

  absl::StatusOr<v1::PoolState> WaitReady(int64_t generation) {
    absl::StatusOr<v1::PoolState> s =
        cluster_->WaitForPhase(v1::POOL_PHASE_READY, generation, kDeadline);
    if (s.ok() && s->phase() != v1::POOL_PHASE_READY) {
      return absl::InternalError(absl::StrCat("pool FAILED: ", s->error()));
    }
    return s;
  }

  int CountEvents(v1::EventKind kind, const std::string& needle) {
    int n = 0;
    for (const v1::Event& e : cluster_->Events()) {
      n += e.kind() == kind && absl::StrContains(e.message(), needle);
    }
    return n;
  }

  void StopAgents(int n) {
    for (int r = 0; r < n; ++r) cluster_->agent(r).Signal(SIGTERM);
    for (int r = 0; r < n; ++r) {
      std::optional<int> status = cluster_->agent(r).WaitExit(absl::Seconds(30));
      ASSERT_TRUE(status.has_value()) << "agent " << r << " did not exit";
      EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "agent " << r;
    }
  }

  ScratchDir scratch_;
  std::vector<std::string> extra_env_;
  std::unique_ptr<Cluster> cluster_;
  std::function<int(int)> device_;
};

struct FlowCase {
  std::string name;
  ParallelConfig config;
  v1::InitMode mode;
};
void PrintTo(const FlowCase& c, std::ostream* os) { *os << c.name; }

class NcclFlowCaseTest : public NcclFlowTest, public ::testing::WithParamInterface<FlowCase> {};

// Join -> READY with every group verified -> Check -> destroy the model-parallel groups (the
// world stays) -> destroy everything (nothing left) -> agents exit 0.
TEST_P(NcclFlowCaseTest, FormVerifyCheckDestroy) {
  const FlowCase& c = GetParam();
  const int n = static_cast<int>(c.config.world_size);
  Start(n);
  absl::StatusOr<v1::InitializeResponse> init = Initialize(c.config, c.mode);
  ASSERT_TRUE(init.ok()) << init.status();
  absl::StatusOr<v1::PoolState> ready = WaitReady(init->generation());
  ASSERT_TRUE(ready.ok()) << ready.status();
  ExpectReportsMatchLayout(*ready, *Layout::Build(c.config));
  int groups = 0;
  for (const v1::MemberState& m : ready->members()) groups += m.groups_size();
  std::printf("nccl-double: %s READY in %lld ms (%d communicators)\n", c.name.c_str(),
              static_cast<long long>(ready->init_ms()), groups);
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(Counters(r)["comms_live"], ready->members(0).groups_size()) << "agent " << r;
  }

  // Check: every member verifies every group again, on the live NCCL communicators.
  ASSERT_TRUE(cluster_->client().Check("default").ok());
  absl::StatusOr<v1::PoolState> checked = cluster_->WaitFor(
      [&](const v1::PoolState&) { return CountEvents(v1::EVENT_KIND_GROUP_STATE, "") >= groups; },
      kDeadline);
  ASSERT_TRUE(checked.ok()) << checked.status();
  absl::StatusOr<v1::PoolState> after = cluster_->client().GetState("default");
  ASSERT_TRUE(after.ok());
  ExpectReportsMatchLayout(*after, *Layout::Build(c.config));

  ASSERT_TRUE(cluster_->Destroy(v1::DESTROY_SCOPE_MODEL_PARALLEL).ok());
  absl::StatusOr<v1::PoolState> destroyed =
      cluster_->WaitForPhase(v1::POOL_PHASE_DESTROYED, init->generation(), kDeadline);
  ASSERT_TRUE(destroyed.ok()) << destroyed.status();
  EXPECT_EQ(destroyed->error(), "");
  for (int r = 0; r < n; ++r) EXPECT_TRUE(WaitCounter(r, "comms_live", 1)) << "world kept";

  ASSERT_TRUE(cluster_->Destroy(v1::DESTROY_SCOPE_ALL).ok());
  destroyed = cluster_->WaitFor(
      [&](const v1::PoolState& s) {
        return s.phase() == v1::POOL_PHASE_DESTROYED &&
               CountEvents(v1::EVENT_KIND_DESTROYED, "") == 2;
      },
      kDeadline);
  ASSERT_TRUE(destroyed.ok()) << destroyed.status();
  EXPECT_EQ(destroyed->phase(), v1::POOL_PHASE_DESTROYED);
  EXPECT_EQ(destroyed->error(), "");
  ExpectNothingLeft(n);
  for (int r = 0; r < n; ++r) EXPECT_EQ(Counters(r)["comms_aborted"], 0) << "orderly teardown";
  StopAgents(n);
}

INSTANTIATE_TEST_SUITE_P(
    Double, NcclFlowCaseTest,
    ::testing::Values(
        FlowCase{"world1_split", {.world_size = 1}, v1::INIT_MODE_SPLIT},
        FlowCase{
            "world2_tp2_split", {.world_size = 2, .tensor_parallel_size = 2}, v1::INIT_MODE_SPLIT},
        FlowCase{
            "world8_dp2cfg2u2_split",
            {.world_size = 8, .data_parallel_size = 2, .cfg_parallel_size = 2, .ulysses_degree = 2},
            v1::INIT_MODE_SPLIT},
        FlowCase{
            "world8_tp2u2r2_per_group_ids",
            {.world_size = 8, .ulysses_degree = 2, .ring_degree = 2, .tensor_parallel_size = 2},
            v1::INIT_MODE_PER_GROUP_ID}),
    [](const ::testing::TestParamInfo<FlowCase>& info) { return info.param.name; });

// kill -9 of one agent: every survivor answers the coordinator's abort at once (ABORT events) and
// aborts all its NCCL communicators, in parallel (each abort costs
// COHORT_NCCL_DOUBLE_ABORT_DELAY_MS here, like NCCL's proxy teardown on a GPU); the replacement
// joins and the next generation is READY.
TEST_F(NcclFlowTest, KillAgent_SurvivorsAbortTheirCommunicators_ReplacementReady) {
  constexpr int kAbortDelayMs = 300;
  extra_env_ = {absl::StrCat("COHORT_NCCL_DOUBLE_ABORT_DELAY_MS=", kAbortDelayMs)};
  const ParallelConfig config{
      .world_size = 4, .tensor_parallel_size = 2, .pipeline_parallel_size = 2};
  Start(4);
  absl::StatusOr<v1::InitializeResponse> init = Initialize(config);
  ASSERT_TRUE(init.ok()) << init.status();
  absl::StatusOr<v1::PoolState> ready = WaitReady(init->generation());
  ASSERT_TRUE(ready.ok()) << ready.status();
  const int per_agent = ready->members(0).groups_size();

  const absl::Time killed = absl::Now();
  cluster_->agent(3).Signal(SIGKILL);
  // Every survivor has released (ncclCommAbort) all its communicators.
  for (int r = 0; r < 3; ++r) ASSERT_TRUE(WaitCounter(r, "comms_live", 0)) << "survivor " << r;
  const absl::Duration released = absl::Now() - killed;
  std::printf(
      "nccl-double: kill -9 -> all 3 survivors' %d NCCL communicators each aborted in %lld ms "
      "(%d ms per ncclCommAbort; one by one that is %d ms per survivor; most aborts at once in "
      "one survivor: %ld)\n",
      per_agent, static_cast<long long>(absl::ToInt64Milliseconds(released)), kAbortDelayMs,
      per_agent * kAbortDelayMs, Counters(0)["aborts_concurrent_max"]);
  const std::string needle =
      absl::StrCat("aborted its communicators of generation ", init->generation(), " in ");
  absl::StatusOr<v1::PoolState> aborted = cluster_->WaitFor(
      [&](const v1::PoolState&) { return CountEvents(v1::EVENT_KIND_ABORT, needle) == 3; },
      kDeadline);
  ASSERT_TRUE(aborted.ok()) << aborted.status();
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(Counters(r)["comms_aborted"], per_agent) << "survivor " << r;
  }

  StartAgent(3);
  ready = WaitReady(init->generation() + 1);
  ASSERT_TRUE(ready.ok()) << ready.status();
  ExpectReportsMatchLayout(*ready, *Layout::Build(config));
}

// An asynchronous NCCL error after READY (here injected into rank 1): the member reports it, the
// pool goes DEGRADED ("communicator error"), every member aborts, the next generation forms.
TEST_F(NcclFlowTest, AsyncErrorAfterReady_Reported_PoolDegrades_NextGenerationReady) {
  const ParallelConfig config{.world_size = 2, .tensor_parallel_size = 2};
  Start(2);
  absl::StatusOr<v1::InitializeResponse> init = Initialize(config);
  ASSERT_TRUE(init.ok()) << init.status();
  ASSERT_TRUE(WaitReady(init->generation()).ok());

  WriteControl(1, "async_error remote\n");
  absl::StatusOr<v1::PoolState> next = WaitReady(init->generation() + 1);
  ASSERT_TRUE(next.ok()) << next.status();
  ExpectReportsMatchLayout(*next, *Layout::Build(config));

  EXPECT_GE(CountEvents(v1::EVENT_KIND_GROUP_STATE, "injected asynchronous error (remote)"), 1);
  EXPECT_EQ(CountEvents(v1::EVENT_KIND_FAILED, "rank 1 (agent-1) reports a communicator in error"),
            1);
  bool degraded = false;
  for (const v1::PhaseTransition& t : next->transitions()) {
    degraded |= t.phase() == v1::POOL_PHASE_DEGRADED && t.reason() == "communicator error";
  }
  EXPECT_TRUE(degraded) << next->DebugString();
  // Every communicator of generation 1 was aborted in both agents, generation 2's are live.
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(Counters(r)["comms_aborted"], next->members(0).groups_size()) << "agent " << r;
    EXPECT_EQ(Counters(r)["comms_live"], next->members(0).groups_size()) << "agent " << r;
  }
}

// Rank 1's init never joins (it stalls inside ncclCommInitRankConfig): both ranks give up at the
// generation's deadline, abort their communicators and report; nothing is left; without the
// fault, the next Initialize is READY.
TEST_F(NcclFlowTest, RankNeverArrives_DeadlineAbortsTheInits_NothingLeft_ThenReady) {
  const ParallelConfig config{.world_size = 2, .tensor_parallel_size = 2};
  Start(2);
  WriteControl(1, "stall_init\n");
  // 8 s: ample for rank 0 to publish the id and both ranks to enter their inits on a loaded
  // machine (they take milliseconds); rank 1 never completes however long the deadline is.
  absl::StatusOr<v1::InitializeResponse> init = Initialize(config, v1::INIT_MODE_SPLIT, 8000);
  ASSERT_TRUE(init.ok()) << init.status();
  absl::StatusOr<v1::PoolState> failed =
      cluster_->WaitForPhase(v1::POOL_PHASE_FAILED, init->generation(), kDeadline);
  ASSERT_TRUE(failed.ok()) << failed.status();
  ASSERT_EQ(failed->phase(), v1::POOL_PHASE_FAILED);
  EXPECT_THAT(failed->error(), ::testing::AnyOf(HasSubstr("did not complete by the deadline"),
                                                HasSubstr("missed its deadline")));
  std::printf("nccl-double: rank never arrives -> FAILED: %s\n", failed->error().c_str());
  for (int r = 0; r < 2; ++r) {
    SCOPED_TRACE(absl::StrCat("agent ", r));
    EXPECT_TRUE(WaitCounter(r, "comms_live", 0));
    EXPECT_TRUE(WaitCounter(r, "comms_aborted", 1));
  }

  std::remove(Control(1).c_str());
  absl::StatusOr<v1::InitializeResponse> again = Initialize(config);
  ASSERT_TRUE(again.ok()) << again.status();
  absl::StatusOr<v1::PoolState> ready = WaitReady(again->generation());
  ASSERT_TRUE(ready.ok()) << ready.status();
  ExpectReportsMatchLayout(*ready, *Layout::Build(config));
}

// Rank 1's NCCL init fails (injected ncclSystemError): the pool fails at once naming rank 1 and
// NCCL's error, rank 0's init (waiting for rank 1) is cancelled and aborted, nothing is left.
TEST_F(NcclFlowTest, InitFailsOnOneRank_PoolFailsNamingIt_PeerCancelled_NothingLeft) {
  const ParallelConfig config{.world_size = 2, .tensor_parallel_size = 2};
  Start(2);
  WriteControl(1, "fail_init system\n");
  absl::StatusOr<v1::InitializeResponse> init =
      Initialize(config, v1::INIT_MODE_SPLIT, absl::ToInt64Milliseconds(absl::Minutes(10)));
  ASSERT_TRUE(init.ok()) << init.status();
  absl::StatusOr<v1::PoolState> failed =
      cluster_->WaitForPhase(v1::POOL_PHASE_FAILED, init->generation(), kDeadline);
  ASSERT_TRUE(failed.ok()) << failed.status();
  ASSERT_EQ(failed->phase(), v1::POOL_PHASE_FAILED);
  EXPECT_THAT(failed->error(), HasSubstr("rank 1 (agent-1)"));
  EXPECT_THAT(failed->error(), HasSubstr("injected init failure"));
  std::printf("nccl-double: init fails on rank 1 -> FAILED: %s\n", failed->error().c_str());
  // Rank 1's failed init was aborted; rank 0's was cancelled and aborted, or, when rank 1 failed
  // before rank 0 got that far, never started.
  EXPECT_TRUE(WaitCounter(1, "comms_aborted", 1));
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(WaitCounter(r, "comms_live", 0)) << "agent " << r;
    const std::map<std::string, long> c = Counters(r);
    EXPECT_EQ(c.count("comms_created") > 0 ? c.at("comms_created") : 0,
              c.count("comms_aborted") > 0 ? c.at("comms_aborted") : 0)
        << "agent " << r;
  }
}

// A generation given up while rank 0's NCCL init waits for a rank that will never come (rank 1
// stalls, then is killed): the next generation's plan cancels the build at once
// (NcclBackend::CancelBuilds). Before, rank 0 sat in the dead init until its deadline, here
// 10 minutes, and generation 2 could not form.
TEST_F(NcclFlowTest, GenerationGivenUpDuringInit_BuildCancelled_NextGenerationReady) {
  const ParallelConfig config{.world_size = 2, .tensor_parallel_size = 2};
  Start(2);
  WriteControl(1, "stall_init\n");
  absl::StatusOr<v1::InitializeResponse> init =
      Initialize(config, v1::INIT_MODE_SPLIT, absl::ToInt64Milliseconds(absl::Minutes(10)));
  ASSERT_TRUE(init.ok()) << init.status();
  // Rank 1 is inside its (stalled) init once its communicator exists.
  ASSERT_TRUE(WaitCounter(1, "comms_live", 1));
  cluster_->agent(1).Signal(SIGKILL);
  ASSERT_TRUE(cluster_->agent(1).WaitExit(absl::Seconds(30)).has_value());
  std::remove(Control(1).c_str());
  StartAgent(1);
  absl::StatusOr<v1::PoolState> ready = WaitReady(init->generation() + 1);
  ASSERT_TRUE(ready.ok()) << ready.status();
  ExpectReportsMatchLayout(*ready, *Layout::Build(config));
  EXPECT_GE(Counters(0)["comms_aborted"], 1) << "rank 0's generation-1 init was aborted";
}

// Two agents on the same GPU: NCCL (up to 2.29) refuses the communicator; the pool fails with
// NCCL's words.
TEST_F(NcclFlowTest, TwoAgentsOnOneGpu_DuplicateGpuRefused) {
  Start(2, [](int) { return 0; });
  absl::StatusOr<v1::InitializeResponse> init =
      Initialize({.world_size = 2, .tensor_parallel_size = 2});
  ASSERT_TRUE(init.ok()) << init.status();
  absl::StatusOr<v1::PoolState> failed =
      cluster_->WaitForPhase(v1::POOL_PHASE_FAILED, init->generation(), kDeadline);
  ASSERT_TRUE(failed.ok()) << failed.status();
  ASSERT_EQ(failed->phase(), v1::POOL_PHASE_FAILED);
  EXPECT_THAT(failed->error(), HasSubstr("Duplicate GPU detected"));
  for (int r = 0; r < 2; ++r) EXPECT_TRUE(WaitCounter(r, "comms_live", 0)) << "agent " << r;
}

// The seed-style API embedded in an engine (agent/parallel_state.h) with NCCL: four engine
// processes, rank r on GPU r, build two configs in turn on the same NCCL world, check every getter
// and run every collective on device buffers, tear down.
TEST_F(NcclFlowTest, EmbeddedParallelState_FourRanks_TwoConfigs_CollectivesOnDeviceBuffers) {
  Start(0);
  std::vector<std::unique_ptr<ChildProcess>> ranks;
  for (int r = 0; r < 4; ++r) {
    auto child = ChildProcess::Spawn(
        {std::string(COHORT_BIN_DIR) + "/embedded_rank", cluster_->address(), absl::StrCat(r),
         "world=4,ulysses=2,ring=2", "world=4,cfg=2,pp=2", "nccl"},
        absl::StrCat(cluster_->log_dir(), "/embedded-", r, ".log"), AgentEnv(r));
    ASSERT_TRUE(child.has_value());
    ranks.push_back(std::make_unique<ChildProcess>(std::move(*child)));
  }
  for (int r = 0; r < 4; ++r) {
    std::optional<std::string> line = ranks[r]->ReadLine(kDeadline);
    EXPECT_EQ(line.value_or("<nothing>"), "ok")
        << ScratchDir::Read(absl::StrCat(cluster_->log_dir(), "/embedded-", r, ".log"));
    std::optional<int> status = ranks[r]->WaitExit(absl::Seconds(30));
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "rank " << r;
    // Both configs' groups and the world were NCCL communicators, all destroyed in order.
    const std::map<std::string, long> c = Counters(r);
    EXPECT_GT(c.at("comms_created"), 10) << "rank " << r;
    EXPECT_EQ(c.at("comms_live"), 0) << "rank " << r;
    EXPECT_EQ(c.at("comms_aborted"), 0) << "rank " << r;
  }
}

}  // namespace
}  // namespace cohort::testing
