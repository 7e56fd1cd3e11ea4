// Aborting a world-1 pool's NCCL communicators: cohort's parallel teardown against a loop.
//
// With cohort's own NcclBackend (MakeBackend("nccl")), at world 1 on one device, each repetition
// builds the world plus one split per group kind of a world-1 layout with every kind (dp cfg pp
// ulysses ring sp tp fs ep dit: 11 communicators; --groups N keeps the first N kinds), and tears
// them down twice over (a fresh build each time):
//   parallel  Backend::DestroyAll(comms, /*abort=*/true): one thread per communicator, what a
//             cohort agent does when its generation fails
//   serial    Communicator::Abort() then Destroy() of each communicator in turn
// NCCL's ncclCommAbort costs ~0.5 s per communicator on a GPU (its proxy thread polls every
// 500 ms), so the serial loop should take about N times as long as the parallel teardown. On the
// NCCL test double set COHORT_NCCL_DOUBLE_ABORT_DELAY_MS=500 to stand in for that.
//
// Usage: nccl_teardown_bench [--device N] [--repeat N] [--groups N] [--timeout-s S]
// Output: `teardown rep=K build_ms=... parallel_ms=... serial_ms=...` per repetition, then
// `teardown summary comms=... parallel_ms=... serial_ms=... ratio=...` (medians). Exit status 0,
// 1 on a failed build or teardown, 2 on bad flags.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/comm/backend.h"
#include "agent/comm/communicator.h"
#include "agent/comm/rendezvous_store.h"
#include "common/layout.h"
#include "common/parallel_config.h"

namespace cohort {
namespace {

using agent::Backend;
using agent::Communicator;
using agent::GroupRequest;

struct Options {
  int device = 0;
  int repeat = 3;
  int groups = -1;  // -1: every kind of the world-1 layout but the world
  double timeout_s = 60;
};

double Millis(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// This rank's group of every kind of a world-1 layout with every kind, the world left out (the
// agent's GroupRequests does the same with the plan the coordinator sends).
absl::StatusOr<std::vector<GroupRequest>> WorldOneRequests() {
  ParallelConfig config;
  config.world_size = 1;
  config.is_moe = true;
  config.enable_expert_parallel = true;
  absl::StatusOr<Layout> layout = Layout::Build(config);
  if (!layout.ok()) return layout.status();
  std::vector<GroupRequest> requests;
  for (GroupKind kind : layout->kinds()) {
    if (kind == GroupKind::kWorld) continue;
    GroupRequest r;
    r.kind = kind;
    r.group_index = layout->GroupIndexOf(kind, 0);
    r.ranks = layout->GroupOf(kind, 0);
    r.rank_in_group = layout->RankInGroup(kind, 0);
    requests.push_back(std::move(r));
  }
  return requests;
}

// The world and its groups, all ready; the world first.
absl::StatusOr<std::vector<std::unique_ptr<Communicator>>> Build(
    Backend& backend, const Options& o, const std::vector<GroupRequest>& requests) {
  agent::InMemoryRendezvousStore store;
  const absl::Time deadline = absl::Now() + absl::Seconds(o.timeout_s);
  absl::StatusOr<std::unique_ptr<Communicator>> world =
      backend.CreateWorld({.rank = 0, .world_size = 1, .device_index = o.device}, store, deadline);
  if (!world.ok()) return world.status();
  absl::StatusOr<agent::GroupSet> groups = backend.CreateGroups(**world, requests, store, deadline);
  if (!groups.ok()) {
    (*world)->Abort();
    return groups.status();
  }
  std::vector<std::unique_ptr<Communicator>> comms;
  comms.push_back(*std::move(world));
  for (auto& c : groups->comms) comms.push_back(std::move(c));
  return comms;
}

[[noreturn]] void Fail(absl::string_view what, const absl::Status& s) {
  std::fprintf(stderr, "nccl_teardown_bench: error: %s: %s\n", std::string(what).c_str(),
               s.ToString().c_str());
  std::exit(1);
}

[[noreturn]] void Usage(const std::string& error) {
  std::fprintf(stderr,
               "error: %s\nusage: nccl_teardown_bench [--device N] [--repeat N] [--groups N] "
               "[--timeout-s S]\n",
               error.c_str());
  std::exit(2);
}

Options ParseFlags(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::printf(
          "usage: nccl_teardown_bench [--device N] [--repeat N] [--groups N] [--timeout-s S]\n");
      std::exit(0);
    }
    if (i + 1 >= argc) Usage("missing value for " + flag);
    const std::string value = argv[++i];
    if (flag == "--timeout-s") {
      if (!absl::SimpleAtod(value, &o.timeout_s) || !(o.timeout_s > 0) || o.timeout_s > 3600) {
        Usage("--timeout-s needs 0 < S <= 3600");
      }
      continue;
    }
    int n = 0;
    if (!absl::SimpleAtoi(value, &n) || n < 0) Usage(flag + ": not a count: " + value);
    if (flag == "--device") {
      o.device = n;
    } else if (flag == "--repeat" && n >= 1) {
      o.repeat = n;
    } else if (flag == "--groups") {
      o.groups = n;
    } else {
      Usage("unknown flag or bad value: " + flag + " " + value);
    }
  }
  return o;
}

int Run(const Options& o) {
  absl::StatusOr<std::vector<GroupRequest>> requests = WorldOneRequests();
  if (!requests.ok()) Fail("world-1 layout", requests.status());
  if (o.groups > static_cast<int>(requests->size())) {
    Usage(
        absl::StrCat("--groups: a world-1 layout has ", requests->size(), " kinds besides world"));
  }
  if (o.groups >= 0) requests->resize(o.groups);
  absl::StatusOr<std::unique_ptr<Backend>> backend = agent::MakeBackend("nccl", {});
  if (!backend.ok()) Fail("MakeBackend(\"nccl\")", backend.status());
  std::printf("teardown backend=nccl version=%s device=%d comms=%zu repeat=%d\n",
              (*backend)->version().c_str(), o.device, requests->size() + 1, o.repeat);
  std::fflush(stdout);

  std::vector<double> parallel_ms, serial_ms;
  for (int rep = 0; rep < o.repeat; ++rep) {
    absl::Time t0 = absl::Now();
    absl::StatusOr<std::vector<std::unique_ptr<Communicator>>> comms =
        Build(**backend, o, *requests);
    if (!comms.ok()) Fail("build", comms.status());
    const double build_ms = Millis(absl::Now() - t0);
    std::vector<Communicator*> raw;
    for (auto& c : *comms) raw.push_back(c.get());
    agent::TeardownReport report = (*backend)->DestroyAll(raw, /*abort=*/true);
    if (!report.status.ok()) Fail("DestroyAll(abort)", report.status);
    parallel_ms.push_back(Millis(report.total));
    comms->clear();

    comms = Build(**backend, o, *requests);
    if (!comms.ok()) Fail("build", comms.status());
    t0 = absl::Now();
    for (auto& c : *comms) {
      c->Abort();
      if (absl::Status s = c->Destroy(); !s.ok()) Fail("Abort+Destroy", s);
    }
    serial_ms.push_back(Millis(absl::Now() - t0));
    comms->clear();
    std::printf("teardown rep=%d comms=%zu build_ms=%.1f parallel_ms=%.1f serial_ms=%.1f\n", rep,
                raw.size(), build_ms, parallel_ms.back(), serial_ms.back());
    std::fflush(stdout);
  }
  const double p = Median(parallel_ms), s = Median(serial_ms);
  std::printf("teardown summary comms=%zu parallel_ms=%.1f serial_ms=%.1f ratio=%.1f\n",
              requests->size() + 1, p, s, p > 0 ? s / p : 0.0);
  return 0;
}

}  // namespace
}  // namespace cohort

int main(int argc, char** argv) { return cohort::Run(cohort::ParseFlags(argc, argv)); }
