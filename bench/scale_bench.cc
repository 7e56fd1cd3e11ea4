// Scale and control-plane latency against a real cohort-coordinator process on loopback, with
// many simulated agents in this one process (bench/sim_agent.h: the agent's own Session and
// GenerationRunner over backend none, sharing a few channels).
//
//   scale, for each N of --agents:
//     join     N agents join and attach (--join-threads at a time): per-agent Join latency;
//     init     Initialize (world N, backend none) -> every agent got its plan and reported READY
//              -> the pool READY: per-agent plan delivery and READY latencies;
//     steady   --duration seconds of heartbeats (the coordinator's interval, or
//              --heartbeat-seconds): the coordinator's CPU % of one core;
//     abort    1 % more agents join as standbys, then 1 % of the members are killed (their
//              streams cancelled at once): every survivor's abort (fan-out) and the pool READY
//              again, refilled by the standbys;
//     destroy  Destroy -> every member tore down; then every agent stops.
//   Per phase: wall time, the coordinator's CPU (utime+stime from /proc/PID/stat) as % of one
//   core, its RSS (VmRSS) at the end and its peak (VmHWM).
//   latency: a READY pool of --latency-world agents; with each of --latency-clients concurrent
//     clients (each its own channel): p50/p99 of Join, KvSet, KvGet, GetState of one rank and of
//     the whole pool.
//
// Output: one line per metric, "METRIC <name> <value> <unit>". A phase that misses its deadline
// says which and how many agents were missing, and the run ends with status 1.
//
// Usage: scale_bench BIN_DIR [--agents 1024,4096] [--duration S] [--heartbeat-seconds S]
//                    [--channels C] [--join-threads T] [--no-scale] [--no-latency]
//                    [--latency-world W] [--latency-clients 1,64] [--latency-ops K]
//                    [--coordinator-log FILE] [--no-abort]
// A profiler in front of the coordinator: COHORT_BENCH_COORDINATOR_PREFIX="/usr/bin/valgrind
// --tool=massif --massif-out-file=F" (it is then stopped with SIGTERM so that it writes F).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/coordinator_client.h"
#include "bench/sim_agent.h"
#include "cohort/v1/admin.grpc.pb.h"
#include "common/layout_proto.h"
#include "common/logging.h"
#include "tests/process.h"

namespace cohort::bench {
namespace {

using testing::ChildProcess;

constexpr char kPool[] = "default";

void Metric(const std::string& name, double value, const std::string& unit) {
  std::printf("METRIC %s %.3f %s\n", name.c_str(), value, unit.c_str());
  std::fflush(stdout);
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

// utime + stime of process `pid` ("self": this one), in seconds.
double ProcessCpuSeconds(const std::string& pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces) start at field 3.
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::vector<std::string> fields = absl::StrSplit(text.substr(close + 2), ' ');
  if (fields.size() < 13) return -1;
  int64_t utime = 0, stime = 0;
  if (!absl::SimpleAtoi(fields[11], &utime) || !absl::SimpleAtoi(fields[12], &stime)) return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}
// A field of /proc/PID/status in MB ("VmRSS", "VmHWM").
double ProcessStatusMb(const std::string& pid, const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) != 0) continue;
    std::istringstream fields(line.substr(field.size() + 1));
    double kb = 0;
    fields >> kb;
    return kb / 1024.0;
  }
  return -1;
}

// The coordinator process, and what /proc says about it.
class Coordinator {
 public:
  // `log`: where the coordinator's log goes (at level info), or empty (warnings, dropped).
  Coordinator(const std::string& bin, absl::Duration heartbeat, const std::string& log) {
    std::vector<std::string> argv = {
        bin + "/cohort-coordinator",  "--insecure", "--listen", "127.0.0.1:0", "--log-level",
        log.empty() ? "warn" : "info"};
    if (heartbeat > absl::ZeroDuration()) {
      argv.insert(argv.end(), {"--heartbeat-interval", absl::FormatDuration(heartbeat)});
    }
    // A profiler in front (COHORT_BENCH_COORDINATOR_PREFIX="valgrind --tool=massif ..."): the
    // CPU and RSS numbers are then the profiler's.
    if (const char* prefix = std::getenv("COHORT_BENCH_COORDINATOR_PREFIX"); prefix != nullptr) {
      std::vector<std::string> words = absl::StrSplit(prefix, ' ', absl::SkipEmpty());
      argv.insert(argv.begin(), words.begin(), words.end());
    }
    auto c = ChildProcess::Spawn(argv, log.empty() ? "/dev/null" : log);
    if (!c.has_value()) return;
    process_ = std::make_unique<ChildProcess>(std::move(*c));
    // The line that names the address (a profiler in front may print its own lines first).
    std::optional<std::string> line;
    do {
      line = process_->ReadLine(absl::Seconds(30));
    } while (line.has_value() && !absl::StrContains(*line, " listening on "));
    if (line.has_value()) address_ = line->substr(line->rfind(' ') + 1);
    if (!address_.empty()) {
      admin_ = v1::AdminService::NewStub(
          grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
    }
  }
  ~Coordinator() {
    if (process_ != nullptr) {
      // Under a profiler: SIGTERM, so that it writes its profile on the way out.
      if (std::getenv("COHORT_BENCH_COORDINATOR_PREFIX") != nullptr) {
        process_->Signal(SIGTERM);
        if (process_->WaitExit(absl::Seconds(60)).has_value()) return;
      }
      process_->Signal(SIGKILL);
      process_->WaitExit(absl::Seconds(10));
    }
  }
  bool ok() const { return admin_ != nullptr; }
  const std::string& address() const { return address_; }
  v1::AdminService::Stub& admin() { return *admin_; }

  // utime + stime, in seconds.
  double CpuSeconds() const { return ProcessCpuSeconds(absl::StrCat(process_->pid())); }
  // A field of /proc/PID/status in MB ("VmRSS", "VmHWM").
  double StatusMb(const std::string& field) const {
    return ProcessStatusMb(absl::StrCat(process_->pid()), field);
  }

  // Polls the pool's summary (ListPools: no member list) until `done`; false at the deadline.
  bool WaitForSummary(const std::function<bool(const v1::PoolSummary&)>& done, absl::Time deadline,
                      v1::PoolSummary* last = nullptr) {
    while (true) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      v1::ListPoolsRequest request;
      v1::ListPoolsResponse response;
      if (admin_->ListPools(&context, request, &response).ok()) {
        for (const v1::PoolSummary& s : response.pools()) {
          if (s.pool() != kPool) continue;
          if (last != nullptr) *last = s;
          if (done(s)) return true;
        }
      }
      if (absl::Now() >= deadline) return false;
      // Polling a remote summary, with a deadline. ListPools costs the coordinator O(members)
      // under its lock: not more often than this.
      absl::SleepFor(absl::Milliseconds(25));
    }
  }

 private:
  std::unique_ptr<ChildProcess> process_;
  std::string address_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

// A channel of its own (its own TCP connection): a distinct argument keeps gRPC from sharing one
// subchannel between channels to the same address. Otherwise as CreateCoordinatorChannel.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, int index) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(agent::kConnectAttemptTimeout)));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("cohort.bench_channel", index);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

// Runs fn(i) for i in [begin, end) on `threads` threads.
void ParallelFor(int begin, int end, int threads, const std::function<void(int)>& fn) {
  std::atomic<int> next{begin};
  std::vector<std::thread> workers;
  for (int t = 0; t < std::min(threads, std::max(1, end - begin)); ++t) {
    workers.emplace_back([&] {
      for (int i = next++; i < end; i = next++) fn(i);
    });
  }
  for (std::thread& w : workers) w.join();
}

// A layout of `world` ranks: tp up to 8, ulysses up to 4, the rest data parallel.
ParallelConfig ConfigFor(int world) {
  ParallelConfig c{.world_size = world};
  c.tensor_parallel_size = world % 8 == 0 ? 8 : 1;
  c.ulysses_degree = (world / c.tensor_parallel_size) % 4 == 0 ? 4 : 1;
  c.data_parallel_size = world / (c.tensor_parallel_size * c.ulysses_degree);
  return c;
}

struct Options {
  std::string bin;
  std::vector<int> agents = {1024, 4096};
  absl::Duration duration = absl::Seconds(60);
  absl::Duration heartbeat = absl::ZeroDuration();  // the coordinator's default
  int channels = 16;
  int join_threads = 256;
  bool scale = true;
  bool latency = true;
  // The abort phase (at 4,096 on a small machine its cascade of generations takes minutes and GBs).
  bool abort = true;
  int latency_world = 1024;
  std::vector<int> latency_clients = {1, 64};
  int latency_ops = 2000;
  // Where the coordinator logs (level info); empty: nowhere.
  std::string coordinator_log;
};

// The simulated agents of one run, over `channels` channels and as many timer queues.
class Fleet {
 public:
  Fleet(const std::string& address, int channels) {
    for (int c = 0; c < channels; ++c) {
      channels_.push_back(MakeChannel(address, c));
      timers_.push_back(std::make_unique<TimerQueue>(Clock::Real()));
      timers_.back()->Start();
    }
  }
  ~Fleet() {
    StopAll(64);
    for (auto& t : timers_) t->Stop();
  }
  // Adds an agent (not joined yet); returns its index.
  int Add(const std::string& identity, int rank_hint) {
    const size_t c = agents_.size() % channels_.size();
    agents_.push_back(std::make_unique<SimAgent>(identity, kPool, rank_hint, channels_[c],
                                                 timers_[c].get(), &tracker_));
    return static_cast<int>(agents_.size()) - 1;
  }
  SimAgent& agent(int i) { return *agents_[i]; }
  SimTracker& tracker() { return tracker_; }
  // Joins agents [begin, end) on `threads` threads; returns each one's Join latency (ms), and
  // the number that failed.
  std::vector<double> JoinAll(int begin, int end, int threads, int* failed) {
    std::vector<double> ms(end - begin, -1);
    std::atomic<int> failures{0};
    ParallelFor(begin, end, threads, [&](int i) {
      const absl::Time start = absl::Now();
      absl::Status s = agents_[i]->JoinAndStart();
      if (!s.ok()) {
        if (failures++ == 0) std::fprintf(stderr, "join %d: %s\n", i, s.ToString().c_str());
        return;
      }
      ms[i - begin] = absl::ToDoubleMilliseconds(absl::Now() - start);
    });
    *failed = failures;
    ms.erase(std::remove(ms.begin(), ms.end(), -1), ms.end());
    return ms;
  }
  void StopAll(int threads) {
    ParallelFor(0, static_cast<int>(agents_.size()), threads, [&](int i) { agents_[i]->Stop(); });
  }

 private:
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<TimerQueue>> timers_;
  SimTracker tracker_;
  std::vector<std::unique_ptr<SimAgent>> agents_;
};

// Per-agent latencies in ms since `since`.
std::vector<double> Since(const std::vector<absl::Time>& times, absl::Time since) {
  std::vector<double> ms;
  for (absl::Time t : times) ms.push_back(absl::ToDoubleMilliseconds(t - since));
  return ms;
}

// One phase's coordinator numbers.
class PhaseMeter {
 public:
  PhaseMeter(Coordinator& coordinator, std::string prefix)
      : coordinator_(coordinator),
        prefix_(std::move(prefix)),
        start_(absl::Now()),
        cpu_(coordinator.CpuSeconds()),
        self_cpu_(ProcessCpuSeconds("self")) {}
  void Report() {
    const double wall = absl::ToDoubleSeconds(absl::Now() - start_);
    Metric(prefix_ + ".wall_ms", wall * 1000, "ms");
    Metric(prefix_ + ".coordinator_cpu_pct", 100 * (coordinator_.CpuSeconds() - cpu_) / wall,
           "%core");
    Metric(prefix_ + ".coordinator_rss_mb", coordinator_.StatusMb("VmRSS"), "MB");
    // The simulated agents share the machine with the coordinator.
    Metric(prefix_ + ".bench_cpu_pct", 100 * (ProcessCpuSeconds("self") - self_cpu_) / wall,
           "%core");
  }

 private:
  Coordinator& coordinator_;
  const std::string prefix_;
  const absl::Time start_;
  const double cpu_;
  const double self_cpu_;
};

int Fail(const std::string& phase, const std::string& what) {
  std::fprintf(stderr, "error: phase %s: %s\n", phase.c_str(), what.c_str());
  return 1;
}

int RunScale(const Options& o, int n) {
  const std::string p = absl::StrCat("scale.n", n);
  Coordinator coordinator(o.bin, o.heartbeat, o.coordinator_log);
  if (!coordinator.ok()) return Fail("start", "the coordinator did not start");
  const int k = std::max(1, n / 100);  // killed, and standbys to refill them
  Fleet fleet(coordinator.address(), o.channels);
  for (int i = 0; i < n + k; ++i) fleet.Add(absl::StrCat("sim-", i), i < n ? i : -1);
  SimTracker& tracker = fleet.tracker();

  // join: every agent joined and attached.
  {
    PhaseMeter meter(coordinator, p + ".join");
    int failed = 0;
    std::vector<double> join_ms = fleet.JoinAll(0, n, o.join_threads, &failed);
    if (failed > 0) return Fail("join", absl::StrCat(failed, " of ", n, " agents failed to join"));
    v1::PoolSummary s;
    if (!coordinator.WaitForSummary([n](const v1::PoolSummary& s) { return s.members() >= n; },
                                    absl::Now() + absl::Seconds(60), &s)) {
      return Fail("join", absl::StrCat(n - s.members(), " of ", n, " agents missing"));
    }
    meter.Report();
    Metric(p + ".join.per_agent_p50_ms", Percentile(join_ms, 0.5), "ms");
    Metric(p + ".join.per_agent_p99_ms", Percentile(join_ms, 0.99), "ms");
  }

  // init: Initialize -> every agent READY -> the pool READY.
  int64_t generation = 0;
  {
    PhaseMeter meter(coordinator, p + ".init");
    v1::InitializeRequest init;
    init.set_pool(kPool);
    *init.mutable_config() = ToProto(ConfigFor(n));
    init.mutable_options()->set_backend("none");
    const absl::Time start = absl::Now();
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(start + absl::Seconds(60)));
    v1::InitializeResponse response;
    grpc::Status s = coordinator.admin().Initialize(&context, init, &response);
    if (!s.ok()) return Fail("init", "Initialize: " + s.error_message());
    generation = response.generation();
    const absl::Time deadline = start + absl::Seconds(120);
    const int ready = tracker.WaitFor(SimTracker::Event::kReady, generation, n, deadline);
    if (ready < n) {
      const int planned =
          static_cast<int>(tracker.Times(SimTracker::Event::kPlan, generation).size());
      return Fail("init", absl::StrCat(n - ready, " of ", n, " agents not READY (", n - planned,
                                       " never got a plan)"));
    }
    v1::PoolSummary last;
    if (!coordinator.WaitForSummary(
            [&](const v1::PoolSummary& s) {
              return s.generation() == generation && s.phase() == v1::POOL_PHASE_READY;
            },
            deadline, &last)) {
      // A later generation: members were lost meanwhile (missed heartbeats on a busy machine).
      return Fail("init", absl::StrCat("generation ", generation, " is not READY: the pool is at ",
                                       "generation ", last.generation(), ", phase ",
                                       v1::PoolPhase_Name(last.phase()), ", ",
                                       n - last.members_ready(), " of ", n, " members not READY"));
    }
    const double to_ready = absl::ToDoubleMilliseconds(absl::Now() - start);
    meter.Report();
    Metric(p + ".init.to_pool_ready_ms", to_ready, "ms");
    std::vector<double> plan = Since(tracker.Times(SimTracker::Event::kPlan, generation), start);
    std::vector<double> up = Since(tracker.Times(SimTracker::Event::kReady, generation), start);
    Metric(p + ".init.plan_delivered_p50_ms", Percentile(plan, 0.5), "ms");
    Metric(p + ".init.plan_delivered_p99_ms", Percentile(plan, 0.99), "ms");
    Metric(p + ".init.agent_ready_p50_ms", Percentile(up, 0.5), "ms");
    Metric(p + ".init.agent_ready_p99_ms", Percentile(up, 0.99), "ms");
    // Each plan holds this rank's group of every kind: the WORLD (and a DIT of the whole world)
    // lists all N ranks, so the plans of one generation are O(N^2) bytes.
    Metric(p + ".init.max_plan_bytes", static_cast<double>(tracker.max_plan_bytes()), "bytes");
  }

  // steady: heartbeats only.
  {
    PhaseMeter meter(coordinator, p + ".steady");
    absl::SleepFor(o.duration);  // the measurement window itself
    meter.Report();
    v1::PoolSummary last;
    const bool still = coordinator.WaitForSummary(
        [&](const v1::PoolSummary& s) {
          return s.generation() == generation && s.phase() == v1::POOL_PHASE_READY;
        },
        absl::Now(), &last);
    Metric(p + ".steady.still_ready", still ? 1 : 0, "bool");
    if (!still) {
      return Fail("steady", absl::StrCat("the pool left READY under heartbeats: phase ",
                                         v1::PoolPhase_Name(last.phase()), ", generation ",
                                         last.generation()));
    }
  }

  // abort: k standbys, then k members killed -> survivors aborted, the pool READY again.
  if (o.abort) {
    int failed = 0;
    fleet.JoinAll(n, n + k, o.join_threads, &failed);
    v1::PoolSummary s;
    if (failed > 0 ||
        !coordinator.WaitForSummary([&](const v1::PoolSummary& s) { return s.members() >= n + k; },
                                    absl::Now() + absl::Seconds(60), &s)) {
      return Fail("abort", absl::StrCat("standbys: ", n + k - s.members(), " of ", k, " missing"));
    }
    PhaseMeter meter(coordinator, p + ".abort");
    const absl::Time start = absl::Now();
    const int64_t first = generation;
    std::vector<int> victims;
    for (int i = 0; i < k; ++i) victims.push_back(i * (n / k));
    for (int v : victims) fleet.agent(v).Kill();
    const absl::Time deadline = start + absl::Seconds(60);
    const int aborted = tracker.WaitFor(SimTracker::Event::kAbort, generation, n - k, deadline);
    if (aborted < n - k) {
      return Fail("abort", absl::StrCat(n - k - aborted, " of ", n - k, " survivors not aborted"));
    }
    std::vector<double> abort_ms =
        Since(tracker.Times(SimTracker::Event::kAbort, generation), start);
    v1::PoolSummary last;
    if (!coordinator.WaitForSummary(
            [&](const v1::PoolSummary& s) {
              return s.generation() > generation && s.phase() == v1::POOL_PHASE_READY;
            },
            start + absl::Seconds(120), &last)) {
      return Fail("abort", absl::StrCat("not READY again: phase ", v1::PoolPhase_Name(last.phase()),
                                        ", generation ", last.generation(), ", ",
                                        n - last.members_ready(), " members not READY"));
    }
    const double refilled = absl::ToDoubleMilliseconds(absl::Now() - start);
    generation = last.generation();
    // The generation that came READY: when its plans arrived and its members were READY.
    std::vector<double> plan = Since(tracker.Times(SimTracker::Event::kPlan, generation), start);
    std::vector<double> up = Since(tracker.Times(SimTracker::Event::kReady, generation), start);
    Metric(p + ".abort.generations_started", static_cast<double>(generation - first), "count");
    Metric(p + ".abort.final_plan_delivered_p50_ms", Percentile(plan, 0.5), "ms");
    Metric(p + ".abort.final_plan_delivered_p99_ms", Percentile(plan, 0.99), "ms");
    Metric(p + ".abort.final_agent_ready_p50_ms", Percentile(up, 0.5), "ms");
    Metric(p + ".abort.final_agent_ready_p99_ms", Percentile(up, 0.99), "ms");
    meter.Report();
    Metric(p + ".abort.killed", k, "agents");
    Metric(p + ".abort.fanout_all_survivors_ms", Percentile(abort_ms, 1.0), "ms");
    Metric(p + ".abort.per_survivor_p50_ms", Percentile(abort_ms, 0.5), "ms");
    Metric(p + ".abort.per_survivor_p99_ms", Percentile(abort_ms, 0.99), "ms");
    Metric(p + ".abort.to_pool_ready_again_ms", refilled, "ms");
    for (int v : victims) fleet.agent(v).Stop();
  }

  // destroy: every member tore down, then every agent stops.
  {
    PhaseMeter meter(coordinator, p + ".destroy");
    const absl::Time start = absl::Now();
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(start + absl::Seconds(60)));
    v1::DestroyRequest request;
    request.set_pool(kPool);
    request.set_scope(v1::DESTROY_SCOPE_ALL);
    v1::DestroyResponse response;
    grpc::Status s = coordinator.admin().Destroy(&context, request, &response);
    if (!s.ok()) return Fail("destroy", "Destroy: " + s.error_message());
    const int down =
        tracker.WaitFor(SimTracker::Event::kTornDown, generation, n, start + absl::Seconds(60));
    if (down < n) return Fail("destroy", absl::StrCat(n - down, " of ", n, " not torn down"));
    Metric(p + ".destroy.all_torn_down_ms", absl::ToDoubleMilliseconds(absl::Now() - start), "ms");
    fleet.StopAll(64);
    meter.Report();
  }
  Metric(p + ".coordinator_peak_rss_mb", coordinator.StatusMb("VmHWM"), "MB");
  return 0;
}

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

std::vector<int> ParseList(const std::string& text) {
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int v = 0;
    if (absl::SimpleAtoi(part, &v) && v > 0) out.push_back(v);
  }
  return out;
}

}  // namespace
}  // namespace cohort::bench

int main(int argc, char** argv) {
  using cohort::bench::Options;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s BIN_DIR [flags]\n", argv[0]);
    return 2;
  }
  // The simulated agents log like agents: thousands of info lines would cost the run.
  (void)cohort::SetupLogging("scale_bench", "warn");
  Options o;
  o.bin = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string flag = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    double seconds = 0;
    if (flag == "--agents") {
      o.agents = cohort::bench::ParseList(next());
    } else if (flag == "--duration" && absl::SimpleAtod(next(), &seconds)) {
      o.duration = absl::Seconds(seconds);
    } else if (flag == "--heartbeat-seconds" && absl::SimpleAtod(next(), &seconds)) {
      o.heartbeat = absl::Seconds(seconds);
    } else if (flag == "--channels") {
      o.channels = std::max(1, std::atoi(next().c_str()));
    } else if (flag == "--join-threads") {
      o.join_threads = std::max(1, std::atoi(next().c_str()));
    } else if (flag == "--coordinator-log") {
      o.coordinator_log = next();
    } else if (flag == "--no-scale") {
      o.scale = false;
    } else if (flag == "--no-abort") {
      o.abort = false;
    } else if (flag == "--no-latency") {
      o.latency = false;
    } else if (flag == "--latency-world") {
      o.latency_world = std::max(1, std::atoi(next().c_str()));
    } else if (flag == "--latency-clients") {
      o.latency_clients = cohort::bench::ParseList(next());
    } else if (flag == "--latency-ops") {
      o.latency_ops = std::max(1, std::atoi(next().c_str()));
    } else {
      std::fprintf(stderr, "unknown flag or bad value: %s\n", flag.c_str());
      return 2;
    }
  }
  int status = 0;
  if (o.scale) {
    for (int n : o.agents) status |= cohort::bench::RunScale(o, n);
  }
  if (o.latency) status |= cohort::bench::RunLatency(o);
  return status;
}
