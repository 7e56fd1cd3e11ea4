#include "coordinator/coordinator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/layout_proto.h"
#include "coordinator/agent_input.h"
#include "coordinator/coordinator_internal.h"
#include "coordinator/plan.h"
#include "spdlog/spdlog.h"

namespace cohort::coordinator {
namespace {

using internal::BackendOf;
using internal::IsKnownBackend;
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
    for (TimerQueue::TimerId timer : pool.state_waiters.timers()) CancelTimer(timer);
  }
}

TimerQueue::TimerId Coordinator::Schedule(absl::Time when, std::function<void()> fn) {
  // The queue may outlive this coordinator (tests share one; a server stops its queue before
  // destroying the coordinator): a timer that fires after the coordinator is gone does nothing.
  return timers_->Schedule(when, [alive = std::weak_ptr<int>(alive_), fn = std::move(fn)] {
    if (alive.lock() != nullptr) fn();
  });
}

void Coordinator::CancelTimer(TimerQueue::TimerId& id) {
  if (id != 0) timers_->Cancel(id);
  id = 0;
}

void Coordinator::ScheduleSweep() {
  const absl::Time due = clock_->Now() + options_.heartbeat_interval;
  sweep_timer_ = Schedule(due, [this, due] {
    Sweep(clock_->Now() - due);
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

Member* Coordinator::FindMemberBySession(const std::string& session_id,
                                                      Pool** pool_out) {
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

// ---- Agent-facing -------------------------------------------------------------------------

absl::Status Coordinator::Authorize(const Caller& caller, Action action,
                                    const std::string& pool) const {
  absl::Status allowed = authorizer_->Authorize(caller, action, pool);
  if (allowed.ok()) return allowed;
  spdlog::warn("refused {} on pool '{}' to {}{}: {}", ActionName(action), Printable(pool, 64),
               Printable(caller.identity, 253), caller.authenticated ? "" : " (unauthenticated)",
               std::string(allowed.message()));
  return Refuse("authorization", std::move(allowed));
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

absl::StatusOr<v1::JoinResponse> Coordinator::Join(const v1::JoinRequest& request,
                                                   const Caller& caller) {
  if (absl::Status s = Authorize(caller, Action::kJoin, PoolName(request.pool())); !s.ok()) {
    return s;
  }
  if (std::optional<Refusal> refused = CheckJoinRequest(request, options_.limits);
      refused.has_value()) {
    return Refuse(refused->check, refused->status);
  }
  Completions done;
  v1::JoinResponse response;
  {
    absl::MutexLock lock(&mu_);
    const std::string pool_name = PoolName(request.pool());
    absl::StatusOr<Pool*> found = FindOrCreatePool(pool_name, options_.create_pools_on_join);
    if (!found.ok()) return found.status();
    Pool* pool = *found;
    auto it = pool->roster.members().find(request.identity());
    Member* member = nullptr;
    if (it != pool->roster.members().end()) {
      member = &it->second;
      // A live session is only ever replaced by the process that holds it: the same incarnation
      // naming its current session id (a secret only that process got from Join). Anyone
      // else — another incarnation, or a client that copied the identity and incarnation
      // from GetState — is refused while the session lives.
      if (member->sink != nullptr &&
          (member->incarnation != request.incarnation() ||
           request.previous_session_id() != member->session_id)) {
        const bool same = member->incarnation == request.incarnation();
        const std::string why = absl::StrCat(
            "identity '", request.identity(), "' is held by a live agent (",
            same ? "this incarnation, but the join does not name its current session"
                 : absl::StrCat("incarnation ", member->incarnation),
            ", rank ", member->rank, ") in pool '", pool_name,
            "'; give each agent its own identity, or retry once the old agent is gone");
        Emit(*pool, v1::EVENT_KIND_REFUSED, member->rank, request.identity(),
             absl::StrCat("join refused: ", why));
        return absl::AlreadyExistsError(why);
      }
      if (member->sink != nullptr) {
        // The same process joining again (e.g. after a transport break we have not noticed):
        // the new session supersedes the old one.
        member->sink->Close("superseded by a new session of the same agent");
        member->sink = nullptr;
      }
      sessions_.Close(member->session_id);
      spdlog::info("pool {}: {} rejoins as incarnation {} (rank {})", pool_name,
                   request.identity(), request.incarnation(), member->rank);
    } else {
      if (static_cast<int>(pool->roster.members().size()) >= options_.limits.max_members_per_pool) {
        return Refuse("max-members-per-pool",
                      LimitExceeded(absl::StrCat("pool '", pool_name, "' has ",
                                                 pool->roster.members().size(), " members and standbys"),
                                    options_.limits.max_members_per_pool,
                                    "max-members-per-pool"));
      }
      if (request.held().holding()) {
        if (absl::Status s = ValidateHeld(request.held()); !s.ok()) {
          Emit(*pool, v1::EVENT_KIND_REFUSED, -1, request.identity(),
               absl::StrCat("join refused: ", s.message()));
          return s;
        }
      }
      if (!pool->config.has_value() && request.held().holding() &&
          pool->phases.phase() == v1::POOL_PHASE_WAITING && pool->generation == 0) {
        // A pool this coordinator does not know, joined by an agent that holds communicators:
        // the coordinator restarted without a state file. Recover from the members' reports.
        StartRecovery(*pool);
      }
      member = &pool->roster.members()[request.identity()];
      member->identity = request.identity();
      if (pool->phases.phase() == v1::POOL_PHASE_RECOVERING) {
        // Held ranks are reserved for their holders until recovery ends; anyone else waits.
        member->rank = pool->roster.RecoveryRank(request, pool->world_size);
      } else {
        std::optional<int> hint;
        if (request.has_rank_hint() && request.rank_hint() >= 0) hint = request.rank_hint();
        // What the agent holds beats the state file, which beats its hint.
        if (auto it = pool->roster.durable_ranks().find(request.identity());
            it != pool->roster.durable_ranks().end()) {
          hint = it->second;
        }
        if (request.held().holding()) hint = request.held().rank();
        member->rank = pool->roster.FreeRank(hint, pool->world_size);
      }
      if (request.held().holding() && member->rank != request.held().rank()) {
        spdlog::warn("pool {}: {} reports holding rank {} but that rank is taken; it gets {}",
                     pool_name, request.identity(), request.held().rank(),
                     member->rank >= 0 ? absl::StrCat("rank ", member->rank) : "standby");
      }
      member->join_seq = ++join_seq_;
      spdlog::info("pool {}: {} joins as {}", pool_name, request.identity(),
                   member->rank >= 0 ? absl::StrCat("rank ", member->rank) : "standby");
    }
    // The same agent back on a new session while the coordinator still counts it READY (it
    // never noticed the old session go): it keeps its state.
    const bool still_ready = member->phase == v1::MEMBER_PHASE_READY &&
                             member->incarnation == request.incarnation() &&
                             pool->phases.phase() == v1::POOL_PHASE_READY &&
                             request.held().holding() &&
                             request.held().generation() == pool->generation;
    // Otherwise a member of the running generation that comes back without it lost it: the
    // generation fails like on any loss, so the pool is never READY with a member that is not.
    if (!still_ready && member->rank >= 0 &&
        (pool->phases.phase() == v1::POOL_PHASE_READY || pool->phases.phase() == v1::POOL_PHASE_INITIALIZING) &&
        (member->phase == v1::MEMBER_PHASE_READY ||
         member->phase == v1::MEMBER_PHASE_INITIALIZING)) {
      LoseMember(*pool, *member,
                 absl::StrCat("rejoined without the communicators of generation ",
                              pool->generation),
                 done);
    }
    member->incarnation = request.incarnation();
    member->join = request;
    {
      // Shown in tables and logs: printable only (they are not names, so not refused).
      v1::DeviceInfo* d = member->join.mutable_device();
      d->set_hostname(Printable(d->hostname(), 253));
      d->set_host_address(Printable(d->host_address(), 253));
      d->set_gpu_uuid(Printable(d->gpu_uuid(), 253));
      d->set_pci_bus_id(Printable(d->pci_bus_id(), 253));
      member->join.set_agent_version(Printable(request.agent_version(), 253));
      member->join.set_nccl_version(Printable(request.nccl_version(), 253));
      for (std::string& b : *member->join.mutable_backends()) b = Printable(b, 16);
    }
    member->held = request.held();
    member->session_id = sessions_.Open(pool_name, request.identity());
    if (!still_ready) {
      member->phase = member->rank >= 0 ? v1::MEMBER_PHASE_JOINED : v1::MEMBER_PHASE_STANDBY;
    }
    member->ever_attached = false;
    member->error.clear();
    Emit(*pool, v1::EVENT_KIND_JOINED, member->rank, member->identity,
         absl::StrCat("incarnation ", member->incarnation,
                      member->rank >= 0 ? absl::StrCat(", rank ", member->rank) : ", standby",
                      member->held.holding()
                          ? absl::StrCat(", holding generation ", member->held.generation())
                          : ""));
    if (member->rank >= 0) pool->roster.RememberRank(member->identity, member->rank);
    SaveState();
    // A session that never attaches gives its rank back.
    const std::string session_id = member->session_id;
    Schedule(clock_->Now() + options_.attach_timeout, [this, session_id] {
      Completions late;
      {
        absl::MutexLock lock(&mu_);
        Pool* p = nullptr;
        Member* m = FindMemberBySession(session_id, &p);
        if (m == nullptr || m->ever_attached) return;
        spdlog::warn("pool {}: {} joined but never attached its session; dropping it", p->name,
                     m->identity);
        sessions_.Close(session_id);
        Emit(*p, v1::EVENT_KIND_LEFT, m->rank, m->identity, "joined but never attached");
        p->roster.members().erase(m->identity);
        Touch(*p, late);
      }
      Finish(late);
    });
    response.set_session_id(member->session_id);
    response.set_pool(pool_name);
    response.set_rank(member->rank);
    response.set_world_size(pool->world_size);
    response.set_heartbeat_interval_ms(absl::ToInt64Milliseconds(options_.heartbeat_interval));
    Touch(*pool, done);
  }
  Finish(done);
  return response;
}

absl::Status Coordinator::Attach(const std::string& session_id, SessionSink* sink,
                                const Caller& caller) {
  std::string pool_name;
  {
    absl::MutexLock lock(&mu_);
    if (const SessionTable::Owner* owner = sessions_.Find(session_id); owner != nullptr) {
      pool_name = owner->pool;
    }
  }
  // An unknown session is refused below, as before, once the caller may join at all.
  if (absl::Status s = Authorize(caller, Action::kJoin, PoolName(pool_name)); !s.ok()) return s;
  Completions done;
  {
    absl::MutexLock lock(&mu_);
    Pool* pool = nullptr;
    Member* member = FindMemberBySession(session_id, &pool);
    if (member == nullptr) {
      return absl::NotFoundError(
          "unknown or superseded session id; join again to get a new session");
    }
    if (member->sink != nullptr) {
      return absl::FailedPreconditionError("this session is already attached to a stream");
    }
    member->sink = sink;
    member->ever_attached = true;
    member->last_heartbeat = clock_->Now();
    member->attached_at = clock_->Now();
    Emit(*pool, v1::EVENT_KIND_ATTACHED, member->rank, member->identity, "session attached");
    const bool still_ready = member->phase == v1::MEMBER_PHASE_READY;
    if (!still_ready) {
      member->phase = member->rank >= 0 ? v1::MEMBER_PHASE_JOINED : v1::MEMBER_PHASE_STANDBY;
    }
    // Communicators held from a generation this coordinator has moved past (or never will
    // restore) are aborted; a RECOVERING pool decides once everyone is back.
    if (member->held.holding() && !still_ready && pool->phases.phase() != v1::POOL_PHASE_RECOVERING) {
      AbortHeld(*pool, *member,
                absl::StrCat("generation ", member->held.generation(),
                             " is over: the coordinator declared this member lost"));
    }
    Touch(*pool, done);
    // A standby that attaches to a degraded pool refills a lost rank at once.
    if (member->rank < 0 && pool->phases.phase() == v1::POOL_PHASE_DEGRADED) {
      std::vector<Member*> lost;
      for (auto& [identity, m] : pool->roster.members()) {
        if (m.rank >= 0 && m.sink == nullptr) lost.push_back(&m);
      }
      for (Member* m : lost) RefillFromStandby(*pool, *m, done);
    }
    MaybeStart(*pool, done);
    MaybeGrowDp(*pool, done);
  }
  Finish(done);
  return absl::OkStatus();
}

void Coordinator::Detach(const std::string& session_id, SessionSink* sink,
                         const std::string& reason) {
  Completions done;
  {
    absl::MutexLock lock(&mu_);
    Pool* pool = nullptr;
    Member* member = FindMemberBySession(session_id, &pool);
    if (member == nullptr || member->sink == nullptr || member->sink != sink) return;
    member->sink = nullptr;
    sessions_.Close(session_id);
    LoseMember(*pool, *member, reason, done);
  }
  Finish(done);
}

void Coordinator::LoseMember(Pool& pool, Member& member, const std::string& reason,
                             Completions& out) {
  spdlog::warn("pool {}: {} (rank {}) lost: {}", pool.name, member.identity, member.rank,
               reason);
  Emit(pool, v1::EVENT_KIND_MEMBER_LOST, member.rank, member.identity, reason);
  if (member.rank < 0) {
    pool.roster.members().erase(member.identity);  // standbys hold nothing worth remembering
    Touch(pool, out);
    return;
  }
  member.phase = v1::MEMBER_PHASE_FAILED;
  member.error = reason;
  const std::string what =
      absl::StrCat("rank ", member.rank, " (", member.identity, ") was lost: ", reason);
  switch (pool.phases.phase()) {
    case v1::POOL_PHASE_INITIALIZING:
    case v1::POOL_PHASE_READY:
      FailGeneration(pool, what, out, v1::POOL_PHASE_DEGRADED);
      RefillFromStandby(pool, member, out);
      if (options_.elastic_dp_after > absl::ZeroDuration() && pool.config.has_value() &&
          pool.config->data_parallel_size > 1) {
        CancelTimer(pool.elastic_timer);
        const std::string name = pool.name;
        const int64_t generation = pool.generation;
        pool.elastic_timer = Schedule(
            clock_->Now() + options_.elastic_dp_after, [this, name, generation] {
              Completions done;
              {
                absl::MutexLock lock(&mu_);
                Pool* p = FindPool(name);
                if (p == nullptr) return;
                p->elastic_timer = 0;
                if (p->generation == generation && p->phases.phase() == v1::POOL_PHASE_DEGRADED &&
                    !p->roster.MissingRanks(p->world_size).empty()) {
                  ShrinkDp(*p, done);
                }
              }
              Finish(done);
            });
      }
      MaybeStart(pool, out);
      break;
    case v1::POOL_PHASE_DEGRADED:
      RefillFromStandby(pool, member, out);
      MaybeStart(pool, out);
      break;
    case v1::POOL_PHASE_DESTROYING:
      // A member that had reported its teardown released everything before it went.
      if (!member.teardown_reported) {
        member.teardown_reported = true;
        const std::string failure = absl::StrCat("rank ", member.rank, " (", member.identity,
                                                 ") was lost during the teardown: ", reason);
        pool.error = pool.teardown.Fail(pool.error, failure);
      }
      FinishTeardownIfDone(pool, /*force=*/false, out);
      break;
    default:
      pool.world.Drop();
      break;
  }
  Touch(pool, out);
}

absl::Status Coordinator::HandleAgentMessage(const std::string& session_id,
                                             const v1::AgentMessage& raw) {
  Completions done;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    Pool* pool = nullptr;
    Member* member = FindMemberBySession(session_id, &pool);
    if (member == nullptr || member->sink == nullptr) {
      return absl::NotFoundError("session is not attached; join again");
    }
    member->last_heartbeat = clock_->Now();
    // Free text from agents is cut and made printable before it reaches state, logs and events.
    // (Heartbeats carry none and are not copied.)
    v1::AgentMessage clean;
    if (raw.kind_case() != v1::AgentMessage::kHeartbeat) {
      clean = raw;
      CleanAgentMessage(&clean);
    }
    const v1::AgentMessage& message =
        raw.kind_case() == v1::AgentMessage::kHeartbeat ? raw : clean;
    switch (message.kind_case()) {
      case v1::AgentMessage::kHeartbeat:
        // Deliberately no Touch: heartbeats must cost idle watchers nothing.
        break;
      case v1::AgentMessage::kProgress:
        if (message.progress().generation() == pool->generation) {
          member->progress = message.progress();
          Touch(*pool, done);
        }
        break;
      case v1::AgentMessage::kGroupStates:
        if (message.group_states().generation() == pool->generation &&
            member->generation == pool->generation) {
          // Replace the reported state of each group that changed; only groups the member
          // reported at READY exist (a rank is in one group of each kind).
          for (const v1::GroupReport& changed : message.group_states().groups()) {
            bool known = false;
            for (v1::GroupReport& g : *member->report.mutable_groups()) {
              if (g.kind() == changed.kind() && g.index() == changed.index()) {
                g = changed;
                known = true;
              }
            }
            if (!known) continue;
            Emit(*pool, v1::EVENT_KIND_GROUP_STATE, member->rank, member->identity,
                 absl::StrCat(v1::GroupKind_Name(changed.kind()), " ", changed.index(), ": ",
                              v1::CommState_Name(changed.state()),
                              changed.error().empty() ? "" : " error: ", changed.error(),
                              changed.async_error().empty() ? "" : " ",
                              changed.async_error()));
          }
          Touch(*pool, done);
        }
        break;
      case v1::AgentMessage::kReport:
        if (message.report().generation() != pool->generation) {
          status = absl::AbortedError(absl::StrCat(
              "report for generation ", message.report().generation(), " but pool '",
              pool->name, "' is at generation ", pool->generation, "; ignored"));
          break;
        }
        // Only a member planned into this generation reports on it (not a standby, not a
        // member that already reported).
        if (member->rank < 0 || member->phase != v1::MEMBER_PHASE_INITIALIZING) {
          status = absl::FailedPreconditionError(absl::StrCat(
              "report for generation ", pool->generation, " from ",
              member->rank < 0 ? "a standby" : "a member that is not building it",
              " (", v1::MemberPhase_Name(member->phase), "); ignored"));
          break;
        }
        HandleReport(*pool, *member, message.report(), done);
        break;
      case v1::AgentMessage::kTeardown:
        // Inspection shows what is gone: destroyed (or aborted) groups stop looking READY.
        ApplyTeardown(message.teardown(),
                      pool->phases.phase() == v1::POOL_PHASE_DESTROYING ? v1::COMM_STATE_DESTROYED
                                                               : v1::COMM_STATE_ABORTED,
                      &member->report);
        if (pool->phases.phase() != v1::POOL_PHASE_DESTROYING) {
          // The answer to an abort: recorded for inspection (time from failure to aborted).
          Emit(*pool, v1::EVENT_KIND_ABORT, member->rank, member->identity,
               absl::StrCat("aborted its communicators of generation ",
                            message.teardown().generation(), " in ",
                            message.teardown().teardown_us() / 1000, " ms"));
          Touch(*pool, done);
          break;
        }
        if (message.teardown().generation() != pool->generation) {
          status = absl::AbortedError(absl::StrCat(
              "teardown report for generation ", message.teardown().generation(),
              " but pool '", pool->name, "' is at generation ", pool->generation, "; ignored"));
          break;
        }
        if (member->rank < 0) {
          status = absl::FailedPreconditionError(
              "teardown report from a standby, which was told to tear nothing down; ignored");
          break;
        }
        HandleTeardownReport(*pool, *member, message.teardown(), done);
        break;
      case v1::AgentMessage::kAttach:
        status = absl::FailedPreconditionError("session already attached");
        break;
      default:
        status = absl::InvalidArgumentError("empty agent message");
        break;
    }
  }
  Finish(done);
  if (!status.ok()) {
    spdlog::warn("refused agent message: {}", status.ToString());
    absl::MutexLock lock(&mu_);
    Pool* pool = nullptr;
    if (Member* m = FindMemberBySession(session_id, &pool); m != nullptr) {
      Emit(*pool, v1::EVENT_KIND_REFUSED, m->rank, m->identity, std::string(status.message()));
    }
  }
  return status;
}

void Coordinator::SweepHeartbeats() { Sweep(absl::ZeroDuration()); }

void Coordinator::Sweep(absl::Duration late) {
  Completions done;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    const absl::Duration limit = heartbeats_.window();
    if (heartbeats_.StartSweep(now, late)) {
      // The coordinator's own absence is not the agents' fault (heartbeat_monitor.h).
      spdlog::warn("heartbeat sweep ran {} late (the coordinator was not running); every member "
                   "gets a full heartbeat window ({}) before it can be declared lost",
                   absl::FormatDuration(late), absl::FormatDuration(limit));
    }
    for (auto& [name, pool] : pools_) {
      std::vector<Member*> stale;
      for (auto& [identity, m] : pool.roster.members()) {
        if (m.sink != nullptr && heartbeats_.Overdue(m.last_heartbeat, now)) stale.push_back(&m);
      }
      for (Member* m : stale) {
        m->sink->Close("missed heartbeats");
        m->sink = nullptr;
        sessions_.Close(m->session_id);
        LoseMember(pool, *m,
                   absl::StrCat("no heartbeat for ",
                                absl::FormatDuration(now - m->last_heartbeat)),
                   done);
      }
    }
  }
  Finish(done);
}

// ---- Generations ----------------------------------------------------------------------------

void Coordinator::MaybeStart(Pool& pool, Completions& out) {
  if (pool.phases.phase() == v1::POOL_PHASE_RECOVERING) {
    TryRecover(pool, /*give_up=*/false, out);
    return;
  }
  if (!pool.config.has_value() || pool.world_size == 0 ||
      (pool.phases.phase() != v1::POOL_PHASE_WAITING && pool.phases.phase() != v1::POOL_PHASE_DEGRADED)) {
    return;
  }
  if (!pool.roster.MissingRanks(pool.world_size).empty()) return;
  StartGeneration(pool, out);
}

v1::Plan Coordinator::PlanFor(const Pool& pool, int rank) const {
  return BuildPlan(pool.name, pool.generation, *pool.config, *pool.layout, pool.options,
                   options_.default_init_deadline, rank);
}

void Coordinator::StartGeneration(Pool& pool, Completions& out) {
  ++pool.generation;
  CancelTimer(pool.deadline_timer);
  for (auto& fn : pool.kv.Reset(absl::AbortedError(
           absl::StrCat("pool '", pool.name, "' moved to generation ", pool.generation)))) {
    out.push_back(std::move(fn));
  }
  // The world communicator survives a model-parallel destroy; reuse it when the same processes
  // hold the same ranks with the same backend.
  const bool reuse = pool.world.ReusableBy(pool.world_size, [&](int r) -> const std::string* {
    const Member* m = pool.roster.AtRank(r);
    return m != nullptr ? &m->incarnation : nullptr;
  });
  if (!reuse) pool.world.Drop();
  SetPhase(pool, v1::POOL_PHASE_INITIALIZING);
  pool.error.clear();
  pool.build.Start(pool.world_size, clock_->Now());
  for (int r = 0; r < pool.world_size; ++r) {
    Member* m = pool.roster.AtRank(r);
    m->phase = v1::MEMBER_PHASE_INITIALIZING;
    m->report.Clear();
    m->progress.Clear();
    m->error.clear();
    v1::CoordinatorMessage message;
    *message.mutable_plan() = PlanFor(pool, r);
    m->backend = message.plan().backend();
    if (reuse) {
      message.mutable_plan()->set_reuse_world(true);
      message.mutable_plan()->set_reuse_world_generation(pool.world.generation());
    }
    m->sink->Send(message);
  }
  const absl::Duration deadline =
      absl::Milliseconds(PlanFor(pool, 0).deadline_ms()) + absl::Seconds(1);
  const std::string name = pool.name;
  const int64_t generation = pool.generation;
  pool.deadline_timer = Schedule(
      clock_->Now() + deadline, [this, name, generation] { OnGenerationDeadline(name, generation); });
  spdlog::info("pool {}: generation {} started: {} ({}, {} ranks{})", pool.name, pool.generation,
               pool.config->ShortString(), BackendOf(pool.options), pool.world_size,
               reuse ? ", reusing the world communicator" : "");
  SaveState();
  Emit(pool, v1::EVENT_KIND_PLAN, -1, "",
       absl::StrCat("plans sent: ", pool.config->ShortString(), " on ", BackendOf(pool.options),
                    reuse ? ", reusing the world communicator" : ""));
  Touch(pool, out);
}

void Coordinator::OnGenerationDeadline(const std::string& pool_name, int64_t generation) {
  Completions done;
  {
    absl::MutexLock lock(&mu_);
    Pool* pool = FindPool(pool_name);
    if (pool == nullptr || pool->generation != generation ||
        pool->phases.phase() != v1::POOL_PHASE_INITIALIZING) {
      return;
    }
    pool->deadline_timer = 0;
    std::vector<std::string> missing;
    for (auto& [identity, m] : pool->roster.members()) {
      if (m.rank >= 0 && m.phase != v1::MEMBER_PHASE_READY) {
        missing.push_back(absl::StrCat(m.rank, " (", identity, ")"));
      }
    }
    FailGeneration(*pool,
                   absl::StrCat("generation ", generation, " missed its deadline; ranks not "
                                "READY: ", absl::StrJoin(missing, ", ")),
                   done);
  }
  Finish(done);
}

void Coordinator::FailGeneration(Pool& pool, const std::string& error, Completions& out,
                                 v1::PoolPhase next) {
  spdlog::error("pool {}: generation {} failed: {}", pool.name, pool.generation, error);
  Emit(pool, v1::EVENT_KIND_FAILED, -1, "", error);
  SetPhase(pool, next);
  pool.error = error;
  pool.world.Drop();
  CancelTimer(pool.deadline_timer);
  // Agents still waiting on the rendezvous store of this generation stop waiting now.
  for (auto& fn : pool.kv.Reset(absl::AbortedError(
           absl::StrCat("generation ", pool.generation, " failed: ", error)))) {
    out.push_back(std::move(fn));
  }
  for (auto& [identity, m] : pool.roster.members()) {
    if (m.rank < 0 || m.sink == nullptr) continue;
    v1::CoordinatorMessage message;
    v1::Teardown* teardown = message.mutable_teardown();
    teardown->set_generation(pool.generation);
    teardown->set_scope(v1::DESTROY_SCOPE_ALL);
    teardown->set_abort(true);
    teardown->set_reason(error);
    m.sink->Send(message);
    if (m.phase != v1::MEMBER_PHASE_FAILED) m.phase = v1::MEMBER_PHASE_JOINED;
    Emit(pool, v1::EVENT_KIND_ABORT, m.rank, identity, "told to abort its communicators");
  }
  Touch(pool, out);
}

void Coordinator::HandleReport(Pool& pool, Member& member, const v1::GenerationReport& report,
                               Completions& out) {
  if (pool.phases.phase() != v1::POOL_PHASE_INITIALIZING) return;  // late, after a failure
  member.report = report;
  member.generation = report.generation();
  if (!report.ok()) {
    member.phase = v1::MEMBER_PHASE_FAILED;
    member.error = report.error();
    FailGeneration(pool, absl::StrCat("rank ", member.rank, " (", member.identity, "): ",
                                      report.error()),
                   out);
    return;
  }
  member.phase = v1::MEMBER_PHASE_READY;
  Emit(pool, v1::EVENT_KIND_MEMBER_READY, member.rank, member.identity,
       absl::StrCat("ready in ", report.total_us() / 1000, " ms"));
  // Only a member planned into this generation, still building it, gets here (see
  // HandleAgentMessage), and ranks do not move while it is built: the tracker's count is the
  // number of READY members.
  if (pool.build.MarkReady(member.rank, clock_->Now())) {
    SetPhase(pool, v1::POOL_PHASE_READY);
    CancelTimer(pool.deadline_timer);
    spdlog::info("pool {}: generation {} READY in {} ms", pool.name, pool.generation,
                 pool.build.init_ms());
    Emit(pool, v1::EVENT_KIND_READY, -1, "",
         absl::StrCat("READY in ", pool.build.init_ms(), " ms"));
    MaybeGrowDp(pool, out);
  }
  Touch(pool, out);
}

// ---- Teardown -------------------------------------------------------------------------------

void Coordinator::HandleTeardownReport(Pool& pool, Member& member,
                                       const v1::TeardownReport& report, Completions& out) {
  if (pool.phases.phase() != v1::POOL_PHASE_DESTROYING) return;  // the abort after a failure
  member.teardown_reported = true;
  member.phase = v1::MEMBER_PHASE_JOINED;
  if (!report.ok()) {
    member.error = report.error().empty() ? "teardown failed (no error given)" : report.error();
    const std::string failure = absl::StrCat("rank ", member.rank, " (", member.identity,
                                             ") failed its teardown: ", member.error);
    pool.error = pool.teardown.Fail(pool.error, failure);
  }
  FinishTeardownIfDone(pool, /*force=*/false, out);
  Touch(pool, out);
}

void Coordinator::FinishTeardownIfDone(Pool& pool, bool force, Completions& out) {
  if (pool.phases.phase() != v1::POOL_PHASE_DESTROYING) return;
  std::vector<Member*> waiting;
  for (auto& [identity, m] : pool.roster.members()) {
    if (m.rank >= 0 && m.sink != nullptr && !m.teardown_reported) waiting.push_back(&m);
  }
  if (!waiting.empty() && !force) return;
  if (!waiting.empty()) {
    std::sort(waiting.begin(), waiting.end(),
              [](const Member* a, const Member* b) { return a->rank < b->rank; });
    const std::string why = absl::StrCat("no teardown report within ",
                                         absl::FormatDuration(options_.teardown_deadline));
    std::vector<std::string> names;
    for (Member* m : waiting) {
      m->error = why;
      names.push_back(absl::StrCat("rank ", m->rank, " (", m->identity, ")"));
    }
    pool.error = pool.teardown.Fail(
        pool.error, absl::StrCat(why, " from ", absl::StrJoin(names, ", ")));
  } else if (pool.teardown.ok()) {
    // A clean teardown: the error that came before the destroy is history (in the events), and
    // an error on a DESTROYED pool means that the teardown failed.
    pool.error.clear();
  }
  CancelTimer(pool.teardown_timer);
  SetPhase(pool, v1::POOL_PHASE_DESTROYED);
  if (pool.teardown.KeepsWorld()) {
    std::map<int, std::string> incarnations;
    for (const auto& [identity, m] : pool.roster.members()) {
      if (m.rank >= 0) incarnations[m.rank] = m.incarnation;
    }
    pool.world.Keep(pool.generation, std::move(incarnations));
  } else {
    pool.world.Drop();
  }
  for (auto& [identity, m] : pool.roster.members()) {
    if (m.rank >= 0 && m.phase != v1::MEMBER_PHASE_FAILED) m.phase = v1::MEMBER_PHASE_JOINED;
  }
  if (pool.grow_after_teardown) {
    // Elastic dp grows back: the full config, the current ranks kept, standbys fill the rest.
    pool.grow_after_teardown = false;
    const ParallelConfig full = *pool.full_config;
    pool.full_config.reset();
    pool.config = full;
    pool.layout = *Layout::Build(full);
    pool.world_size = pool.layout->world_size();
    ReassignByHints(pool, "elastic dp grows back");
    Emit(pool, v1::EVENT_KIND_CONFIGURED, -1, "",
         absl::StrCat("elastic dp: grown back to ", full.ShortString()));
    SetPhase(pool, v1::POOL_PHASE_WAITING);
    SaveState();
    Touch(pool, out);
    MaybeStart(pool, out);
    return;
  }
  Emit(pool, v1::EVENT_KIND_DESTROYED, -1, "",
       absl::StrCat(pool.teardown.What(),
                    pool.teardown.ok() ? "" : absl::StrCat(", with errors: ", pool.error)));
  spdlog::info("pool {}: generation {} destroyed ({}{})", pool.name, pool.generation,
               pool.teardown.What(),
               pool.teardown.ok() ? "" : absl::StrCat(", with errors: ", pool.error));
  Touch(pool, out);
}

void Coordinator::OnTeardownDeadline(const std::string& pool_name, int64_t generation) {
  Completions done;
  {
    absl::MutexLock lock(&mu_);
    Pool* pool = FindPool(pool_name);
    if (pool == nullptr || pool->generation != generation) return;
    pool->teardown_timer = 0;
    FinishTeardownIfDone(*pool, /*force=*/true, done);
  }
  Finish(done);
}

// ---- Rendezvous store -----------------------------------------------------------------------

absl::Status Coordinator::CheckKvGeneration(const Pool& pool, int64_t generation) const {
  if (generation != pool.generation) {
    return absl::AbortedError(absl::StrCat("generation ", generation, " is stale; pool '",
                                           pool.name, "' is at generation ", pool.generation));
  }
  // The store serves a generation while it is being built (and once READY); a failed or
  // degraded generation answers ABORTED at once, so nobody waits for a peer that is gone.
  if (pool.phases.phase() != v1::POOL_PHASE_INITIALIZING && pool.phases.phase() != v1::POOL_PHASE_READY) {
    return absl::AbortedError(absl::StrCat("generation ", generation, " of pool '", pool.name,
                                           "' is over (", v1::PoolPhase_Name(pool.phases.phase()), ")",
                                           pool.error.empty() ? "" : ": ", pool.error));
  }
  return absl::OkStatus();
}

absl::Status Coordinator::KvSet(const v1::KvSetRequest& request, const Caller& caller) {
  if (absl::Status s = Authorize(caller, Action::kStore, PoolName(request.pool())); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckKeys(request.entries_size(),
                                 [&](int i) -> const std::string& {
                                   return request.entries(i).key();
                                 });
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
    std::vector<std::pair<std::string, std::string>> entries;
    for (const v1::KvEntry& e : request.entries()) entries.emplace_back(e.key(), e.value());
    absl::StatusOr<std::vector<KvStore::Completion>> set = pool->kv.Set(entries,
                                                                         request.set_once());
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

Coordinator::Cancel Coordinator::KvGet(
    const v1::KvGetRequest& request,
    std::function<void(absl::StatusOr<v1::KvGetResponse>)> reply, const Caller& caller) {
  if (absl::Status s = Authorize(caller, Action::kStore, PoolName(request.pool())); !s.ok()) {
    reply(s);
    return nullptr;
  }
  absl::Status refused = CheckKeys(request.keys_size(), [&](int i) -> const std::string& {
    return request.keys(i);
  });
  if (refused.ok() && request.timeout_ms() > absl::ToInt64Milliseconds(options_.limits.max_wait)) {
    refused = absl::InvalidArgumentError(absl::StrCat(
        "timeout_ms ", request.timeout_ms(), " is longer than the longest wait allowed (",
        absl::ToInt64Milliseconds(options_.limits.max_wait), " ms: coordinator flag --max-wait-ms)"));
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
    if (pool == nullptr) {
      refused = absl::NotFoundError(
          absl::StrCat("unknown pool '", Printable(PoolName(request.pool()), 64), "'"));
    } else {
      refused = CheckKvGeneration(*pool, request.generation());
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
        const TimerQueue::TimerId timer = Schedule(
            clock_->Now() + absl::Milliseconds(request.timeout_ms()), [this, name, id] {
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

// ---- Admin ----------------------------------------------------------------------------------

absl::StatusOr<v1::InitializeResponse> Coordinator::Initialize(
    const v1::InitializeRequest& request, const Caller& caller) {
  if (absl::Status s = Authorize(caller, Action::kInitialize, PoolName(request.pool()));
      !s.ok()) {
    return s;
  }
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
    return Refuse("enum", absl::InvalidArgumentError(absl::StrCat(
        "unknown init_mode ", init.init_mode(), "; use INIT_MODE_SPLIT or INIT_MODE_PER_GROUP_ID")));
  }
  if (init.deadline_ms() < 0 || init.deadline_ms() > absl::ToInt64Milliseconds(limits.max_wait)) {
    return Refuse("max-wait", absl::InvalidArgumentError(absl::StrCat(
        "deadline_ms ", init.deadline_ms(), " is outside [0, ",
        absl::ToInt64Milliseconds(limits.max_wait),
        "] (0: the coordinator's default; upper limit: coordinator flag --max-wait)")));
  }
  absl::StatusOr<Layout> layout = Layout::Build(config);
  if (!layout.ok()) return layout.status();
  const std::string backend = BackendOf(request.options());
  if (!IsKnownBackend(backend)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown backend '", Printable(backend, 32),
                                                   "'; use gloo, nccl or none"));
  }
  Completions done;
  v1::InitializeResponse response;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Pool*> found = FindOrCreatePool(PoolName(request.pool()), /*create=*/true);
    if (!found.ok()) return found.status();
    Pool& pool = **found;
    if (pool.phases.phase() == v1::POOL_PHASE_INITIALIZING || pool.phases.phase() == v1::POOL_PHASE_READY ||
        pool.phases.phase() == v1::POOL_PHASE_DESTROYING || pool.phases.phase() == v1::POOL_PHASE_RECOVERING) {
      return absl::FailedPreconditionError(absl::StrCat(
          "pool '", pool.name, "' is ", v1::PoolPhase_Name(pool.phases.phase()), " at generation ",
          pool.generation, "; destroy it first (cohortctl destroy)"));
    }
    if (request.keep_pending_config() && pool.phases.phase() == v1::POOL_PHASE_WAITING &&
        pool.config.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "pool '", pool.name, "' already has a config waiting for members: ",
          pool.config->ShortString()));
    }
    for (const auto& [identity, m] : pool.roster.members()) {
      if (m.rank < 0 || m.rank >= layout->world_size() || m.join.backends().empty()) continue;
      const auto& b = m.join.backends();
      if (std::find(b.begin(), b.end(), backend) == b.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "rank ", m.rank, " (", identity, ") cannot drive backend '", backend,
            "'; it offers ", absl::StrJoin(b, ", ")));
      }
    }
    if (pool.world_size != layout->world_size()) pool.world.Drop();
    // An operator's config replaces whatever elastic dp was doing.
    pool.full_config.reset();
    pool.grow_after_teardown = false;
    CancelTimer(pool.elastic_timer);
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
        m.rank = -1;
        m.phase = v1::MEMBER_PHASE_STANDBY;
        pool.roster.ForgetRank(identity);
      }
    }
    PromoteStandbys(pool, "standby promoted");
    SaveState();
    spdlog::info("pool {}: initialize {} ({})", pool.name, pool.config->ShortString(), backend);
    Emit(pool, v1::EVENT_KIND_CONFIGURED, -1, "",
         absl::StrCat(pool.config->ShortString(), " on ", backend));
    response.set_generation(pool.generation + 1);
    Touch(pool, done);
    MaybeStart(pool, done);
    response.set_started(pool.phases.phase() == v1::POOL_PHASE_INITIALIZING);
  }
  Finish(done);
  return response;
}

absl::StatusOr<v1::DestroyResponse> Coordinator::Destroy(const v1::DestroyRequest& request,
                                                         const Caller& caller) {
  if (absl::Status s = Authorize(caller, Action::kDestroy, PoolName(request.pool())); !s.ok()) {
    return s;
  }
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
    const bool world_only = !has_groups && pool->world.alive() &&
                            request.scope() == v1::DESTROY_SCOPE_ALL;
    if (!has_groups && !world_only) {
      return absl::FailedPreconditionError(absl::StrCat(
          "pool '", pool->name, "' has no communicators to destroy (it is ",
          v1::PoolPhase_Name(pool->phases.phase()), ")"));
    }
    const int64_t generation = world_only ? pool->world.generation() : pool->generation;
    pool->teardown.Start(request.scope(), pool->phases.phase() == v1::POOL_PHASE_READY);
    const bool abort = pool->phases.phase() != v1::POOL_PHASE_READY && !world_only;
    CancelTimer(pool->deadline_timer);
    SetPhase(*pool, v1::POOL_PHASE_DESTROYING);
    for (auto& [identity, m] : pool->roster.members()) {
      m.teardown_reported = false;
      if (m.rank < 0 || m.sink == nullptr) continue;
      v1::CoordinatorMessage message;
      v1::Teardown* teardown = message.mutable_teardown();
      teardown->set_generation(generation);
      teardown->set_scope(request.scope());
      teardown->set_abort(abort);
      teardown->set_reason("destroy requested");
      m.sink->Send(message);
    }
    const std::string name = pool->name;
    const int64_t current = pool->generation;
    pool->teardown_timer =
        Schedule(clock_->Now() + options_.teardown_deadline,
                          [this, name, current] { OnTeardownDeadline(name, current); });
    response.set_generation(generation);
    Emit(*pool, v1::EVENT_KIND_DESTROY, -1, "",
         absl::StrCat("destroy ", request.scope() == v1::DESTROY_SCOPE_ALL ? "everything"
                                                                            : "model-parallel groups",
                      abort ? " (abort)" : ""));
    Touch(*pool, done);
    FinishTeardownIfDone(*pool, /*force=*/false, done);
  }
  Finish(done);
  return response;
}

// ---- Attach timers and pool deletion --------------------------------------------------------

TimerQueue::TimerId Coordinator::AfterAttachTimeout(std::function<void()> fn) {
  return Schedule(clock_->Now() + options_.attach_timeout, std::move(fn));
}

void Coordinator::CancelAttachTimer(TimerQueue::TimerId id) { CancelTimer(id); }

absl::Status Coordinator::DeletePool(const std::string& name, bool force,
                                    const Caller& caller) {
  if (absl::Status s = Authorize(caller, Action::kDeletePool, PoolName(name)); !s.ok()) return s;
  Completions done;
  {
    absl::MutexLock lock(&mu_);
    const std::string pool_name = PoolName(name);
    Pool* pool = FindPool(pool_name);
    if (pool == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("unknown pool '", Printable(pool_name, 64), "'"));
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
      if (m.sink != nullptr) m.sink->Close(absl::StrCat("pool '", pool_name, "' was deleted"));
      m.sink = nullptr;
      sessions_.Close(m.session_id);
    }
    CancelTimer(pool->deadline_timer);
    CancelTimer(pool->teardown_timer);
    CancelTimer(pool->recovery_timer);
    CancelTimer(pool->elastic_timer);
    for (auto& fn : pool->kv.Reset(
             absl::AbortedError(absl::StrCat("pool '", pool_name, "' was deleted")))) {
      done.push_back(std::move(fn));
    }
    const absl::Status gone = absl::NotFoundError(absl::StrCat("pool '", pool_name, "' was deleted"));
    for (StateWaiters::Waiter& waiter : pool->state_waiters.TakeAll()) {
      CancelTimer(waiter.timer);
      done.push_back([fn = std::move(waiter.done), gone] { fn(gone); });
    }
    // A PHASE event first: health (cohort.pool.<name>) stops serving the pool.
    if (pool->phases.phase() != v1::POOL_PHASE_DESTROYED) SetPhase(*pool, v1::POOL_PHASE_DESTROYED);
    Emit(*pool, v1::EVENT_KIND_DESTROYED, -1, "", "pool deleted");
    events_.Forget(pool_name);
    pools_.erase(pool_name);
    SaveState();
  }
  Finish(done);
  return absl::OkStatus();
}

}  // namespace cohort::coordinator
