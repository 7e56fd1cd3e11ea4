#include "agent/comm/backend.h"

#include <algorithm>
#include <array>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/comm/gloo_backend.h"
#include "agent/comm/none_backend.h"
#include "common/cohort_config.h"
#if COHORT_WITH_NCCL
#include "agent/comm/nccl_backend.h"
#endif

namespace cohort::agent {

absl::Status ValidateWorldSpec(const WorldSpec& spec) {
  if (spec.world_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("world_size must be >= 1, got ", spec.world_size));
  }
  if (spec.rank < 0 || spec.rank >= spec.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", spec.rank, " is out of range for world_size ", spec.world_size));
  }
  if (spec.device_index < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("device_index must be >= 0, got ", spec.device_index));
  }
  return absl::OkStatus();
}

GroupSpec WorldGroup(const WorldSpec& spec) {
  GroupSpec group;
  group.kind = GroupKind::kWorld;
  group.group_index = 0;
  group.ranks.resize(spec.world_size);
  for (int r = 0; r < spec.world_size; ++r) group.ranks[r] = r;
  group.rank_in_group = spec.rank;
  return group;
}

absl::Status ValidateGroupRequests(const Communicator& world,
                                   const std::vector<GroupRequest>& requests) {
  const int world_rank = world.ranks()[world.rank()];
  std::array<bool, kNumGroupKinds> seen{};
  for (const GroupRequest& r : requests) {
    const std::string label = GroupLabel(r.kind, r.group_index);
    auto bad = [&](auto&&... parts) {
      return absl::InvalidArgumentError(absl::StrCat("group request ", label, ": ", parts...));
    };
    const int kind_index = static_cast<int>(r.kind);
    if (kind_index < 0 || kind_index >= kNumGroupKinds) return bad("unknown kind ", kind_index);
    if (seen[kind_index]) return bad("kind requested twice (one group per kind per rank)");
    seen[kind_index] = true;
    if (r.group_index < 0) return bad("negative group index");
    if (r.ranks.empty()) return bad("no ranks");
    for (size_t i = 0; i < r.ranks.size(); ++i) {
      if (r.ranks[i] < 0 || r.ranks[i] >= world.size()) {
        return bad("rank ", r.ranks[i], " is outside the world of ", world.size());
      }
      if (i > 0 && r.ranks[i] <= r.ranks[i - 1]) {
        return bad("ranks must be ascending and unique: [", absl::StrJoin(r.ranks, ","), "]");
      }
    }
    if (r.rank_in_group < 0 || r.rank_in_group >= static_cast<int>(r.ranks.size()) ||
        r.ranks[r.rank_in_group] != world_rank) {
      return bad("rank_in_group ", r.rank_in_group, " does not point at this rank (", world_rank,
                 ") in [", absl::StrJoin(r.ranks, ","), "]");
    }
  }
  return absl::OkStatus();
}

TeardownReport Backend::DestroyAll(std::vector<Communicator*> comms, bool abort) {
  TeardownReport report;
  report.per_comm.resize(comms.size());
  report.durations.resize(comms.size());
  const absl::Time start = absl::Now();
  // One thread each: NCCL's abort alone takes ~0.5 s per communicator (its proxy polls every
  // 500 ms), so 8 communicators torn down one after another take 4 s. Each thread is bounded by
  // itself (Destroy falls back to abort at teardown_timeout; Abort bounds its own waits), so
  // joining them is bounded too.
  auto tear_down = [&](size_t i) {
    const absl::Time t0 = absl::Now();
    if (abort) {
      comms[i]->Abort();
      // Abort leaves the communicator in kAborted; mark it destroyed (releases nothing more).
      report.per_comm[i] = comms[i]->Destroy();
    } else {
      report.per_comm[i] = comms[i]->Destroy(options().teardown_timeout);
    }
    report.durations[i] = absl::Now() - t0;
  };
  std::vector<std::thread> threads;
  threads.reserve(comms.size());
  for (size_t i = 0; i < comms.size(); ++i) {
    if (comms[i] == nullptr) continue;
    if (comms[i]->release_waits()) {
      threads.emplace_back(tear_down, i);
    } else {
      tear_down(i);
    }
  }
  for (std::thread& t : threads) t.join();
  report.total = absl::Now() - start;
  int failed = 0;
  for (const absl::Status& s : report.per_comm) {
    if (s.ok()) continue;
    if (failed++ == 0) report.status = s;
  }
  if (failed > 1) {
    report.status = absl::Status(
        report.status.code(),
        absl::StrCat(report.status.message(), " (and ", failed - 1, " more teardown failure(s))"));
  }
  return report;
}

std::vector<std::string> CompiledBackends() {
  std::vector<std::string> names = {"gloo", "none"};
#if COHORT_WITH_NCCL
  names.insert(names.begin(), "nccl");
#endif
  return names;
}

DeviceIdentity QueryDeviceIdentity(int device) {
#if COHORT_WITH_NCCL
  return NcclDeviceIdentity(device);
#else
  (void)device;
  return {};
#endif
}

std::string CompiledNcclVersion() {
#if COHORT_WITH_NCCL
  return NcclVersion();
#else
  return "";
#endif
}

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(absl::string_view name,
                                                     const BackendOptions& options) {
  if (options.op_timeout <= absl::ZeroDuration() ||
      options.teardown_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("backend timeouts must be positive");
  }
  if (name == "none") return std::make_unique<NoneBackend>(options);
  if (name == "gloo") return MakeGlooBackend(options);
  if (name == "nccl") {
#if COHORT_WITH_NCCL
    return MakeNcclBackend(options);
#else
    return absl::UnimplementedError(
        "backend 'nccl' is not compiled into this build (COHORT_WITH_NCCL=OFF: the CUDA toolkit "
        "and NCCL were not found at configure time); rebuild with them, or use 'gloo' or 'none'");
#endif
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown backend '", name, "'; expected one of gloo, nccl, none"));
}

}  // namespace cohort::agent
