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
//                    [--coordinator-log FILE] [--coordinator-flag F]... [--no-abort]
// A profiler in front of the coordinator: COHORT_BENCH_COORDINATOR_PREFIX="/usr/bin/valgrind
// --tool=massif --massif-out-file=F" (it is then stopped with SIGTERM so that it writes F).

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/scale_harness.h"
#include "common/lock_order_checks.h"
#include "common/logging.h"

namespace cohort::bench {
namespace {

int RunScale(const Options& o, int n) {
  const std::string p = absl::StrCat("scale.n", n);
  Coordinator coordinator(o.bin, o.heartbeat, o.coordinator_log, o.coordinator_flags);
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
  cohort::SkipLockOrderChecksInReleaseBuilds();
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
    } else if (flag == "--coordinator-flag") {
      o.coordinator_flags.push_back(next());
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
