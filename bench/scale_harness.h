// The harness of scale_bench: the coordinator process and what /proc says about it, the fleet
// of simulated agents (bench/sim_agent.h) over a few channels, per-phase meters and the METRIC
// output. The scale phases are in scale_bench.cc, the control-plane latencies in
// control_latency.cc.
#ifndef COHORT_BENCH_SCALE_HARNESS_H_
#define COHORT_BENCH_SCALE_HARNESS_H_

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
#include "tests/process.h"

namespace cohort::bench {

using testing::ChildProcess;

inline constexpr char kPool[] = "default";

inline void Metric(const std::string& name, double value, const std::string& unit) {
  std::printf("METRIC %s %.3f %s\n", name.c_str(), value, unit.c_str());
  std::fflush(stdout);
}

inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

// utime + stime of process `pid` ("self": this one), in seconds.
inline double ProcessCpuSeconds(const std::string& pid) {
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
inline double ProcessStatusMb(const std::string& pid, const std::string& field) {
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
  // `extra`: more flags for it.
  Coordinator(const std::string& bin, absl::Duration heartbeat, const std::string& log,
              const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {
        bin + "/cohort-coordinator",  "--insecure", "--listen", "127.0.0.1:0", "--log-level",
        log.empty() ? "warn" : "info"};
    if (heartbeat > absl::ZeroDuration()) {
      argv.insert(argv.end(), {"--heartbeat-interval", absl::FormatDuration(heartbeat)});
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    // A profiler in front (COHORT_BENCH_COORDINATOR_PREFIX="valgrind --tool=massif ..."): the
    // CPU and RSS numbers are then the profiler's.
    if (const char* prefix = std::getenv("COHORT_BENCH_COORDINATOR_PREFIX"); prefix != nullptr) {
      std::vector<std::string> words = absl::StrSplit(prefix, ' ', absl::SkipEmpty());
      argv.insert(argv.begin(), words.begin(), words.end());
    }
    // In a session of its own: with the kernel's autogroup scheduling (Debian's default) the
    // coordinator then gets its share of the CPU next to this process as a whole, not one
    // thread's share next to 16,384 simulated agents' threads. On its own machine it would have
    // its cores to itself.
    auto c = ChildProcess::Spawn(argv, log.empty() ? "/dev/null" : log, {}, /*own_session=*/true);
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
// subchannel between channels to the same address. Otherwise as CreateCoordinatorChannel, but
// for the keepalive: a real agent's connection carries one session, one of these ~1,000, and on
// two cores shared with 16,384 simulated agents a ping's answer read 20 s late cut ~1,000
// sessions at once (every one of them a loss and a rejoin). Keepalive here only has to find a
// dead connection eventually, so it pings every 60 s and waits 60 s for the answer.
inline std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, int index) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(agent::kConnectAttemptTimeout)));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 60000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 60000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("cohort.bench_channel", index);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

// Runs fn(i) for i in [begin, end) on `threads` threads.
inline void ParallelFor(int begin, int end, int threads, const std::function<void(int)>& fn) {
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
inline ParallelConfig ConfigFor(int world) {
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
  // More flags for the coordinator (--coordinator-flag, repeated).
  std::vector<std::string> coordinator_flags;
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
inline std::vector<double> Since(const std::vector<absl::Time>& times, absl::Time since) {
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

inline int Fail(const std::string& phase, const std::string& what) {
  std::fprintf(stderr, "error: phase %s: %s\n", phase.c_str(), what.c_str());
  return 1;
}

// The control-plane latencies (control_latency.cc): a READY pool of o.latency_world agents, then
// p50/p99 of Join, KvSet, KvGet and GetState with each of o.latency_clients concurrent clients.
int RunLatency(const Options& o);

}  // namespace cohort::bench

#endif  // COHORT_BENCH_SCALE_HARNESS_H_
