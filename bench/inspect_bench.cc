// Inspection at scale, on the coordinator logic in process (fake clock, fake sessions): one pool
// of 4,096 READY members (tp8 x ulysses8 x ring4 x pp4 x cfg2 x dp2). Measures GetState of the
// whole pool (target: well under 100 ms), the same serialized to bytes (what the GetState RPC
// and the metrics collector pay), and what one heartbeat costs with 0 and with 64 idle
// watchers: heartbeats are not events, so watchers must cost nothing (and receive nothing).
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "common/clock.h"
#include "common/layout.h"
#include "common/layout_proto.h"
#include "common/timer_queue.h"
#include "coordinator/coordinator.h"
#include "spdlog/spdlog.h"

namespace cohort::coordinator {
namespace {

constexpr int kWorld = 4096;

// Drops what the coordinator sends (plans): only the cost of the logic is measured.
class NullSessionSink : public SessionSink {
 public:
  void Send(const v1::CoordinatorMessage&) override {}
  void Close(const absl::Status&) override {}
};

class CountingWatchSink : public WatchSink {
 public:
  void Close(const absl::Status&) override {}
  bool Send(const v1::WatchEvent&) override {
    received.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  std::atomic<int64_t> received{0};
};

// The READY pool, built once.
struct ReadyPool {
  FakeClock clock;
  TimerQueue timers{&clock};
  std::unique_ptr<Coordinator> coordinator;
  NullSessionSink sink;
  std::vector<std::string> sessions;

  ReadyPool() {
    coordinator = std::make_unique<Coordinator>(CoordinatorOptions{}, &clock, &timers);
    for (int r = 0; r < kWorld; ++r) {
      v1::JoinRequest join;
      join.set_identity(absl::StrCat("agent-", r));
      join.set_incarnation("1");
      join.add_backends("none");
      join.set_rank_hint(r);
      absl::StatusOr<v1::JoinResponse> joined = coordinator->Join(join);
      if (!joined.ok() || !coordinator->Attach(joined->session_id(), &sink).ok()) {
        std::fprintf(stderr, "join %d failed: %s\n", r, joined.status().ToString().c_str());
        std::abort();
      }
      sessions.push_back(joined->session_id());
    }
    const ParallelConfig config{.world_size = kWorld,
                                .data_parallel_size = 2,
                                .cfg_parallel_size = 2,
                                .ulysses_degree = 8,
                                .ring_degree = 4,
                                .tensor_parallel_size = 8,
                                .pipeline_parallel_size = 4};
    v1::InitializeRequest init;
    *init.mutable_config() = ToProto(config);
    init.mutable_options()->set_backend("none");
    absl::StatusOr<v1::InitializeResponse> started = coordinator->Initialize(init);
    if (!started.ok() || !started->started()) {
      std::fprintf(stderr, "initialize failed: %s\n", started.status().ToString().c_str());
      std::abort();
    }
    clock.Advance(absl::Milliseconds(250));
    // Reports as real agents send them: one GroupReport per kind, so GetState carries what it
    // carries in production.
    const Layout layout = *Layout::Build(config);
    for (int r = 0; r < kWorld; ++r) {
      v1::AgentMessage report;
      v1::GenerationReport* g = report.mutable_report();
      g->set_generation(started->generation());
      g->set_ok(true);
      g->set_total_us(250000);
      for (GroupKind kind : layout.kinds()) {
        const RankList& group = layout.GroupOf(kind, r);
        v1::GroupReport* gr = g->add_groups();
        gr->set_kind(ToProto(kind));
        gr->set_index(layout.GroupIndexOf(kind, r));
        gr->set_rank_in_group(layout.RankInGroup(kind, r));
        gr->set_size(static_cast<int>(group.size()));
        gr->set_state(v1::COMM_STATE_READY);
        gr->set_create_us(12345);
        gr->set_verify_us(678);
        int64_t sum = 0;
        for (int member : group) sum += member;
        gr->set_verify_sum(sum);
      }
      (void)coordinator->HandleAgentMessage(sessions[r], report);
    }
    absl::StatusOr<v1::PoolState> state = coordinator->GetState("default");
    if (!state.ok() || state->phase() != v1::POOL_PHASE_READY || state->members_ready() != kWorld) {
      std::fprintf(stderr, "pool is not READY: %s\n",
                   state.ok() ? v1::PoolPhase_Name(state->phase()).c_str()
                              : state.status().ToString().c_str());
      std::abort();
    }
  }
};

ReadyPool& Pool() {
  static ReadyPool* pool = new ReadyPool();
  return *pool;
}

void BM_GetState4096(benchmark::State& state) {
  Coordinator& coordinator = *Pool().coordinator;
  int64_t members = 0;
  for (auto _ : state) {
    absl::StatusOr<v1::PoolState> s = coordinator.GetState("default");
    members = s->members_size();
    benchmark::DoNotOptimize(s);
  }
  state.counters["members"] = static_cast<double>(members);
}
BENCHMARK(BM_GetState4096)->Unit(benchmark::kMillisecond);

void BM_GetState4096Serialized(benchmark::State& state) {
  Coordinator& coordinator = *Pool().coordinator;
  size_t bytes = 0;
  for (auto _ : state) {
    absl::StatusOr<v1::PoolState> s = coordinator.GetState("default");
    std::string wire;
    s->SerializeToString(&wire);
    bytes = wire.size();
    benchmark::DoNotOptimize(wire);
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_GetState4096Serialized)->Unit(benchmark::kMillisecond);

// One heartbeat of one member (rotating over all 4,096), with state.range(0) idle watchers of
// the pool registered.
void BM_Heartbeat(benchmark::State& state) {
  ReadyPool& pool = Pool();
  std::vector<std::unique_ptr<CountingWatchSink>> sinks;
  std::vector<uint64_t> ids;
  for (int i = 0; i < state.range(0); ++i) {
    sinks.push_back(std::make_unique<CountingWatchSink>());
    ids.push_back(*pool.coordinator->AddWatcher("default", /*snapshot=*/false, sinks.back().get()));
  }
  v1::AgentMessage heartbeat;
  heartbeat.mutable_heartbeat();
  size_t next = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(pool.coordinator->HandleAgentMessage(pool.sessions[next], heartbeat));
    next = (next + 1) % pool.sessions.size();
  }
  int64_t delivered = 0;
  for (const auto& sink : sinks) delivered += sink->received.load();
  for (uint64_t id : ids) pool.coordinator->RemoveWatcher(id);
  state.counters["watchers"] = static_cast<double>(state.range(0));
  // Must be 0: heartbeats are not events.
  state.counters["delivered_to_watchers"] = static_cast<double>(delivered);
}
BENCHMARK(BM_Heartbeat)->Arg(0)->Arg(64)->Unit(benchmark::kNanosecond);

}  // namespace
}  // namespace cohort::coordinator

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);  // 4,096 joins would log 4,096 lines
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
