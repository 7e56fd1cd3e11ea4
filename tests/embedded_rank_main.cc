// One rank of an inference engine that embeds the agent through the seed-style API. Started
// as N processes by parallel_state_test: builds two configs in turn on the same world, checks
// every getter against the layout and runs every collective on real groups, tears down.
//
// Usage: embedded_rank ADDRESS RANK CONFIG1 CONFIG2 [BACKEND], a CONFIG being
// "world=4,ulysses=2,ring=2", BACKEND "gloo" (default) or "nccl" (rank r on CUDA device r, the
// collectives' buffers in device memory, as an engine's tensors are).
// Prints "ok" and exits 0, or prints the first failure on stderr and exits 1.
#include <functional>
#include <iostream>
#include <numeric>
#include <vector>
#ifdef COHORT_EMBEDDED_NCCL
#include <cuda_runtime_api.h>
#endif

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/parallel_state.h"
#include "common/layout.h"
#include "common/logging.h"

namespace cohort {
namespace {

using agent::DataType;
using agent::ReduceOp;

ParallelConfig ParseConfig(const std::string& text) {
  ParallelConfig c;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, '=');
    int64_t v = 0;
    if (!absl::SimpleAtoi(kv.second, &v)) continue;
    if (kv.first == "world") c.world_size = v;
    if (kv.first == "dp") c.data_parallel_size = v;
    if (kv.first == "cfg") c.cfg_parallel_size = v;
    if (kv.first == "ulysses") c.ulysses_degree = v;
    if (kv.first == "ring") c.ring_degree = v;
    if (kv.first == "tp") c.tensor_parallel_size = v;
    if (kv.first == "pp") c.pipeline_parallel_size = v;
  }
  return c;
}

#define CHECK_OR_RETURN(cond, what)                                                \
  do {                                                                             \
    if (!(cond)) return absl::InternalError(absl::StrCat("check failed: ", what)); \
  } while (0)
#define RETURN_IF_ERROR(expr) \
  do {                        \
    absl::Status _s = (expr); \
    if (!_s.ok()) return _s;  \
  } while (0)

// Host buffers of a collective, handed to `run` as the backend needs them: as they are (Gloo), or
// copied to device memory and back (NCCL).
bool g_device_buffers = false;
absl::Status OnBackendBuffers(std::vector<std::pair<void*, size_t>> host,
                              const std::function<absl::Status(std::vector<void*>)>& run) {
  std::vector<void*> bufs;
  for (auto& [ptr, bytes] : host) bufs.push_back(ptr);
  if (!g_device_buffers) return run(bufs);
#ifdef COHORT_EMBEDDED_NCCL
  for (size_t i = 0; i < host.size(); ++i) {
    if (cudaMalloc(&bufs[i], host[i].second) != cudaSuccess ||
        cudaMemcpy(bufs[i], host[i].first, host[i].second, cudaMemcpyHostToDevice) != cudaSuccess) {
      return absl::InternalError("cudaMalloc/cudaMemcpy of a collective's buffer failed");
    }
  }
  absl::Status s = run(bufs);
  for (size_t i = 0; i < host.size(); ++i) {
    if (cudaMemcpy(host[i].first, bufs[i], host[i].second, cudaMemcpyDeviceToHost) != cudaSuccess) {
      s.Update(absl::InternalError("cudaMemcpy back from a collective's buffer failed"));
    }
    cudaFree(bufs[i]);
  }
  return s;
#else
  return absl::UnimplementedError("device buffers need a build with NCCL");
#endif
}

absl::Status CheckAndUse(const ParallelConfig& config, int rank) {
  absl::StatusOr<Layout> layout = Layout::Build(config);
  if (!layout.ok()) return layout.status();
  const RankView view = layout->ViewOf(rank);
  CHECK_OR_RETURN(model_parallel_is_initialized(), "model_parallel_is_initialized");
  struct Getter {
    GroupKind kind;
    std::shared_ptr<const agent::Group> group;
  };
  const Getter getters[] = {
      {GroupKind::kWorld, get_world_group()},     {GroupKind::kDp, get_dp_group()},
      {GroupKind::kCfg, get_cfg_group()},         {GroupKind::kPp, get_pp_group()},
      {GroupKind::kUlysses, get_ulysses_group()}, {GroupKind::kRing, get_ring_group()},
      {GroupKind::kSp, get_sp_group()},           {GroupKind::kTp, get_tp_group()},
      {GroupKind::kFs, get_fs_group()},           {GroupKind::kDit, get_dit_group()}};
  for (const Getter& g : getters) {
    CHECK_OR_RETURN(g.group != nullptr, GroupKindName(g.kind));
    CHECK_OR_RETURN(g.group->ranks() == layout->GroupOf(g.kind, rank),
                    absl::StrCat(GroupKindName(g.kind), " ranks"));
    CHECK_OR_RETURN(g.group->rank() == rank, absl::StrCat(GroupKindName(g.kind), " rank"));
  }
  CHECK_OR_RETURN(get_ep_group() == nullptr, "no ep group");
  CHECK_OR_RETURN(get_tensor_model_parallel_world_size() == config.tensor_parallel_size, "tp size");
  CHECK_OR_RETURN(get_ulysses_parallel_rank() == view.ulysses_rank, "ulysses rank");
  CHECK_OR_RETURN(get_ring_parallel_rank() == view.ring_rank, "ring rank");
  CHECK_OR_RETURN(
      get_pipeline_parallel_rank() == view.rank_in_group[static_cast<int>(GroupKind::kPp)],
      "pp rank");
  CHECK_OR_RETURN(is_pipeline_first_stage() == view.is_pipeline_first_stage, "first stage");
  CHECK_OR_RETURN(is_pipeline_last_stage() == view.is_pipeline_last_stage, "last stage");
  CHECK_OR_RETURN(is_dp_last_group() == view.is_dp_last_group, "is_dp_last_group");
  CHECK_OR_RETURN(get_dit_world_size() == view.dit_world_size, "dit world size");

  // Collectives on real groups.
  auto tp = get_tp_group();
  float value = static_cast<float>(rank);
  RETURN_IF_ERROR(OnBackendBuffers({{&value, sizeof(value)}}, [&](std::vector<void*> b) {
    return tp->comm().AllReduce(b[0], 1, DataType::kFloat32, ReduceOp::kSum);
  }));
  CHECK_OR_RETURN(value == std::accumulate(tp->ranks().begin(), tp->ranks().end(), 0.0f),
                  "tp all_reduce");
  auto sp = get_sp_group();
  std::vector<int32_t> gathered(sp->world_size());
  int32_t mine = rank;
  RETURN_IF_ERROR(OnBackendBuffers(
      {{&mine, sizeof(mine)}, {gathered.data(), gathered.size() * sizeof(int32_t)}},
      [&](std::vector<void*> b) { return sp->comm().AllGather(b[0], b[1], 1, DataType::kInt32); }));
  CHECK_OR_RETURN(std::vector<int>(gathered.begin(), gathered.end()) == sp->ranks(),
                  "sp all_gather");
  auto ulysses = get_ulysses_group();
  const int u = ulysses->world_size();
  std::vector<int64_t> send(u), recv(u);
  for (int j = 0; j < u; ++j) send[j] = rank * 100 + j;
  RETURN_IF_ERROR(
      OnBackendBuffers({{send.data(), u * sizeof(int64_t)}, {recv.data(), u * sizeof(int64_t)}},
                       [&](std::vector<void*> b) {
                         return ulysses->comm().AllToAll(b[0], b[1], 1, DataType::kInt64);
                       }));
  for (int i = 0; i < u; ++i) {
    CHECK_OR_RETURN(recv[i] == ulysses->ranks()[i] * 100 + ulysses->rank_in_group(),
                    "ulysses all_to_all");
  }
  auto dp = get_dp_group();
  int64_t root_value = rank;
  RETURN_IF_ERROR(OnBackendBuffers({{&root_value, sizeof(root_value)}}, [&](std::vector<void*> b) {
    return dp->comm().Broadcast(b[0], 1, DataType::kInt64, 0);
  }));
  CHECK_OR_RETURN(root_value == dp->first_rank(), "dp broadcast");
  auto pp = get_pp_group();
  if (pp->world_size() > 1) {
    // Pipeline hand-off: send to the next stage, receive from the previous one.
    int64_t out = rank, in = -1;
    const int next = (pp->rank_in_group() + 1) % pp->world_size();
    const int prev = (pp->rank_in_group() - 1 + pp->world_size()) % pp->world_size();
    RETURN_IF_ERROR(
        OnBackendBuffers({{&out, sizeof(out)}, {&in, sizeof(in)}}, [&](std::vector<void*> b) {
          if (pp->rank_in_group() % 2 == 0) {
            RETURN_IF_ERROR(pp->comm().Send(b[0], 1, DataType::kInt64, next));
            return pp->comm().Recv(b[1], 1, DataType::kInt64, prev);
          }
          RETURN_IF_ERROR(pp->comm().Recv(b[1], 1, DataType::kInt64, prev));
          return pp->comm().Send(b[0], 1, DataType::kInt64, next);
        }));
    CHECK_OR_RETURN(in == pp->prev_rank(), "pp send/recv");
  }
  return get_world_group()->comm().Barrier();
}

absl::Status Run(const std::string& address, int rank, const std::string& first,
                 const std::string& second, const std::string& backend) {
  agent::AgentOptions options;
  options.coordinator_address = address;
  options.identity = absl::StrCat("embedded-", rank);
  options.rank_hint = rank;
  g_device_buffers = backend == "nccl";
  if (g_device_buffers) options.device = rank;
  RETURN_IF_ERROR(init_distributed_environment(options));
  CHECK_OR_RETURN(!model_parallel_is_initialized(), "not initialized before init");
  CHECK_OR_RETURN(get_tp_group() == nullptr && get_tensor_model_parallel_rank() == -1,
                  "getters before init");
  for (const std::string& text : {first, second}) {
    const ParallelConfig config = ParseConfig(text);
    ModelParallelOptions mp;
    mp.config = config;
    mp.backend = backend;
    RETURN_IF_ERROR(initialize_model_parallel(mp));
    RETURN_IF_ERROR(CheckAndUse(config, rank));
    RETURN_IF_ERROR(destroy_model_parallel());
    CHECK_OR_RETURN(!model_parallel_is_initialized(), "destroyed");
  }
  return destroy_distributed_environment();
}

}  // namespace
}  // namespace cohort

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    std::cerr << "usage: embedded_rank ADDRESS RANK CONFIG1 CONFIG2 [BACKEND]\n";
    return 2;
  }
  int rank = 0;
  if (!absl::SimpleAtoi(argv[2], &rank)) return 2;
  if (!cohort::SetupLogging("embedded", "warn").ok()) return 2;
  absl::Status s = cohort::Run(argv[1], rank, argv[3], argv[4], argc == 6 ? argv[5] : "gloo");
  if (!s.ok()) {
    std::cerr << "rank " << rank << ": " << s << "\n";
    return 1;
  }
  std::cout << "ok" << std::endl;
  return 0;
}
