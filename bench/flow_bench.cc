// Lifecycle times with real processes on loopback (Gloo), at worlds 4, 8 and 16, next to the same
// layouts built by torch.distributed with the gloo backend (bench/torch_groups.py, run with
// /usr/bin/python3), both in this one invocation.
//
// cohort: a coordinator and N cohort-agent processes are started once; each repetition is
//   1. Initialize(A) -> READY (world + every group + verification all-reduces)       "ready"
//   2. Destroy(DESTROY_SCOPE_MODEL_PARALLEL) -> Initialize(B) -> READY, where B is another layout
//      of the same world (tp and dp degrees swapped): the coordinator's plans carry reuse_world,
//      so the agents keep their world communicator and build only B's groups        "relayout"
//      (the bench checks the coordinator's PLAN event says so)
//   3. Destroy(DESTROY_SCOPE_ALL) -> DESTROYED (every member reported its teardown)  "teardown"
// so the world communicator is rebuilt at every step 1, as torch's init_process_group is.
// "total with teardown" is ready + teardown: Initialize -> READY plus a full destroy -> every
// member torn down (of B, which has as many groups of each kind as A). torch_groups.py does the
// same three steps in each rank (init_process_group + new_group for A; destroy_process_group(g)
// of A's groups + new_group for B on the kept default group; destroy_process_group()) and reports
// each span as the max over ranks.
//
// METRIC lines (for bench/summarize.py), medians over --repeat (torch: over 3 runs):
//   flow.world<N>.{cohort,torch}_median_ms                      Initialize -> READY
//   flow.world<N>.{cohort,torch}_total_with_teardown_median_ms  ready + teardown
//   flow.world<N>.{cohort,torch}_relayout_median_ms             model-parallel destroy -> READY (B)
// Without torch (python3-torch not installed) cohort's numbers are printed and torch is skipped.
//
// Usage: flow_bench BIN_DIR [--repeat K] [--no-torch] [--worlds 4,8,16]
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "agent/coordinator_client.h"
#include "cohort/v1/admin.grpc.pb.h"
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
  // The second layout of the same world, built on the kept world communicator.
  std::string relayout_name;
  ParallelConfig relayout;
};

struct Stats {
  double best = 0, median = 0;
};

Stats Summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v.front(), v[v.size() / 2]};
}

// Seconds per repetition of each span (see the top of the file).
struct Spans {
  std::vector<double> ready, total_with_teardown, relayout;
};

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

// Initialize(config) -> READY.
absl::Status InitializeToReady(agent::CoordinatorClient& client, const ParallelConfig& config,
                               int64_t* generation) {
  v1::InitializeRequest request;
  *request.mutable_config() = ToProto(config);
  request.mutable_options()->set_backend("gloo");
  absl::StatusOr<v1::InitializeResponse> init = client.Initialize(request);
  if (!init.ok()) return init.status();
  absl::StatusOr<v1::PoolState> ready =
      WaitPhase(client, v1::POOL_PHASE_READY, init->generation(), absl::Seconds(120));
  if (!ready.ok()) return ready.status();
  if (ready->phase() != v1::POOL_PHASE_READY) return absl::InternalError(ready->error());
  *generation = init->generation();
  return absl::OkStatus();
}

// Destroy(scope) -> DESTROYED (every member reported its teardown).
absl::Status DestroyToDestroyed(agent::CoordinatorClient& client, v1::DestroyScope scope) {
  v1::DestroyRequest destroy;
  destroy.set_scope(scope);
  absl::StatusOr<v1::DestroyResponse> d = client.Destroy(destroy);
  if (!d.ok()) return d.status();
  absl::StatusOr<v1::PoolState> gone =
      WaitPhase(client, v1::POOL_PHASE_DESTROYED, d->generation(), absl::Seconds(60));
  if (!gone.ok()) return gone.status();
  if (gone->phase() != v1::POOL_PHASE_DESTROYED) return absl::InternalError(gone->error());
  if (!gone->error().empty()) return absl::InternalError("teardown: " + gone->error());
  return absl::OkStatus();
}

// Whether the coordinator's plans for `generation` reused the world communicator (its PLAN event
// says so), so that the relayout number is what it claims to be.
absl::Status CheckWorldReused(v1::AdminService::Stub& admin, int64_t generation) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::GetEventsRequest request;
  request.set_pool("default");
  v1::GetEventsResponse response;
  if (grpc::Status s = admin.GetEvents(&context, request, &response); !s.ok()) {
    return absl::UnavailableError("GetEvents: " + s.error_message());
  }
  for (const v1::Event& e : response.events()) {
    if (e.generation() == generation && e.kind() == v1::EVENT_KIND_PLAN) {
      if (absl::StrContains(e.message(), "reusing the world communicator")) return absl::OkStatus();
      return absl::InternalError(absl::StrCat("generation ", generation,
                                              " rebuilt the world communicator: ", e.message()));
    }
  }
  return absl::InternalError(absl::StrCat("no PLAN event for generation ", generation));
}

absl::StatusOr<Spans> RunCohort(const std::string& bin, const Case& c, int repeat) {
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
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  agent::CoordinatorClient client(channel);
  std::unique_ptr<v1::AdminService::Stub> admin = v1::AdminService::NewStub(channel);
  // Wait until every agent has joined (not timed).
  absl::StatusOr<v1::PoolState> s = client.GetState("default");
  const absl::Time joined_by = absl::Now() + absl::Seconds(60);
  while (!s.ok() || s->members_size() < n) {
    if (absl::Now() > joined_by) return absl::DeadlineExceededError("agents did not join");
    s = s.ok() ? client.WaitForStateChange("default", s->version(), absl::Seconds(5))
               : client.GetState("default");
  }
  Spans spans;
  for (int i = 0; i < repeat; ++i) {
    int64_t generation = 0;
    const absl::Time t0 = absl::Now();
    if (absl::Status st = InitializeToReady(client, c.config, &generation); !st.ok()) return st;
    const double ready = absl::ToDoubleSeconds(absl::Now() - t0);

    const absl::Time t1 = absl::Now();
    absl::Status st = DestroyToDestroyed(client, v1::DESTROY_SCOPE_MODEL_PARALLEL);
    if (!st.ok())
      return absl::Status(st.code(), absl::StrCat("model-parallel destroy: ", st.message()));
    st = InitializeToReady(client, c.relayout, &generation);
    if (!st.ok()) return absl::Status(st.code(), absl::StrCat(c.relayout_name, ": ", st.message()));
    const double relayout = absl::ToDoubleSeconds(absl::Now() - t1);
    if (st = CheckWorldReused(*admin, generation); !st.ok()) return st;

    const absl::Time t2 = absl::Now();
    if (st = DestroyToDestroyed(client, v1::DESTROY_SCOPE_ALL); !st.ok()) return st;
    const double teardown = absl::ToDoubleSeconds(absl::Now() - t2);

    spans.ready.push_back(ready);
    spans.relayout.push_back(relayout);
    spans.total_with_teardown.push_back(ready + teardown);
  }
  for (auto& a : agents) a->Signal(SIGTERM);
  for (auto& a : agents) a->WaitExit(absl::Seconds(10));
  coordinator->Signal(SIGTERM);
  coordinator->WaitExit(absl::Seconds(10));
  return spans;
}

struct TorchResult {
  // Empty when torch was skipped (`skipped` says why).
  std::string skipped;
  Stats ready, total_with_teardown, relayout;
};

absl::StatusOr<std::string> WriteLayoutJson(const ParallelConfig& config, const std::string& name) {
  absl::StatusOr<Layout> layout = Layout::Build(config);
  if (!layout.ok()) return layout.status();
  const std::string path = absl::StrCat("/tmp/cohort-flow-bench-", getpid(), "-", name, ".json");
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return absl::InternalError("cannot write " + path);
  const std::string doc = ToJson(ToLayoutDocument(*layout, std::nullopt));
  std::fwrite(doc.data(), 1, doc.size(), f);
  std::fclose(f);
  return path;
}

// Runs bench/torch_groups.py on the same two layouts; returns its best and median spans.
absl::StatusOr<TorchResult> RunTorch(const std::string& script, const Case& c, int repeat) {
  constexpr const char* kPython = "/usr/bin/python3";  // Debian's, with python3-torch
  if (access(kPython, X_OK) != 0) {
    return TorchResult{.skipped = absl::StrCat(kPython, " is missing")};
  }
  absl::StatusOr<std::string> first = WriteLayoutJson(c.config, c.name);
  if (!first.ok()) return first.status();
  absl::StatusOr<std::string> second = WriteLayoutJson(c.relayout, c.relayout_name);
  if (!second.ok()) {
    std::remove(first->c_str());
    return second.status();
  }
  const std::string cmd =
      absl::StrCat(kPython, " ", script, " --layout-json ", *first, " --relayout-json ", *second,
                   " --repeat ", repeat, " --timeout 180 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return absl::InternalError("cannot run " + cmd);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  std::remove(first->c_str());
  std::remove(second->c_str());
  if (rc != 0) return absl::InternalError(absl::StrCat("torch run failed (", rc, "): ", out));
  google::protobuf::Struct result;
  if (!google::protobuf::util::JsonStringToMessage(out, &result).ok()) {
    return absl::InternalError("unparsable torch output: " + out);
  }
  const auto& fields = result.fields();
  TorchResult r;
  if (auto it = fields.find("skipped"); it != fields.end()) {
    r.skipped = it->second.string_value();
    return r;
  }
  auto stats = [&](const std::string& span) -> absl::StatusOr<Stats> {
    auto best = fields.find("best_" + span + "_s");
    auto median = fields.find("median_" + span + "_s");
    if (best == fields.end() || median == fields.end()) {
      return absl::InternalError(absl::StrCat("torch output has no ", span, ": ", out));
    }
    return Stats{best->second.number_value(), median->second.number_value()};
  };
  for (auto [span, into] : {std::pair{"init_to_ready", &r.ready},
                            std::pair{"total_with_teardown", &r.total_with_teardown},
                            std::pair{"relayout", &r.relayout}}) {
    absl::StatusOr<Stats> s = stats(span);
    if (!s.ok()) return s.status();
    *into = *s;
  }
  return r;
}

}  // namespace
}  // namespace cohort

int main(int argc, char** argv) {
  constexpr const char* kUsage =
      "usage: flow_bench BIN_DIR [--repeat K] [--no-torch] [--worlds 4,8,16]\n";
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string bin = argv[1];
  int repeat = 5;
  bool torch = true;
  std::set<int64_t> worlds = {4, 8, 16};
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--repeat" && i + 1 < argc) {
      repeat = std::atoi(argv[++i]);
    } else if (arg == "--no-torch") {
      torch = false;
    } else if (arg == "--worlds" && i + 1 < argc) {
      worlds.clear();
      for (absl::string_view w : absl::StrSplit(argv[++i], ',', absl::SkipEmpty())) {
        int64_t v = 0;
        if (!absl::SimpleAtoi(w, &v)) {
          std::cerr << "flow_bench: --worlds takes a list like 4,8,16\n" << kUsage;
          return 2;
        }
        worlds.insert(v);
      }
    } else {
      std::cerr << "flow_bench: unknown argument " << arg << "\n" << kUsage;
      return 2;
    }
  }
  if (repeat < 1) {
    std::cerr << "flow_bench: --repeat must be at least 1\n";
    return 2;
  }
  const std::string script = std::string(COHORT_SOURCE_DIR) + "/bench/torch_groups.py";
  // The second layout swaps the tp and dp degrees: same kinds, as many groups of each size, other
  // ranks in them (tp is the innermost dimension, dp the outermost).
  const std::vector<cohort::Case> all_cases = {
      {"world4_dp2_ulysses2",
       {.world_size = 4, .data_parallel_size = 2, .ulysses_degree = 2},
       "world4_tp2_ulysses2",
       {.world_size = 4, .ulysses_degree = 2, .tensor_parallel_size = 2}},
      {"world8_dp2_cfg2_ulysses2",
       {.world_size = 8, .data_parallel_size = 2, .cfg_parallel_size = 2, .ulysses_degree = 2},
       "world8_tp2_cfg2_ulysses2",
       {.world_size = 8, .cfg_parallel_size = 2, .ulysses_degree = 2, .tensor_parallel_size = 2}},
      {"world16_dp2_cfg2_ulysses2_ring2",
       {.world_size = 16,
        .data_parallel_size = 2,
        .cfg_parallel_size = 2,
        .ulysses_degree = 2,
        .ring_degree = 2},
       "world16_tp2_cfg2_ulysses2_ring2",
       {.world_size = 16,
        .cfg_parallel_size = 2,
        .ulysses_degree = 2,
        .ring_degree = 2,
        .tensor_parallel_size = 2}},
  };
  std::vector<cohort::Case> cases;
  for (const auto& c : all_cases) {
    if (worlds.count(c.config.world_size) > 0) cases.push_back(c);
  }
  if (cases.empty()) {
    std::cerr << "flow_bench: --worlds names none of 4, 8, 16\n";
    return 2;
  }
  // One table per span; rows are printed once every case has run.
  struct Row {
    std::string name;
    cohort::Stats mine[3];
    std::optional<cohort::Stats> theirs[3];
  };
  static constexpr const char* kSpans[3] = {"Initialize -> READY", "total with teardown",
                                            "relayout on a kept world"};
  static constexpr const char* kMetrics[3] = {"median_ms", "total_with_teardown_median_ms",
                                              "relayout_median_ms"};
  std::vector<Row> rows;
  std::string torch_skipped = torch ? "" : "--no-torch";
  int rc = 0;
  for (const auto& c : cases) {
    absl::StatusOr<cohort::Spans> ours = cohort::RunCohort(bin, c, repeat);
    if (!ours.ok()) {
      std::fprintf(stderr, "error: cohort %s: %s\n", c.name.c_str(),
                   std::string(ours.status().message()).c_str());
      rc = 1;
      continue;
    }
    Row row;
    row.name = c.name;
    row.mine[0] = cohort::Summarize(ours->ready);
    row.mine[1] = cohort::Summarize(ours->total_with_teardown);
    row.mine[2] = cohort::Summarize(ours->relayout);
    // For bench/summarize.py.
    const std::string metric = absl::StrCat("flow.world", c.config.world_size);
    for (int k = 0; k < 3; ++k) {
      std::printf("METRIC %s.cohort_%s %.3f ms\n", metric.c_str(), kMetrics[k],
                  row.mine[k].median * 1000);
    }
    if (torch_skipped.empty()) {
      absl::StatusOr<cohort::TorchResult> theirs = cohort::RunTorch(script, c, 3);
      if (!theirs.ok()) {
        std::fprintf(stderr, "error: torch %s: %s\n", c.name.c_str(),
                     std::string(theirs.status().message()).c_str());
        rc = 1;
      } else if (!theirs->skipped.empty()) {
        torch_skipped = theirs->skipped;
      } else {
        row.theirs[0] = theirs->ready;
        row.theirs[1] = theirs->total_with_teardown;
        row.theirs[2] = theirs->relayout;
        for (int k = 0; k < 3; ++k) {
          std::printf("METRIC %s.torch_%s %.3f ms\n", metric.c_str(), kMetrics[k],
                      row.theirs[k]->median * 1000);
        }
      }
    }
    std::fflush(stdout);  // progress through a pipe (make bench tees the output)
    rows.push_back(std::move(row));
  }
  for (int k = 0; k < 3; ++k) {
    std::printf("%s%-34s %12s %12s %12s %12s %8s\n", k == 0 ? "" : "\n",
                absl::StrCat("layout (", kSpans[k], ")").c_str(), "cohort best", "cohort med",
                "torch best", "torch med", "ratio");
    for (const Row& row : rows) {
      if (!row.theirs[k].has_value()) {
        std::printf("%-34s %11.3fs %11.3fs %12s %12s %8s\n", row.name.c_str(), row.mine[k].best,
                    row.mine[k].median, "-", "-", "-");
        continue;
      }
      std::printf("%-34s %11.3fs %11.3fs %11.3fs %11.3fs %7.1fx\n", row.name.c_str(),
                  row.mine[k].best, row.mine[k].median, row.theirs[k]->best, row.theirs[k]->median,
                  row.theirs[k]->median / row.mine[k].median);
    }
  }
  std::printf("ratio = torch median / cohort median (higher is better for cohort)\n");
  std::printf("total with teardown = Initialize -> READY + destroy everything -> torn down\n");
  std::printf(
      "relayout = model-parallel destroy -> the other layout (tp<->dp) READY, world kept\n");
  if (!torch_skipped.empty()) std::printf("torch skipped: %s\n", torch_skipped.c_str());
  return rc;
}
