// Coordinator: events, watchers, phases and the inspection queries (GetState, ListPools,
// GetEvents, WaitForState, Check, snapshots).
#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/layout_proto.h"
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_internal.h"
#include "spdlog/spdlog.h"

namespace cohort::coordinator {

using internal::PoolName;

void Coordinator::Emit(Pool& pool, v1::EventKind kind, int rank, const std::string& identity,
                       const std::string& message) {
  v1::Event e;
  e.set_unix_ms(absl::ToUnixMillis(clock_->Now()));
  e.set_pool(pool.name);
  e.set_generation(pool.generation);
  e.set_kind(kind);
  e.set_rank(rank);
  // Nothing from the wire reaches a watcher's terminal raw, and no event is large.
  e.set_identity(Printable(identity, options_.limits.max_identity_length));
  e.set_message(Printable(message, kMaxEventMessage));
  if (kind == v1::EVENT_KIND_PHASE) e.set_phase(pool.phases.phase());
  events_.Record(std::move(e));
}

void Coordinator::SetPhase(Pool& pool, v1::PoolPhase phase, const std::string& reason) {
  if (!pool.phases.Set(phase, clock_->Now(), pool.generation, reason)) return;
  Emit(pool, v1::EVENT_KIND_PHASE, -1, "",
       reason.empty() ? v1::PoolPhase_Name(phase)
                      : absl::StrCat(v1::PoolPhase_Name(phase), " (", reason, ")"));
}

void Coordinator::AddEventListener(std::function<void(const v1::Event&)> listener) {
  absl::MutexLock lock(&mu_);
  events_.AddListener(std::move(listener));
}

absl::StatusOr<uint64_t> Coordinator::AddWatcher(const std::string& pool_name, bool snapshot,
                                                 WatchSink* sink, const Caller& caller) {
  if (absl::Status s = Authorize(caller, Action::kRead, pool_name); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError(kCoordinatorRestarting);
  if (!pool_name.empty() && FindPool(pool_name) == nullptr) {
    return absl::NotFoundError(absl::StrCat("unknown pool '", Printable(pool_name, 64), "'"));
  }
  if (static_cast<int>(events_.watchers()) >= options_.limits.max_watchers) {
    return Refuse("max-watchers",
                  LimitExceeded(absl::StrCat(events_.watchers(), " watchers are streaming"),
                                options_.limits.max_watchers, "max-watchers"));
  }
  // A watcher of every pool sees only the pools it may read.
  EventLog::PoolFilter may_see;
  if (pool_name.empty() && !caller.in_process) {
    may_see = [authorizer = authorizer_, caller](const std::string& pool) {
      return authorizer->Authorize(caller, Action::kRead, pool).ok();
    };
  }
  if (snapshot) {
    for (const auto& [name, pool] : pools_) {
      if (!pool_name.empty() && name != pool_name) continue;
      if (may_see && !may_see(name)) continue;
      v1::WatchEvent w;
      *w.mutable_snapshot() = Snapshot(pool);
      sink->Send(w);
    }
  }
  return events_.AddWatcher(pool_name, sink, std::move(may_see));
}

void Coordinator::RemoveWatcher(uint64_t id) {
  absl::MutexLock lock(&mu_);
  events_.RemoveWatcher(id);
}

absl::StatusOr<std::vector<v1::PoolSummary>> Coordinator::ListPools(const Caller& caller) {
  // A caller who may read no pool at all (no credential, or not a reader) is refused; one
  // limited to some pools sees those (not a refusal: the list is just shorter).
  if (absl::Status s = Authorize(caller, Action::kRead, ""); !s.ok()) return s;
  std::vector<v1::PoolSummary> out = ListAllPools();
  out.erase(std::remove_if(out.begin(), out.end(),
                           [&](const v1::PoolSummary& s) {
                             return !authorizer_->Authorize(caller, Action::kRead, s.pool()).ok();
                           }),
            out.end());
  return out;
}

std::vector<v1::PoolSummary> Coordinator::ListAllPools() {
  absl::MutexLock lock(&mu_);
  std::vector<v1::PoolSummary> out;
  for (const auto& [name, pool] : pools_) {
    v1::PoolSummary s;
    s.set_pool(name);
    s.set_phase(pool.phases.phase());
    s.set_generation(pool.generation);
    s.set_world_size(pool.world_size);
    s.set_members(static_cast<int>(pool.roster.members().size()));
    int ready = 0;
    for (const auto& [identity, m] : pool.roster.members()) {
      if (m.rank >= 0 && m.phase == v1::MEMBER_PHASE_READY) ++ready;
    }
    s.set_members_ready(ready);
    s.set_error(pool.error);
    if (pool.config.has_value()) *s.mutable_config() = ToProto(*pool.config);
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<std::vector<v1::Event>> Coordinator::GetEvents(const std::string& pool_name,
                                                              int64_t after_seq, int limit,
                                                              const Caller& caller) {
  if (absl::Status s = Authorize(caller, Action::kRead, PoolName(pool_name)); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  Pool* pool = FindPool(PoolName(pool_name));
  if (pool == nullptr) {
    return absl::NotFoundError(absl::StrCat("unknown pool '", PoolName(pool_name), "'"));
  }
  return events_.Since(pool->name, after_seq, limit);
}

std::vector<v1::PoolState> Coordinator::AllStates() {
  absl::MutexLock lock(&mu_);
  std::vector<v1::PoolState> out;
  for (const auto& [name, pool] : pools_) out.push_back(Snapshot(pool));
  return out;
}

absl::StatusOr<v1::PoolState> Coordinator::GetState(const std::string& pool_name,
                                                    std::optional<int> rank,
                                                    std::optional<GroupKind> kind,
                                                    const Caller& caller) {
  if (absl::Status s = Authorize(caller, Action::kRead, PoolName(pool_name)); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  Pool* pool = FindPool(PoolName(pool_name));
  if (pool == nullptr) {
    return absl::NotFoundError(absl::StrCat("unknown pool '", PoolName(pool_name), "'"));
  }
  if (rank.has_value() && (*rank < 0 || *rank >= pool->world_size)) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", *rank, " is outside pool '", pool->name,
                                                   "' (world size ", pool->world_size, ")"));
  }
  // One rank: only that member's record is built (a snapshot of every member is O(pool) under
  // the lock, ~3 ms at 1,024 members).
  v1::PoolState s = Snapshot(*pool, rank);
  if ((rank.has_value() || kind.has_value()) && pool->layout.has_value()) {
    v1::Layout layout;
    for (GroupKind k : pool->layout->kinds()) {
      if (kind.has_value() && k != *kind) continue;
      v1::GroupSet* set = layout.add_group_sets();
      set->set_kind(ToProto(k));
      const RankGroups& groups = pool->layout->groups(k);
      for (size_t i = 0; i < groups.size(); ++i) {
        if (rank.has_value() && static_cast<int>(i) != pool->layout->GroupIndexOf(k, *rank)) {
          continue;
        }
        v1::RankGroup* g = set->add_groups();
        g->mutable_ranks()->Add(groups[i].begin(), groups[i].end());
        g->set_index(static_cast<int>(i));
      }
    }
    *s.mutable_layout() = std::move(layout);
    if (kind.has_value()) {
      for (v1::MemberState& m : *s.mutable_members()) {
        google::protobuf::RepeatedPtrField<v1::GroupReport> groups;
        for (v1::GroupReport& g : *m.mutable_groups()) {
          if (g.kind() == ToProto(*kind)) *groups.Add() = std::move(g);
        }
        m.mutable_groups()->Swap(&groups);
      }
    }
  }
  return s;
}

Coordinator::Cancel Coordinator::WaitForState(
    const std::string& pool_name, int64_t after_version, absl::Time deadline,
    std::function<void(absl::StatusOr<v1::PoolState>)> done, const Caller& caller) {
  if (absl::Status s = Authorize(caller, Action::kRead, PoolName(pool_name)); !s.ok()) {
    done(s);
    return nullptr;
  }
  std::function<void()> now;
  Cancel cancel;
  {
    absl::MutexLock lock(&mu_);
    Pool* pool = FindPool(PoolName(pool_name));
    if (stopping_) {
      // Nothing changes any more here: wait on the next coordinator.
      now = [done] { done(absl::UnavailableError(kCoordinatorRestarting)); };
    } else if (pool == nullptr) {
      absl::Status s = absl::NotFoundError(
          absl::StrCat("unknown pool '", Printable(PoolName(pool_name), 64), "'"));
      now = [done, s] { done(s); };
    } else if (pool->version > after_version || deadline <= clock_->Now()) {
      now = [done, state = Snapshot(*pool)] { done(state); };
    } else if (static_cast<int>(pool->state_waiters.size()) >= options_.limits.max_state_waiters) {
      absl::Status s =
          Refuse("max-state-waiters",
                 LimitExceeded(absl::StrCat("pool '", pool->name, "' has ",
                                            pool->state_waiters.size(), " long-polls waiting"),
                               options_.limits.max_state_waiters, "max-state-waiters"));
      now = [done, s] { done(s); };
    } else {
      const uint64_t id = pool->state_waiters.Add(after_version, std::move(done));
      const std::string name = pool->name;
      pool->state_waiters.SetTimer(id, Schedule(deadline, [this, name, id] {
                                     StateWaiters::Done fire;
                                     {
                                       absl::MutexLock lock(&mu_);
                                       Pool* p = FindPool(name);
                                       if (p == nullptr) return;
                                       std::optional<StateWaiters::Waiter> waiter =
                                           p->state_waiters.Take(id);
                                       if (!waiter.has_value()) return;
                                       fire = std::move(waiter->done);
                                     }
                                     fire(GetState(name));
                                   }));
      cancel = [this, name, id] {
        absl::MutexLock lock(&mu_);
        Pool* p = FindPool(name);
        if (p == nullptr) return;
        std::optional<StateWaiters::Waiter> waiter = p->state_waiters.Take(id);
        if (!waiter.has_value()) return;
        CancelTimer(waiter->timer);
      };
    }
  }
  if (now) now();
  return cancel;
}

absl::StatusOr<v1::CheckResponse> Coordinator::Check(const v1::CheckRequest& request,
                                                     const Caller& caller) {
  const std::string pool = PoolName(request.pool());
  if (absl::Status s = Authorize(caller, Action::kCheck, pool); !s.ok()) return s;
  absl::StatusOr<v1::CheckResponse> result = CheckAuthorized(request);
  AuditOutcome(caller, Action::kCheck, pool, result.status());
  return result;
}

absl::StatusOr<v1::CheckResponse> Coordinator::CheckAuthorized(const v1::CheckRequest& request) {
  absl::MutexLock lock(&mu_);
  Pool* pool = FindPool(PoolName(request.pool()));
  if (pool == nullptr) {
    return absl::NotFoundError(absl::StrCat("unknown pool '", PoolName(request.pool()), "'"));
  }
  if (pool->phases.phase() != v1::POOL_PHASE_READY) {
    return absl::FailedPreconditionError(absl::StrCat(
        "pool '", pool->name, "' is ", v1::PoolPhase_Name(pool->phases.phase()), ", not READY"));
  }
  for (auto& [identity, m] : pool->roster.members()) {
    if (m.rank < 0 || m.sink == nullptr) continue;
    v1::CoordinatorMessage message;
    message.mutable_check()->set_generation(pool->generation);
    m.sink->Send(message);
  }
  v1::CheckResponse response;
  response.set_generation(pool->generation);
  return response;
}

v1::PoolState Coordinator::Snapshot(const Pool& pool, std::optional<int> only_rank) const {
  v1::PoolState s;
  s.set_pool(pool.name);
  s.set_phase(pool.phases.phase());
  s.set_generation(pool.generation);
  s.set_version(pool.version);
  s.set_world_size(pool.world_size);
  if (pool.config.has_value()) *s.mutable_config() = ToProto(*pool.config);
  *s.mutable_options() = pool.options;
  // With only_rank the caller builds the layout of that rank's groups itself.
  if (pool.layout.has_value() && !only_rank.has_value()) {
    *s.mutable_layout() = ToProto(*pool.layout);
  }
  std::vector<const Member*> members;
  for (const auto& [identity, m] : pool.roster.members()) members.push_back(&m);
  if (!only_rank.has_value()) {
    std::sort(members.begin(), members.end(), [](const Member* a, const Member* b) {
      // Ranked members by rank, then standbys by arrival.
      if ((a->rank < 0) != (b->rank < 0)) return a->rank >= 0;
      return a->rank >= 0 ? a->rank < b->rank : a->join_seq < b->join_seq;
    });
  }
  const absl::Time now = clock_->Now();
  int ready = 0;
  for (const Member* m : members) {
    // The counts cover every member; the records only the rank asked for.
    if (m->rank >= 0 && m->phase == v1::MEMBER_PHASE_READY) ++ready;
    if (m->phase == v1::MEMBER_PHASE_STANDBY) s.set_members_standby(s.members_standby() + 1);
    if (m->phase == v1::MEMBER_PHASE_FAILED) s.set_members_failed(s.members_failed() + 1);
    if (only_rank.has_value() && m->rank != *only_rank) continue;
    v1::MemberState* ms = s.add_members();
    ms->set_identity(m->identity);
    ms->set_rank(m->rank);
    ms->set_phase(m->phase);
    *ms->mutable_device() = m->join.device();
    ms->set_nccl_version(m->join.nccl_version());
    ms->set_generation(m->generation);
    ms->set_connected(m->sink != nullptr);
    if (m->ever_attached) {
      ms->set_heartbeat_age_ms(absl::ToInt64Milliseconds(now - m->last_heartbeat));
    }
    if (m->generation == pool.generation) {
      *ms->mutable_groups() = m->report.groups();
      ms->set_ready_us(m->report.total_us());
    }
    ms->set_error(m->error);
    *ms->mutable_progress() = m->progress;
    if (m->sink != nullptr) {
      ms->set_session_uptime_ms(absl::ToInt64Milliseconds(now - m->attached_at));
    }
    ms->set_backend(m->backend);
    *ms->mutable_backends_offered() = m->join.backends();
    ms->set_agent_version(m->join.agent_version());
  }
  s.set_members_ready(ready);
  for (const v1::PhaseTransition& t : pool.phases.transitions()) *s.add_transitions() = t;
  for (int r : pool.roster.MissingRanks(pool.world_size)) s.add_missing_ranks(r);
  s.set_error(pool.error);
  if (pool.phases.phase() == v1::POOL_PHASE_DEGRADED) s.set_reason(pool.phases.reason());
  s.set_init_ms(pool.build.init_ms());
  // Key names only: values are secrets (unique ids, addresses).
  for (const std::string& key : pool.kv.Keys(kMaxStoreKeysShown)) s.add_store_keys(key);
  s.set_store_key_count(static_cast<int32_t>(pool.kv.size()));
  return s;
}

}  // namespace cohort::coordinator
