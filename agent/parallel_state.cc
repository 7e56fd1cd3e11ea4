#include "agent/parallel_state.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/layout.h"
#include "common/layout_proto.h"
#include "google/protobuf/util/message_differencer.h"

namespace cohort {
namespace {

absl::Mutex g_mu(absl::kConstInit);
// Process-wide, like the seed's module globals; leaked on purpose (no exit-time destructor
// racing the agent's threads).
std::unique_ptr<agent::Agent>* g_agent = new std::unique_ptr<agent::Agent>();

std::shared_ptr<const agent::GroupMap> Groups() {
  absl::MutexLock lock(&g_mu);
  return *g_agent == nullptr ? nullptr : (*g_agent)->groups();
}

std::shared_ptr<const agent::Group> GroupOf(GroupKind kind) {
  std::shared_ptr<const agent::GroupMap> groups = Groups();
  if (groups == nullptr) return nullptr;
  auto it = groups->groups.find(kind);
  return it == groups->groups.end() ? nullptr : it->second;
}

int SizeOf(GroupKind kind) {
  std::shared_ptr<const agent::Group> g = GroupOf(kind);
  return g == nullptr ? -1 : g->world_size();
}

int RankOf(GroupKind kind) {
  std::shared_ptr<const agent::Group> g = GroupOf(kind);
  return g == nullptr ? -1 : g->rank_in_group();
}

bool IsLast(GroupKind kind) {
  std::shared_ptr<const agent::Group> g = GroupOf(kind);
  return g != nullptr && g->rank_in_group() == g->world_size() - 1;
}

agent::Agent* AgentOrNull() {
  absl::MutexLock lock(&g_mu);
  return g_agent->get();
}

}  // namespace

agent::Agent* get_agent() { return AgentOrNull(); }

absl::Status init_distributed_environment(const agent::AgentOptions& options) {
  absl::MutexLock lock(&g_mu);
  if (*g_agent != nullptr) {
    return absl::FailedPreconditionError("the distributed environment is already initialized");
  }
  absl::StatusOr<std::unique_ptr<agent::Agent>> started = agent::Agent::Start(options);
  if (!started.ok()) return started.status();
  *g_agent = *std::move(started);
  return absl::OkStatus();
}

absl::Status initialize_model_parallel(const ModelParallelOptions& options) {
  agent::Agent* a = AgentOrNull();
  if (a == nullptr) {
    return absl::FailedPreconditionError(
        "initialize_model_parallel before init_distributed_environment");
  }
  ParallelConfig config = options.config;
  if (config.world_size <= 0) config.world_size = a->world_size();
  if (config.world_size <= 0) {
    return absl::InvalidArgumentError(
        "the pool has no world size yet: set config.world_size in initialize_model_parallel");
  }
  if (absl::StatusOr<Layout> layout = Layout::Build(config); !layout.ok()) {
    return layout.status();
  }
  v1::InitializeRequest request;
  request.set_pool(a->options().pool);
  *request.mutable_config() = ToProto(config);
  request.mutable_options()->set_backend(options.backend);
  request.mutable_options()->set_deadline_ms(absl::ToInt64Milliseconds(options.timeout));
  request.set_keep_pending_config(true);
  const absl::Time deadline = absl::Now() + options.timeout;
  int64_t generation = 0;
  while (true) {
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("initialize_model_parallel: the pool did not accept a config within ",
                       absl::FormatDuration(options.timeout)));
    }
    absl::StatusOr<v1::InitializeResponse> init = a->client().Initialize(request);
    if (init.ok()) {
      generation = init->generation();
      break;
    }
    if (init.status().code() != absl::StatusCode::kFailedPrecondition) return init.status();
    // Another rank was first, or the previous generation is still being torn down.
    absl::StatusOr<v1::PoolState> state = a->client().GetState(a->options().pool);
    if (!state.ok()) return state.status();
    if (state->phase() == v1::POOL_PHASE_DESTROYED || state->phase() == v1::POOL_PHASE_FAILED) {
      continue;  // the teardown finished between the two calls: Initialize is accepted now
    }
    if (state->phase() == v1::POOL_PHASE_DESTROYING) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return absl::DeadlineExceededError("the previous generation is still being destroyed");
      }
      absl::StatusOr<v1::PoolState> changed =
          a->client().WaitForStateChange(a->options().pool, state->version(), left);
      if (!changed.ok()) return changed.status();
      continue;
    }
    // The pool is being built (or was built): it must be with this very config.
    const v1::ParallelConfig theirs = ToProto(FromProto(state->config()));
    if (!google::protobuf::util::MessageDifferencer::Equals(theirs, request.config()) ||
        state->options().backend() != options.backend) {
      return absl::InvalidArgumentError(
          absl::StrCat("rank ", a->rank(), " asked for ", config.ShortString(), " on ",
                       options.backend, " but pool '", state->pool(), "' is being built with ",
                       FromProto(state->config()).ShortString(), " on ", state->options().backend(),
                       ": every rank must pass the same config"));
    }
    // A config waiting for members becomes the next generation.
    generation = state->generation() + (state->phase() == v1::POOL_PHASE_WAITING ? 1 : 0);
    break;
  }
  return a->WaitForReady(options.timeout, generation).status();
}

namespace {

absl::Status Destroy(v1::DestroyScope scope, absl::Duration timeout) {
  agent::Agent* a = AgentOrNull();
  if (a == nullptr) return absl::OkStatus();
  // Destroying is collective, as in the seed: no rank tears the pool's groups down while
  // another still uses them.
  const absl::Time deadline = absl::Now() + timeout;
  if (std::shared_ptr<const agent::Group> world = GroupOf(GroupKind::kWorld); world != nullptr) {
    if (absl::Status s = world->comm().Barrier(timeout); !s.ok()) return s;
    // Every rank has built (the barrier), but the slowest rank's READY report may still be on
    // its way to the coordinator. A destroy that got there first would find the generation
    // INITIALIZING and abort it, world included, while the other ranks were still inside the
    // barrier (seen in CI: "Barrier: aborted while in flight"). Wait for the pool to be READY.
    const int64_t built = a->Observe().ready_generation;
    while (true) {
      absl::StatusOr<v1::PoolState> state = a->client().GetState(a->options().pool);
      if (!state.ok()) return state.status();
      if (state->phase() != v1::POOL_PHASE_INITIALIZING || state->generation() != built) break;
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return absl::DeadlineExceededError(
            absl::StrCat("pool '", state->pool(), "' was still initializing generation ", built,
                         " after ", absl::FormatDuration(timeout), "; not destroying it"));
      }
      // At its timeout the wait ends with DEADLINE_EXCEEDED; the check above then names what
      // was waited for (as the destroy-all wait below does).
      absl::StatusOr<v1::PoolState> changed =
          a->client().WaitForStateChange(a->options().pool, state->version(), left);
      if (!changed.ok() && changed.status().code() != absl::StatusCode::kDeadlineExceeded) {
        return changed.status();
      }
    }
  }
  v1::DestroyRequest request;
  request.set_pool(a->options().pool);
  request.set_scope(scope);
  int64_t generation = 0;
  for (;;) {
    absl::StatusOr<v1::DestroyResponse> destroyed = a->client().Destroy(request);
    if (destroyed.ok()) {
      generation = destroyed->generation();
      break;
    }
    if (destroyed.status().code() != absl::StatusCode::kFailedPrecondition) {
      return destroyed.status();
    }
    absl::StatusOr<v1::PoolState> state = a->client().GetState(a->options().pool);
    if (!state.ok()) return state.status();
    if (scope != v1::DESTROY_SCOPE_ALL || state->phase() != v1::POOL_PHASE_DESTROYING) {
      // Another rank already asked (or nothing is left): wait for this rank's own teardown.
      // (A model-parallel destroy never asks again: another rank may already be building the
      // next config.)
      generation = state->generation();
      break;
    }
    // Destroy-all while a teardown is under way: another rank's destroy-all, or the previous
    // model-parallel destroy (this rank finished its part, the others' reports are still on their
    // way). That one would leave the world standing and every rank waiting for it: ask again once
    // it is over (then this starts the world's teardown, or hears that nothing is left).
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat("pool '", state->pool(),
                                                      "' was still tearing down after ",
                                                      absl::FormatDuration(timeout)));
    }
    absl::StatusOr<v1::PoolState> changed =
        a->client().WaitForStateChange(a->options().pool, state->version(), left);
    if (!changed.ok() && changed.status().code() != absl::StatusCode::kDeadlineExceeded) {
      return changed.status();
    }
  }
  std::shared_ptr<const agent::GroupMap> groups = a->groups();
  if (groups == nullptr && scope == v1::DESTROY_SCOPE_MODEL_PARALLEL) return absl::OkStatus();
  return a->WaitForTeardown(timeout, generation, scope == v1::DESTROY_SCOPE_ALL);
}

}  // namespace

absl::Status destroy_model_parallel(absl::Duration timeout) {
  return Destroy(v1::DESTROY_SCOPE_MODEL_PARALLEL, timeout);
}

absl::Status destroy_distributed_environment(absl::Duration timeout) {
  absl::Status s = Destroy(v1::DESTROY_SCOPE_ALL, timeout);
  std::unique_ptr<agent::Agent> agent;
  {
    absl::MutexLock lock(&g_mu);
    agent = std::move(*g_agent);
  }
  if (agent != nullptr) agent->Stop();
  return s;
}

bool model_parallel_is_initialized() {
  std::shared_ptr<const agent::GroupMap> groups = Groups();
  return groups != nullptr && groups->get(GroupKind::kDp) != nullptr &&
         groups->get(GroupKind::kCfg) != nullptr && groups->get(GroupKind::kSp) != nullptr &&
         groups->get(GroupKind::kPp) != nullptr && groups->get(GroupKind::kTp) != nullptr;
}

std::shared_ptr<const agent::Group> get_world_group() { return GroupOf(GroupKind::kWorld); }
std::shared_ptr<const agent::Group> get_dp_group() { return GroupOf(GroupKind::kDp); }
std::shared_ptr<const agent::Group> get_cfg_group() { return GroupOf(GroupKind::kCfg); }
std::shared_ptr<const agent::Group> get_pp_group() { return GroupOf(GroupKind::kPp); }
std::shared_ptr<const agent::Group> get_sp_group() { return GroupOf(GroupKind::kSp); }
std::shared_ptr<const agent::Group> get_ulysses_group() { return GroupOf(GroupKind::kUlysses); }
std::shared_ptr<const agent::Group> get_ring_group() { return GroupOf(GroupKind::kRing); }
std::shared_ptr<const agent::Group> get_tp_group() { return GroupOf(GroupKind::kTp); }
std::shared_ptr<const agent::Group> get_fs_group() { return GroupOf(GroupKind::kFs); }
std::shared_ptr<const agent::Group> get_ep_group() { return GroupOf(GroupKind::kEp); }
std::shared_ptr<const agent::Group> get_dit_group() { return GroupOf(GroupKind::kDit); }

int get_data_parallel_world_size() { return SizeOf(GroupKind::kDp); }
int get_data_parallel_rank() { return RankOf(GroupKind::kDp); }
int get_classifier_free_guidance_world_size() { return SizeOf(GroupKind::kCfg); }
int get_classifier_free_guidance_rank() { return RankOf(GroupKind::kCfg); }
int get_pipeline_parallel_world_size() { return SizeOf(GroupKind::kPp); }
int get_pipeline_parallel_rank() { return RankOf(GroupKind::kPp); }
int get_sequence_parallel_world_size() { return SizeOf(GroupKind::kSp); }
int get_sequence_parallel_rank() { return RankOf(GroupKind::kSp); }
int get_ulysses_parallel_world_size() { return SizeOf(GroupKind::kUlysses); }
int get_ulysses_parallel_rank() { return RankOf(GroupKind::kUlysses); }
int get_ring_parallel_world_size() { return SizeOf(GroupKind::kRing); }
int get_ring_parallel_rank() { return RankOf(GroupKind::kRing); }
int get_tensor_model_parallel_world_size() { return SizeOf(GroupKind::kTp); }
int get_tensor_model_parallel_rank() { return RankOf(GroupKind::kTp); }
int get_fully_shard_world_size() { return SizeOf(GroupKind::kFs); }
int get_fully_shard_rank() { return RankOf(GroupKind::kFs); }

int get_dit_world_size() {
  if (!model_parallel_is_initialized()) return -1;
  return SizeOf(GroupKind::kDp) * SizeOf(GroupKind::kCfg) * SizeOf(GroupKind::kSp) *
         SizeOf(GroupKind::kPp) * SizeOf(GroupKind::kTp);
}

bool is_pipeline_first_stage() { return RankOf(GroupKind::kPp) == 0; }
bool is_pipeline_last_stage() { return IsLast(GroupKind::kPp); }
bool is_dp_last_group() {
  return IsLast(GroupKind::kSp) && IsLast(GroupKind::kCfg) && IsLast(GroupKind::kPp);
}

}  // namespace cohort
