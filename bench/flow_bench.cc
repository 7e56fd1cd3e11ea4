// Time from Initialize to READY with real processes on loopback (Gloo), at world 8 and 16, next
// to the same layout built by torch.distributed with the gloo backend (bench/torch_groups.py,
// run with /usr/bin/python3), both in this one invocation.
//
// cohort: a coordinator and N cohort-agent processes are started once; each repetition is
// Initialize -> READY (world + every group + verification all-reduces), then a full destroy, so
// the world communicator is rebuilt every time, as torch's init_process_group is.
//
// Usage: flow_bench BIN_DIR [--repeat K] [--no-torch]
#include <cstdio>
#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/coordinator_client.h"
#include "common/grpc_status.h"
#include "common/layout.h"
#include "common/layout_proto.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "tests/process.h"

namespace cohort {
namespace {

using testing::ChildProcess;

struct Case {
  std::string name;
  ParallelConfig config;
};

struct Stats {
  double best = 0, median = 0;
};

Stats Summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v.front(), v[v.size() / 2]};
}

absl::StatusOr<v1::PoolState> WaitPhase(agent::CoordinatorClient& client, v1::PoolPhase phase,
                                        int64_t generation, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::StatusOr<v1::PoolState> s = client.GetState("default");
  while (s.ok() && !(s->generation() >= generation &&
                     (s->phase() == phase || s->phase() == v1::POOL_PHASE_FAILED))) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return absl::DeadlineExceededError("timed out");
    s = client.WaitForStateChange("default", s->version(), left);
  }
  return s;
}

// Returns Initialize->READY seconds per repetition.
absl::StatusOr<std::vector<double>> RunCohort(const std::string& bin, const Case& c, int repeat) {
  const int n = static_cast<int>(c.config.world_size);
  auto coordinator = ChildProcess::Spawn(
      {bin + "/cohort-coordinator", "--insecure", "--listen", "127.0.0.1:0", "--log-level", "warn"},
      "/dev/null");
  if (!coordinator.has_value()) return absl::InternalError("cannot start the coordinator");
  std::optional<std::string> line = coordinator->ReadLine(absl::Seconds(20));
  if (!line.has_value()) return absl::InternalError("the coordinator printed no address");
  const std::string address = line->substr(line->rfind(' ') + 1);
  std::vector<std::unique_ptr<ChildProcess>> agents;
  for (int r = 0; r < n; ++r) {
    auto a = ChildProcess::Spawn(
        {bin + "/cohort-agent", "--insecure", "--coordinator", address, "--identity",
         absl::StrCat("bench-", r), "--rank-hint", absl::StrCat(r), "--log-level", "warn"},
        "/dev/null");
    if (!a.has_value()) return absl::InternalError("cannot start an agent");
    agents.push_back(std::make_unique<ChildProcess>(std::move(*a)));
  }
  agent::CoordinatorClient client(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  // Wait until every agent has joined (not timed).
  absl::StatusOr<v1::PoolState> s = client.GetState("default");
  const absl::Time joined_by = absl::Now() + absl::Seconds(60);
  while (!s.ok() || s->members_size() < n) {
    if (absl::Now() > joined_by) return absl::DeadlineExceededError("agents did not join");
    s = s.ok() ? client.WaitForStateChange("default", s->version(), absl::Seconds(5))
               : client.GetState("default");
  }
  std::vector<double> seconds;
  for (int i = 0; i < repeat; ++i) {
    v1::InitializeRequest request;
    *request.mutable_config() = ToProto(c.config);
    request.mutable_options()->set_backend("gloo");
    const absl::Time t0 = absl::Now();
    absl::StatusOr<v1::InitializeResponse> init = client.Initialize(request);
    if (!init.ok()) return init.status();
    absl::StatusOr<v1::PoolState> ready =
        WaitPhase(client, v1::POOL_PHASE_READY, init->generation(), absl::Seconds(120));
    if (!ready.ok()) return ready.status();
    if (ready->phase() != v1::POOL_PHASE_READY) return absl::InternalError(ready->error());
    seconds.push_back(absl::ToDoubleSeconds(absl::Now() - t0));
    v1::DestroyRequest destroy;
    destroy.set_scope(v1::DESTROY_SCOPE_ALL);
    if (absl::Status d = client.Destroy(destroy).status(); !d.ok()) return d;
    absl::StatusOr<v1::PoolState> gone =
        WaitPhase(client, v1::POOL_PHASE_DESTROYED, init->generation(), absl::Seconds(60));
    if (!gone.ok()) return gone.status();
  }
  for (auto& a : agents) a->Signal(SIGTERM);
  for (auto& a : agents) a->WaitExit(absl::Seconds(10));
  coordinator->Signal(SIGTERM);
  coordinator->WaitExit(absl::Seconds(10));
  return seconds;
}

// Runs bench/torch_groups.py on the same layout; returns its best and median init-to-ready.
absl::StatusOr<Stats> RunTorch(const std::string& bin, const std::string& script, const Case& c,
                               int repeat) {
  absl::StatusOr<Layout> layout = Layout::Build(c.config);
  if (!layout.ok()) return layout.status();
  const std::string path = absl::StrCat("/tmp/cohort-flow-bench-", getpid(), "-", c.name, ".json");
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return absl::InternalError("cannot write " + path);
  const std::string doc = ToJson(ToLayoutDocument(*layout, std::nullopt));
  std::fwrite(doc.data(), 1, doc.size(), f);
  std::fclose(f);
  (void)bin;
  const std::string cmd = absl::StrCat("/usr/bin/python3 ", script, " --layout-json ", path,
                                       " --repeat ", repeat, " --timeout 180 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return absl::InternalError("cannot run " + cmd);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  std::remove(path.c_str());
  if (rc != 0) return absl::InternalError(absl::StrCat("torch run failed (", rc, "): ", out));
  google::protobuf::Struct result;
  if (!google::protobuf::util::JsonStringToMessage(out, &result).ok()) {
    return absl::InternalError("unparsable torch output: " + out);
  }
  const auto& fields = result.fields();
  return Stats{fields.at("best_init_to_ready_s").number_value(),
               fields.at("median_init_to_ready_s").number_value()};
}

}  // namespace
}  // namespace cohort

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: flow_bench BIN_DIR [--repeat K] [--no-torch]\n";
    return 2;
  }
  const std::string bin = argv[1];
  int repeat = 5;
  bool torch = true;
  for (int i = 2; i < argc; ++i) {
    if (std::string(argv[i]) == "--repeat" && i + 1 < argc) repeat = std::atoi(argv[++i]);
    if (std::string(argv[i]) == "--no-torch") torch = false;
  }
  const std::string script = std::string(COHORT_SOURCE_DIR) + "/bench/torch_groups.py";
  const std::vector<cohort::Case> cases = {
      {"world4_dp2_ulysses2", {.world_size = 4, .data_parallel_size = 2, .ulysses_degree = 2}},
      {"world8_dp2_cfg2_ulysses2",
       {.world_size = 8, .data_parallel_size = 2, .cfg_parallel_size = 2, .ulysses_degree = 2}},
      {"world16_dp2_cfg2_ulysses2_ring2",
       {.world_size = 16,
        .data_parallel_size = 2,
        .cfg_parallel_size = 2,
        .ulysses_degree = 2,
        .ring_degree = 2}},
  };
  std::printf("%-34s %12s %12s %12s %12s %8s\n", "layout (Initialize -> READY)", "cohort best",
              "cohort med", "torch best", "torch med", "ratio");
  int rc = 0;
  for (const auto& c : cases) {
    absl::StatusOr<std::vector<double>> ours = cohort::RunCohort(bin, c, repeat);
    if (!ours.ok()) {
      std::fprintf(stderr, "error: cohort %s: %s\n", c.name.c_str(),
                   std::string(ours.status().message()).c_str());
      rc = 1;
      continue;
    }
    const cohort::Stats mine = cohort::Summarize(*ours);
    // For bench/summarize.py.
    const std::string metric = absl::StrCat("flow.world", c.config.world_size);
    std::printf("METRIC %s.cohort_median_ms %.3f ms\n", metric.c_str(), mine.median * 1000);
    if (!torch) {
      std::printf("%-34s %11.3fs %11.3fs %12s %12s %8s\n", c.name.c_str(), mine.best, mine.median,
                  "-", "-", "-");
      continue;
    }
    absl::StatusOr<cohort::Stats> theirs = cohort::RunTorch(bin, script, c, 3);
    if (!theirs.ok()) {
      std::fprintf(stderr, "error: torch %s: %s\n", c.name.c_str(),
                   std::string(theirs.status().message()).c_str());
      rc = 1;
      continue;
    }
    std::printf("METRIC %s.torch_median_ms %.3f ms\n", metric.c_str(), theirs->median * 1000);
    std::printf("%-34s %11.3fs %11.3fs %11.3fs %11.3fs %7.1fx\n", c.name.c_str(), mine.best,
                mine.median, theirs->best, theirs->median, theirs->median / mine.median);
  }
  std::printf("ratio = torch median / cohort median (higher is better for cohort)\n");
  return rc;
}
