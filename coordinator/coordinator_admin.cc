// Coordinator: the admin commands that change a pool — Initialize, Destroy and DeletePool.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/layout_proto.h"
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_internal.h"
#include "spdlog/spdlog.h"

namespace cohort::coordinator {

using internal::BackendOf;
using internal::IsKnownBackend;
using internal::PoolName;

// ---- Admin ----------------------------------------------------------------------------------

absl::StatusOr<v1::InitializeResponse> Coordinator::Initialize(const v1::InitializeRequest& request,
                                                               const Caller& caller) {
  const std::string pool = PoolName(request.pool());
  if (absl::Status s = Authorize(caller, Action::kInitialize, pool); !s.ok()) return s;
  absl::StatusOr<v1::InitializeResponse> result = InitializeAuthorized(request);
  AuditOutcome(caller, Action::kInitialize, pool, result.status());
  return result;
}

absl::StatusOr<v1::DestroyResponse> Coordinator::Destroy(const v1::DestroyRequest& request,
                                                         const Caller& caller) {
  const std::string pool = PoolName(request.pool());
  if (absl::Status s = Authorize(caller, Action::kDestroy, pool); !s.ok()) return s;
  absl::StatusOr<v1::DestroyResponse> result = DestroyAuthorized(request);
  AuditOutcome(caller, Action::kDestroy, pool, result.status());
  return result;
}

absl::Status Coordinator::DeletePool(const std::string& name, bool force, const Caller& caller) {
  const std::string pool = PoolName(name);
  if (absl::Status s = Authorize(caller, Action::kDeletePool, pool); !s.ok()) return s;
  absl::Status result = DeletePoolAuthorized(name, force);
  AuditOutcome(caller, Action::kDeletePool, pool, result);
  return result;
}

absl::StatusOr<v1::InitializeResponse> Coordinator::InitializeAuthorized(
    const v1::InitializeRequest& request) {
  const ParallelConfig config = FromProto(request.config());
  const Limits& limits = options_.limits;
  if (config.world_size > limits.max_world_size) {
    return Refuse("max-world-size",
                  LimitExceeded(absl::StrCat("world_size ", config.world_size,
                                             " is larger than this coordinator allows"),
                                limits.max_world_size, "max-world-size"));
  }
  const v1::InitOptions& init = request.options();
  if (!v1::InitMode_IsValid(init.init_mode())) {
    return Refuse("enum", absl::InvalidArgumentError(
                              absl::StrCat("unknown init_mode ", init.init_mode(),
                                           "; use INIT_MODE_SPLIT or INIT_MODE_PER_GROUP_ID")));
  }
  if (init.deadline_ms() < 0 || init.deadline_ms() > absl::ToInt64Milliseconds(limits.max_wait)) {
    return Refuse(
        "max-wait",
        absl::InvalidArgumentError(absl::StrCat(
            "deadline_ms ", init.deadline_ms(), " is outside [0, ",
            absl::ToInt64Milliseconds(limits.max_wait),
            "] (0: the coordinator's default; upper limit: coordinator flag --max-wait)")));
  }
  absl::StatusOr<Layout> layout = Layout::Build(config);
  if (!layout.ok()) return layout.status();
  const std::string backend = BackendOf(request.options());
  if (!IsKnownBackend(backend)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown backend '", Printable(backend, 32), "'; use gloo, nccl or none"));
  }
  Completions done;
  v1::InitializeResponse response;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Pool*> found = FindOrCreatePool(PoolName(request.pool()), /*create=*/true);
    if (!found.ok()) return found.status();
    Pool& pool = **found;
    if (pool.phases.phase() == v1::POOL_PHASE_INITIALIZING ||
        pool.phases.phase() == v1::POOL_PHASE_READY ||
        pool.phases.phase() == v1::POOL_PHASE_DESTROYING ||
        pool.phases.phase() == v1::POOL_PHASE_RECOVERING) {
      return absl::FailedPreconditionError(absl::StrCat(
          "pool '", pool.name, "' is ", v1::PoolPhase_Name(pool.phases.phase()), " at generation ",
          pool.generation, "; destroy it first (cohortctl destroy)"));
    }
    if (request.keep_pending_config() && pool.phases.phase() == v1::POOL_PHASE_WAITING &&
        pool.config.has_value()) {
      return absl::FailedPreconditionError(
          absl::StrCat("pool '", pool.name,
                       "' already has a config waiting for members: ", pool.config->ShortString()));
    }
    for (const auto& [identity, m] : pool.roster.members()) {
      if (m.rank < 0 || m.rank >= layout->world_size() || m.join.backends().empty()) continue;
      const auto& b = m.join.backends();
      if (std::find(b.begin(), b.end(), backend) == b.end()) {
        return absl::InvalidArgumentError(absl::StrCat("rank ", m.rank, " (", identity,
                                                       ") cannot drive backend '", backend,
                                                       "'; it offers ", absl::StrJoin(b, ", ")));
      }
    }
    if (pool.world_size != layout->world_size()) pool.world.Drop();
    // An operator's config replaces whatever elastic dp was doing.
    pool.elastic.Reset();
    CancelTimer(pool.elastic_timer);
    // Nor does it wait for losses to settle: it starts as soon as every rank is attached.
    CancelTimer(pool.settle_timer);
    pool.config = config;
    pool.layout = *std::move(layout);
    pool.world_size = pool.layout->world_size();
    pool.options = request.options();
    if (pool.options.backend().empty()) pool.options.set_backend(backend);
    SetPhase(pool, v1::POOL_PHASE_WAITING);
    pool.error.clear();
    // Ranks outside the new world become standbys; standbys fill ranks inside it.
    for (auto& [identity, m] : pool.roster.members()) {
      if (m.rank >= pool.world_size) {
        pool.roster.SetRank(m, -1);
        m.phase = v1::MEMBER_PHASE_STANDBY;
        pool.roster.ForgetRank(identity);
      }
    }
    PromoteStandbys(pool, "standby promoted");
    MarkStateChanged();
    spdlog::info("pool {}: initialize {} ({})", pool.name, pool.config->ShortString(), backend);
    Emit(pool, v1::EVENT_KIND_CONFIGURED, -1, "",
         absl::StrCat(pool.config->ShortString(), " on ", backend));
    response.set_generation(pool.generation + 1);
    Touch(pool, done);
    MaybeStart(pool, done);
    response.set_started(pool.phases.phase() == v1::POOL_PHASE_INITIALIZING);
  }
  Finish(done, Durability::kDurable);
  return response;
}

absl::StatusOr<v1::DestroyResponse> Coordinator::DestroyAuthorized(
    const v1::DestroyRequest& request) {
  if (!v1::DestroyScope_IsValid(request.scope())) {
    return Refuse("enum", absl::InvalidArgumentError(absl::StrCat(
                              "unknown destroy scope ", request.scope(),
                              "; use DESTROY_SCOPE_MODEL_PARALLEL or DESTROY_SCOPE_ALL")));
  }
  Completions done;
  v1::DestroyResponse response;
  {
    absl::MutexLock lock(&mu_);
    Pool* pool = FindPool(PoolName(request.pool()));
    if (pool == nullptr) {
      return absl::NotFoundError(absl::StrCat("unknown pool '", PoolName(request.pool()), "'"));
    }
    const bool has_groups = pool->phases.phase() == v1::POOL_PHASE_INITIALIZING ||
                            pool->phases.phase() == v1::POOL_PHASE_READY ||
                            pool->phases.phase() == v1::POOL_PHASE_FAILED ||
                            pool->phases.phase() == v1::POOL_PHASE_DEGRADED;
    const bool world_only =
        !has_groups && pool->world.alive() && request.scope() == v1::DESTROY_SCOPE_ALL;
    if (!has_groups && !world_only) {
      return absl::FailedPreconditionError(
          absl::StrCat("pool '", pool->name, "' has no communicators to destroy (it is ",
                       v1::PoolPhase_Name(pool->phases.phase()), ")"));
    }
    const int64_t generation = world_only ? pool->world.generation() : pool->generation;
    pool->teardown.Start(request.scope(), pool->phases.phase() == v1::POOL_PHASE_READY);
    const bool abort = pool->phases.phase() != v1::POOL_PHASE_READY && !world_only;
    CancelTimer(pool->deadline_timer);
    CancelTimer(pool->settle_timer);  // no generation starts after a destroy
    SetPhase(*pool, v1::POOL_PHASE_DESTROYING);
    for (auto& [identity, m] : pool->roster.members()) {
      m.teardown_reported = false;
      if (m.rank < 0 || m.sink == nullptr) continue;
      v1::CoordinatorMessage message;
      v1::Teardown* teardown = message.mutable_teardown();
      teardown->set_generation(generation);
      teardown->set_scope(request.scope());
      teardown->set_abort(abort);
      teardown->set_reason(pool->teardown.reason());
      m.sink->Send(message);
    }
    const std::string name = pool->name;
    const int64_t current = pool->generation;
    pool->teardown_timer = Schedule(clock_->Now() + options_.teardown_deadline,
                                    [this, name, current] { OnTeardownDeadline(name, current); });
    response.set_generation(generation);
    Emit(*pool, v1::EVENT_KIND_DESTROY, -1, "",
         absl::StrCat(
             "destroy ",
             request.scope() == v1::DESTROY_SCOPE_ALL ? "everything" : "model-parallel groups",
             abort ? " (abort)" : ""));
    Touch(*pool, done);
    FinishTeardownIfDone(*pool, /*force=*/false, done);
  }
  Finish(done, Durability::kDurable);
  return response;
}

// ---- Pool deletion ---------------------------------------------------------------------------

absl::Status Coordinator::DeletePoolAuthorized(const std::string& name, bool force) {
  Completions done;
  {
    absl::MutexLock lock(&mu_);
    const std::string pool_name = PoolName(name);
    Pool* pool = FindPool(pool_name);
    if (pool == nullptr) {
      return absl::NotFoundError(absl::StrCat("unknown pool '", Printable(pool_name, 64), "'"));
    }
    int attached = 0;
    for (const auto& [identity, m] : pool->roster.members()) attached += m.sink != nullptr;
    if (attached > 0 && !force) {
      return absl::FailedPreconditionError(absl::StrCat(
          "pool '", pool_name, "' has ", attached,
          " attached members; stop them first, or delete with --force (their sessions are "
          "closed and their communicators left to them)"));
    }
    spdlog::warn("pool {}: deleted{}", pool_name,
                 attached > 0 ? absl::StrCat(" (force: closing ", attached, " sessions)") : "");
    for (auto& [identity, m] : pool->roster.members()) {
      if (m.sink != nullptr)
        m.sink->Close(absl::AbortedError(absl::StrCat("pool '", pool_name, "' was deleted")));
      m.sink = nullptr;
      sessions_.Close(m.session_id);
    }
    CancelTimer(pool->deadline_timer);
    CancelTimer(pool->teardown_timer);
    CancelTimer(pool->recovery_timer);
    CancelTimer(pool->elastic_timer);
    CancelTimer(pool->settle_timer);
    for (auto& fn :
         pool->kv.Reset(absl::AbortedError(absl::StrCat("pool '", pool_name, "' was deleted")))) {
      done.push_back(std::move(fn));
    }
    const absl::Status gone =
        absl::NotFoundError(absl::StrCat("pool '", pool_name, "' was deleted"));
    for (StateWaiters::Waiter& waiter : pool->state_waiters.TakeAll()) {
      CancelTimer(waiter.timer);
      done.push_back([fn = std::move(waiter.done), gone] { fn(gone); });
    }
    // A PHASE event first: health (cohort.pool.<name>) stops serving the pool.
    if (pool->phases.phase() != v1::POOL_PHASE_DESTROYED) SetPhase(*pool, v1::POOL_PHASE_DESTROYED);
    Emit(*pool, v1::EVENT_KIND_DESTROYED, -1, "", "pool deleted");
    events_.Forget(pool_name);
    pools_.erase(pool_name);
    MarkStateChanged();
  }
  Finish(done, Durability::kDurable);
  return absl::OkStatus();
}

}  // namespace cohort::coordinator
