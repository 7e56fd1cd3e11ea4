// scale_bench's control-plane latencies: a READY pool of simulated agents, then p50/p99 of Join,
// KvSet, KvGet, GetState (one rank, the whole pool) and gRPC's floor (a call refused at once),
// each with 1 and 64 concurrent clients on channels of their own.
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/scale_harness.h"

namespace cohort::bench {
namespace {

// p50/p99 of `op` run `per_client` times by each of `clients` threads.
void MeasureOp(const std::string& name, int clients, int per_client,
               const std::function<bool(int client, int i)>& op) {
  std::vector<std::vector<double>> us(clients);
  std::atomic<int> failures{0};
  const absl::Time start = absl::Now();
  ParallelFor(0, clients, clients, [&](int c) {
    for (int i = 0; i < per_client; ++i) {
      const absl::Time t = absl::Now();
      if (!op(c, i)) ++failures;
      us[c].push_back(absl::ToDoubleMicroseconds(absl::Now() - t));
    }
  });
  const double wall = absl::ToDoubleSeconds(absl::Now() - start);
  std::vector<double> all;
  for (auto& v : us) all.insert(all.end(), v.begin(), v.end());
  Metric(name + ".p50_ms", Percentile(all, 0.5) / 1000, "ms");
  Metric(name + ".p99_ms", Percentile(all, 0.99) / 1000, "ms");
  Metric(name + ".ops_per_s", static_cast<double>(all.size()) / wall, "ops/s");
  if (failures > 0) Metric(name + ".failures", failures, "calls");
}

}  // namespace

int RunLatency(const Options& o) {
  const int w = o.latency_world;
  Coordinator coordinator(o.bin, o.heartbeat, o.coordinator_log);
  if (!coordinator.ok()) return Fail("latency", "the coordinator did not start");
  Fleet fleet(coordinator.address(), o.channels);
  for (int i = 0; i < w; ++i) fleet.Add(absl::StrCat("sim-", i), i);
  int failed = 0;
  fleet.JoinAll(0, w, o.join_threads, &failed);
  if (failed > 0) return Fail("latency", absl::StrCat(failed, " of ", w, " agents failed to join"));
  v1::InitializeRequest init;
  init.set_pool(kPool);
  *init.mutable_config() = ToProto(ConfigFor(w));
  init.mutable_options()->set_backend("none");
  int64_t generation = 0;
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    v1::InitializeResponse response;
    if (!coordinator.admin().Initialize(&context, init, &response).ok()) {
      return Fail("latency", "Initialize failed");
    }
    generation = response.generation();
  }
  if (!coordinator.WaitForSummary(
          [&](const v1::PoolSummary& s) {
            return s.generation() == generation && s.phase() == v1::POOL_PHASE_READY;
          },
          absl::Now() + absl::Seconds(120))) {
    return Fail("latency", "the pool did not become READY");
  }
  const std::string value(64, 'x');
  for (int clients : o.latency_clients) {
    std::vector<std::unique_ptr<agent::CoordinatorClient>> agent_clients;
    std::vector<std::unique_ptr<v1::AdminService::Stub>> admins;
    for (int c = 0; c < clients; ++c) {
      std::shared_ptr<grpc::Channel> channel = MakeChannel(coordinator.address(), 1000 + c);
      agent_clients.push_back(std::make_unique<agent::CoordinatorClient>(channel));
      admins.push_back(v1::AdminService::NewStub(channel));
      (void)agent_clients.back()->WaitForConnected(absl::Now() + absl::Seconds(10));
    }
    const int per_client = std::max(20, o.latency_ops / clients);
    const std::string p = absl::StrCat("latency.c", clients);
    auto key = [&](int c, int i) { return absl::StrCat("bench/", clients, "/", c, "/", i); };
    MeasureOp(p + ".kv_set", clients, per_client, [&](int c, int i) {
      v1::KvSetRequest set;
      set.set_pool(kPool);
      set.set_generation(generation);
      v1::KvEntry* e = set.add_entries();
      e->set_key(key(c, i));
      e->set_value(value);
      return agent_clients[c]->KvSet(set).ok();
    });
    MeasureOp(p + ".kv_get", clients, per_client, [&](int c, int i) {
      v1::KvGetRequest get;
      get.set_pool(kPool);
      get.set_generation(generation);
      get.add_keys(key(c, i));
      return agent_clients[c]->KvGet(get).ok();
    });
    auto get_state = [&](int c, std::optional<int> rank) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      v1::GetStateRequest request;
      request.set_pool(kPool);
      if (rank.has_value()) request.set_rank(*rank);
      v1::GetStateResponse response;
      return admins[c]->GetState(&context, request, &response).ok();
    };
    // The floor: a unary call the coordinator refuses at once (an unknown pool, NOT_FOUND), i.e.
    // gRPC's round trip on loopback with nothing behind it.
    MeasureOp(p + ".grpc_floor", clients, per_client, [&](int c, int) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      v1::GetStateRequest request;
      request.set_pool("no-such-pool");
      v1::GetStateResponse response;
      return admins[c]->GetState(&context, request, &response).error_code() ==
             grpc::StatusCode::NOT_FOUND;
    });
    MeasureOp(p + ".get_state_one_rank", clients, per_client,
              [&](int c, int i) { return get_state(c, i % w); });
    MeasureOp(absl::StrCat(p, ".get_state_pool_w", w), clients, std::max(5, per_client / 10),
              [&](int c, int) { return get_state(c, std::nullopt); });
    // Last: every join adds a standby that never attaches (the pool grows by the joins).
    MeasureOp(p + ".join", clients, per_client, [&](int c, int i) {
      v1::JoinRequest join;
      join.set_pool(kPool);
      join.set_identity(absl::StrCat("lat-", clients, "-", c, "-", i));
      join.set_incarnation("1");
      join.add_backends("none");
      return agent_clients[c]->Join(join).ok();
    });
  }
  return 0;
}

}  // namespace cohort::bench
