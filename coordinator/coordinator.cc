// Coordinator: construction and shutdown, timers, pool lookup and creation, version bumps (which
// wake state waiters), authorization and refusals, and the rendezvous store.
#include "coordinator/coordinator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "coordinator/agent_input.h"
#include "coordinator/audit.h"
#include "coordinator/coordinator_internal.h"
#include "coordinator/store_access.h"
#include "spdlog/spdlog.h"

namespace cohort::coordinator {
namespace {

using internal::PoolName;

}  // namespace

void RunAll(std::vector<std::function<void()>>& completions) {
  for (auto& fn : completions) {
    if (fn) fn();
  }
  completions.clear();
}

namespace {

std::unique_ptr<StateStore> FileStoreFor(const CoordinatorOptions& options) {
  if (options.state_file.empty()) return nullptr;
  return std::make_unique<FileStateStore>(options.state_file);
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options, Clock* clock, TimerQueue* timers)
    : Coordinator(options, clock, timers, FileStoreFor(options)) {}

Coordinator::Coordinator(CoordinatorOptions options, Clock* clock, TimerQueue* timers,
                         std::unique_ptr<StateStore> store)
    : options_(std::move(options)),
      authorizer_(options_.authorizer != nullptr ? options_.authorizer
                                                 : std::make_shared<AllowAll>()),
      clock_(clock),
      timers_(timers),
      store_(std::move(store)),
      heartbeats_(options_.heartbeat_interval, options_.heartbeat_misses),
      events_(options_.event_log_size, options_.limits.max_event_log_bytes) {
  absl::MutexLock lock(&mu_);
  for (const auto& startup : options_.pools) {
    // "" names the default pool, as in every request (fuzzing finding F1).
    Pool& pool = GetOrCreatePool(PoolName(startup.name));
    pool.config = startup.config;
    pool.options = startup.options;
    absl::StatusOr<Layout> layout = Layout::Build(startup.config);
    if (layout.ok()) {
      pool.layout = *std::move(layout);
      pool.world_size = pool.layout->world_size();
    } else {
      // main() validates startup pools; a bad one here stays unconfigured and says why.
      pool.config.reset();
      pool.error = std::string(layout.status().message());
    }
  }
  LoadState();
  ScheduleSweep();
}

Coordinator::~Coordinator() {
  FlushState();
  absl::MutexLock lock(&mu_);
  shutting_down_ = true;
  CancelTimer(sweep_timer_);
  for (auto& [name, pool] : pools_) {
    CancelTimer(pool.deadline_timer);
    CancelTimer(pool.teardown_timer);
    CancelTimer(pool.recovery_timer);
    CancelTimer(pool.elastic_timer);
    CancelTimer(pool.settle_timer);
    for (TimerQueue::TimerId timer : pool.state_waiters.timers()) CancelTimer(timer);
  }
}

TimerQueue::TimerId Coordinator::Schedule(absl::Time when, std::function<void()> fn) {
  // The queue may outlive this coordinator (tests share one; a server stops its queue before
  // destroying the coordinator): a timer that fires after the coordinator is gone does nothing.
  // Nor does one that fires once the coordinator is stopping (BeginShutdown): no loss, stall or
  // deadline is declared by a coordinator that is going away.
  return timers_->Schedule(when, [this, alive = std::weak_ptr<int>(alive_), fn = std::move(fn)] {
    if (alive.lock() != nullptr && !stopping_flag_.load()) fn();
  });
}

void Coordinator::CancelTimer(TimerQueue::TimerId& id) {
  if (id != 0) timers_->Cancel(id);
  id = 0;
}

void Coordinator::ScheduleSweep() {
  const absl::Time due = clock_->Now() + options_.heartbeat_interval;
  sweep_timer_ = Schedule(due, [this, due] {
    Sweep(due);
    absl::MutexLock lock(&mu_);
    if (!shutting_down_) ScheduleSweep();
  });
}

Coordinator::Pool* Coordinator::FindPool(const std::string& name) {
  auto it = pools_.find(name);
  return it == pools_.end() ? nullptr : &it->second;
}

Coordinator::Pool& Coordinator::GetOrCreatePool(const std::string& name) {
  auto [it, created] = pools_.try_emplace(name);
  Pool& pool = it->second;
  if (created) {
    pool.name = name;
    pool.kv = KvStore(options_.limits.max_store_keys, options_.limits.max_store_bytes);
  }
  return pool;
}

Member* Coordinator::FindMemberBySession(const std::string& session_id, Pool** pool_out) {
  const SessionTable::Owner* owner = sessions_.Find(session_id);
  if (owner == nullptr) return nullptr;
  Pool* pool = FindPool(owner->pool);
  if (pool == nullptr) return nullptr;
  auto m = pool->roster.members().find(owner->identity);
  if (m == pool->roster.members().end() || m->second.session_id != session_id) return nullptr;
  if (pool_out != nullptr) *pool_out = pool;
  return &m->second;
}

void Coordinator::Touch(Pool& pool, Completions& out) {
  ++pool.version;
  std::vector<StateWaiters::Done> due;
  for (StateWaiters::Waiter& waiter : pool.state_waiters.Release(pool.version)) {
    CancelTimer(waiter.timer);
    due.push_back(std::move(waiter.done));
  }
  if (due.empty()) return;
  // One snapshot for all of them, built after this change's lock is released (it shows this
  // version or a later one), never one per waiter under the lock.
  out.push_back([this, name = pool.name, due = std::move(due)]() {
    const absl::StatusOr<v1::PoolState> state = GetState(name);
    for (const auto& done : due) done(state);
  });
}

// ---- Authorization, refusals and pool creation ----------------------------------------------

absl::Status Coordinator::Authorize(const Caller& caller, Action action,
                                    const std::string& pool) const {
  absl::Status allowed = authorizer_->Authorize(caller, action, pool);
  if (allowed.ok()) return allowed;
  return Denied(caller, action, pool, std::move(allowed));
}

namespace {

// Who the audit line names: the principal (its subject: "agents/agent-3" for a certificate
// pattern ending in '*'), else the transport's peer, else the caller's name.
std::string AuditWho(const Caller& caller, const Principal& principal) {
  if (principal.matched()) return principal.subject.empty() ? principal.name : principal.subject;
  return Printable(caller.peer.empty() ? caller.identity : caller.peer, 253);
}

}  // namespace

absl::Status Coordinator::Denied(const Caller& caller, Action action, const std::string& pool,
                                 absl::Status status) const {
  const Principal principal = authorizer_->Identify(caller);
  spdlog::warn("refused {} on pool '{}' to {}{}: {}", ActionName(action), Printable(pool, 64),
               Printable(caller.identity, 253), caller.authenticated ? "" : " (unauthenticated)",
               std::string(status.message()));
  AuditLog()->info(AuditLine(AuditWho(caller, principal),
                             principal.matched() ? principal.role : "none", ActionTitle(action),
                             Printable(pool, 64), absl::StatusCodeToString(status.code())));
  {
    absl::MutexLock lock(&refusals_mu_);
    ++denials_[DenialKey{std::string(ActionName(action)), std::string(RoleNeeded(action)),
                         absl::StatusCodeToString(status.code())}];
  }
  return Refuse("authorization", std::move(status));
}

void Coordinator::AuditOutcome(const Caller& caller, Action action, const std::string& pool,
                               const absl::Status& result) const {
  const Principal principal = authorizer_->Identify(caller);
  AuditLog()->info(AuditLine(AuditWho(caller, principal),
                             principal.matched() ? principal.role : "none", ActionTitle(action),
                             Printable(pool, 64), absl::StatusCodeToString(result.code())));
}

std::map<Coordinator::DenialKey, int64_t> Coordinator::AccessDenials() const {
  absl::MutexLock lock(&refusals_mu_);
  return denials_;
}

absl::Status Coordinator::Refuse(const std::string& check, absl::Status status) const {
  absl::MutexLock lock(&refusals_mu_);
  ++refusals_[check];
  return status;
}

std::map<std::string, int64_t> Coordinator::RefusalCounts() const {
  absl::MutexLock lock(&refusals_mu_);
  return refusals_;
}

absl::StatusOr<Coordinator::Pool*> Coordinator::FindOrCreatePool(const std::string& name,
                                                                 bool create) {
  if (Pool* pool = FindPool(name); pool != nullptr) return pool;
  if (absl::Status s = CheckName("pool name", name, options_.limits.max_pool_name_length,
                                 "max-pool-name-length");
      !s.ok()) {
    return Refuse("pool-name", s);
  }
  if (!create) {
    std::vector<std::string> names;
    for (const auto& [n, p] : pools_) {
      if (names.size() == 20) {
        names.push_back(absl::StrCat("and ", pools_.size() - 20, " more"));
        break;
      }
      names.push_back(n);
    }
    return absl::NotFoundError(absl::StrCat(
        "pool '", name, "' does not exist on this coordinator (pools: ",
        names.empty() ? "none" : absl::StrJoin(names, ", "),
        "); create it with cohortctl init, or start the coordinator with --auto-create-pools"));
  }
  if (static_cast<int>(pools_.size()) >= options_.limits.max_pools) {
    return Refuse("max-pools",
                  LimitExceeded(absl::StrCat("cannot create pool '", name, "': ", pools_.size(),
                                             " pools exist (delete one: cohortctl delete pool)"),
                                options_.limits.max_pools, "max-pools"));
  }
  return &GetOrCreatePool(name);
}

// ---- Rendezvous store -----------------------------------------------------------------------

absl::Status Coordinator::CheckKvGeneration(const Pool& pool, int64_t generation) const {
  if (generation != pool.generation) {
    return absl::AbortedError(absl::StrCat("generation ", generation, " is stale; pool '",
                                           pool.name, "' is at generation ", pool.generation));
  }
  // The store serves a generation while it is being built (and once READY); a failed, degraded
  // or destroyed generation answers ABORTED at once, so nobody waits for a peer that is gone. The
  // reason is the one the members' abort carries: a destroy's while DESTROYING (the pool's error
  // then is an older failure), else the failure that ended the generation.
  const v1::PoolPhase phase = pool.phases.phase();
  if (phase != v1::POOL_PHASE_INITIALIZING && phase != v1::POOL_PHASE_READY) {
    const std::string& why =
        phase == v1::POOL_PHASE_DESTROYING ? pool.teardown.reason() : pool.error;
    return absl::AbortedError(absl::StrCat("generation ", generation, " of pool '", pool.name,
                                           "' is over (", v1::PoolPhase_Name(phase), ")",
                                           why.empty() ? "" : ": ", why));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Coordinator::StoreRulesApply(const Caller& caller,
                                                  const std::string& session_id) const {
  if (!session_id.empty()) return true;
  if (caller.in_process || !authorizer_->RequiresStoreSession()) return false;
  return absl::UnauthenticatedError(
      "Store needs the caller's session: set session_id in KvSetRequest / KvGetRequest to the "
      "session_id Join returned (agents older than this coordinator do not send it)");
}

absl::Status Coordinator::CheckStoreAccess(const Pool& pool, const Caller& caller,
                                           const std::string& session_id,
                                           const std::vector<std::string>& keys, bool write) const {
  const SessionTable::Owner* owner = sessions_.Find(session_id);
  if (owner == nullptr) {
    return absl::UnauthenticatedError(
        "Store: the request's session_id names no live session; join again and use the new "
        "session id");
  }
  if (owner->pool != pool.name) {
    return absl::PermissionDeniedError(absl::StrCat("Store: the session belongs to pool '",
                                                    owner->pool, "', not '", pool.name, "'"));
  }
  if (!caller.in_process && owner->principal != authorizer_->Identify(caller).subject) {
    return absl::PermissionDeniedError(
        "Store: the session was opened with another credential; use the session this caller's "
        "own Join returned");
  }
  auto m = pool.roster.members().find(owner->identity);
  if (m == pool.roster.members().end() || m->second.session_id != session_id) {
    return absl::UnauthenticatedError(
        "Store: the session was superseded; use the session id of the latest Join");
  }
  const Member& member = m->second;
  if (member.rank < 0 || !pool.layout.has_value() || member.rank >= pool.layout->world_size()) {
    return absl::PermissionDeniedError(
        absl::StrCat("Store: '", owner->identity, "' holds no rank of generation ", pool.generation,
                     " of pool '", pool.name, "' (a standby has no keys)"));
  }
  return CheckStoreKeys(*pool.layout, member.rank, keys, write);
}

absl::Status Coordinator::KvSet(const v1::KvSetRequest& request, const Caller& caller) {
  if (absl::Status s = Authorize(caller, Action::kStore, PoolName(request.pool())); !s.ok()) {
    return s;
  }
  absl::StatusOr<bool> rules = StoreRulesApply(caller, request.session_id());
  if (!rules.ok()) return Denied(caller, Action::kStore, PoolName(request.pool()), rules.status());
  if (absl::Status s =
          CheckKeys(request.entries_size(),
                    [&](int i) -> const std::string& { return request.entries(i).key(); });
      !s.ok()) {
    return Refuse("store-request", s);
  }
  Completions done;
  {
    absl::MutexLock lock(&mu_);
    Pool* pool = FindPool(PoolName(request.pool()));
    if (pool == nullptr) {
      return absl::NotFoundError(absl::StrCat("unknown pool '", request.pool(), "'"));
    }
    if (absl::Status s = CheckKvGeneration(*pool, request.generation()); !s.ok()) return s;
    if (*rules) {
      std::vector<std::string> keys;
      for (const v1::KvEntry& e : request.entries()) keys.push_back(e.key());
      if (absl::Status s = CheckStoreAccess(*pool, caller, request.session_id(), keys, true);
          !s.ok()) {
        if (s.code() == absl::StatusCode::kInvalidArgument) return Refuse("store-key", s);
        return Denied(caller, Action::kStore, pool->name, s);
      }
    }
    std::vector<std::pair<std::string, std::string>> entries;
    for (const v1::KvEntry& e : request.entries()) entries.emplace_back(e.key(), e.value());
    absl::StatusOr<std::vector<KvStore::Completion>> set =
        pool->kv.Set(entries, request.set_once());
    if (!set.ok()) {
      if (set.status().code() == absl::StatusCode::kResourceExhausted) {
        return Refuse("max-store", set.status());
      }
      return set.status();
    }
    for (auto& fn : *set) done.push_back(std::move(fn));
  }
  Finish(done);
  return absl::OkStatus();
}

Coordinator::Cancel Coordinator::KvGet(const v1::KvGetRequest& request,
                                       std::function<void(absl::StatusOr<v1::KvGetResponse>)> reply,
                                       const Caller& caller) {
  if (absl::Status s = Authorize(caller, Action::kStore, PoolName(request.pool())); !s.ok()) {
    reply(s);
    return nullptr;
  }
  absl::StatusOr<bool> rules = StoreRulesApply(caller, request.session_id());
  if (!rules.ok()) {
    reply(Denied(caller, Action::kStore, PoolName(request.pool()), rules.status()));
    return nullptr;
  }
  absl::Status refused =
      CheckKeys(request.keys_size(), [&](int i) -> const std::string& { return request.keys(i); });
  if (refused.ok() && request.timeout_ms() > absl::ToInt64Milliseconds(options_.limits.max_wait)) {
    refused = absl::InvalidArgumentError(absl::StrCat(
        "timeout_ms ", request.timeout_ms(), " is longer than the longest wait allowed (",
        absl::ToInt64Milliseconds(options_.limits.max_wait),
        " ms: coordinator flag --max-wait-ms)"));
  }
  if (!refused.ok()) {
    reply(Refuse("store-request", refused));
    return nullptr;
  }
  std::function<void()> now;
  Cancel cancel;
  {
    absl::MutexLock lock(&mu_);
    Pool* pool = FindPool(PoolName(request.pool()));
    if (stopping_) {
      refused = absl::UnavailableError(kCoordinatorRestarting);
    } else if (pool == nullptr) {
      refused = absl::NotFoundError(
          absl::StrCat("unknown pool '", Printable(PoolName(request.pool()), 64), "'"));
    } else {
      refused = CheckKvGeneration(*pool, request.generation());
      if (refused.ok() && *rules) {
        refused = CheckStoreAccess(*pool, caller, request.session_id(),
                                   {request.keys().begin(), request.keys().end()}, false);
        if (refused.code() == absl::StatusCode::kInvalidArgument) {
          refused = Refuse("store-key", refused);
        } else if (!refused.ok()) {
          refused = Denied(caller, Action::kStore, pool->name, refused);
        }
      }
    }
    if (refused.ok() && static_cast<int>(pool->kv.waiters()) >= options_.limits.max_kv_waiters) {
      refused = Refuse("max-kv-waiters",
                       LimitExceeded(absl::StrCat("pool '", pool->name, "' has ",
                                                  pool->kv.waiters(), " store gets waiting"),
                                     options_.limits.max_kv_waiters, "max-kv-waiters"));
    }
    if (!refused.ok()) {
      now = [reply, refused] { reply(refused); };
    } else {
      std::vector<std::string> keys(request.keys().begin(), request.keys().end());
      auto callback = [reply, keys](absl::StatusOr<KvStore::Values> values) {
        if (!values.ok()) {
          reply(values.status());
          return;
        }
        v1::KvGetResponse response;
        for (size_t i = 0; i < keys.size(); ++i) {
          v1::KvEntry* e = response.add_entries();
          e->set_key(keys[i]);
          e->set_value((*values)[i]);
        }
        reply(response);
      };
      KvStore::GetResult result = pool->kv.Get(keys, std::move(callback));
      if (result.waiter_id == 0) {
        now = std::move(result.immediate);
      } else if (request.timeout_ms() <= 0) {
        now = pool->kv.Expire(result.waiter_id);
      } else {
        const std::string name = pool->name;
        const uint64_t id = result.waiter_id;
        const TimerQueue::TimerId timer =
            Schedule(clock_->Now() + absl::Milliseconds(request.timeout_ms()), [this, name, id] {
              KvStore::Completion fn;
              {
                absl::MutexLock lock(&mu_);
                Pool* p = FindPool(name);
                if (p != nullptr) fn = p->kv.Expire(id);
              }
              if (fn) fn();
            });
        cancel = [this, name, id, timer] {
          absl::MutexLock lock(&mu_);
          TimerQueue::TimerId t = timer;
          CancelTimer(t);
          if (Pool* p = FindPool(name); p != nullptr) p->kv.Cancel(id);
        };
      }
    }
  }
  if (now) now();
  return cancel;
}

// ---- Attach timers --------------------------------------------------------------------------

TimerQueue::TimerId Coordinator::AfterAttachTimeout(std::function<void()> fn) {
  return Schedule(clock_->Now() + options_.attach_timeout, std::move(fn));
}

void Coordinator::CancelAttachTimer(TimerQueue::TimerId id) { CancelTimer(id); }

}  // namespace cohort::coordinator
