// Coordinator: agent sessions — Join, Attach, Detach, the messages agents send, losing a member
// and the heartbeat sweep.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "coordinator/agent_input.h"
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_internal.h"
#include "spdlog/spdlog.h"

namespace cohort::coordinator {

using internal::PoolName;

absl::StatusOr<v1::JoinResponse> Coordinator::Join(const v1::JoinRequest& request,
                                                   const Caller& caller) {
  if (absl::Status s = Authorize(caller, Action::kJoin, PoolName(request.pool())); !s.ok()) {
    return s;
  }
  // The identity is bound to the credential: a principal joins only as the identities the
  // policy gives it.
  if (absl::Status s = authorizer_->AuthorizeJoinIdentity(caller, request.identity()); !s.ok()) {
    return Denied(caller, Action::kJoin, PoolName(request.pool()), std::move(s));
  }
  const std::string principal = authorizer_->Identify(caller).subject;
  if (std::optional<Refusal> refused = CheckJoinRequest(request, options_.limits);
      refused.has_value()) {
    return Refuse(refused->check, refused->status);
  }
  Completions done;
  v1::JoinResponse response;
  {
    absl::MutexLock lock(&mu_);
    // A stopping coordinator admits nobody: the agent's join retry treats UNAVAILABLE as
    // transient and joins its successor.
    if (stopping_) return absl::UnavailableError(kCoordinatorRestarting);
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
      // else — another incarnation, or a client that learned or guessed the identity and
      // incarnation (GetState no longer shows incarnations) — is refused while the session lives.
      if (member->sink != nullptr && (member->incarnation != request.incarnation() ||
                                      request.previous_session_id() != member->session_id)) {
        // Incarnations are not shown: they are not for other callers to learn.
        const bool same = member->incarnation == request.incarnation();
        const std::string why = absl::StrCat(
            "identity '", request.identity(), "' is held by a live agent (",
            same ? "this incarnation, but the join does not name its current session"
                 : "another incarnation",
            ", rank ", member->rank, ") in pool '", pool_name,
            "'; give each agent its own identity, or retry once the old agent is gone");
        Emit(*pool, v1::EVENT_KIND_REFUSED, member->rank, request.identity(),
             absl::StrCat("join refused: ", why));
        return absl::AlreadyExistsError(why);
      }
      if (member->sink != nullptr) {
        // The same process joining again (e.g. after a transport break we have not noticed):
        // the new session supersedes the old one.
        member->sink->Close(absl::AbortedError("superseded by a new session of the same agent"));
        member->sink = nullptr;
      }
      sessions_.Close(member->session_id);
      spdlog::info("pool {}: {} rejoins as incarnation {} (rank {})", pool_name, request.identity(),
                   request.incarnation(), member->rank);
    } else {
      if (static_cast<int>(pool->roster.members().size()) >= options_.limits.max_members_per_pool) {
        return Refuse(
            "max-members-per-pool",
            LimitExceeded(absl::StrCat("pool '", pool_name, "' has ", pool->roster.members().size(),
                                       " members and standbys"),
                          options_.limits.max_members_per_pool, "max-members-per-pool"));
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
        pool->roster.SetRank(*member, pool->roster.RecoveryRank(request, pool->world_size));
      } else {
        std::optional<int> hint;
        if (request.has_rank_hint() && request.rank_hint() >= 0) hint = request.rank_hint();
        // What the agent holds beats the state file, which beats its hint.
        if (auto it = pool->roster.durable_ranks().find(request.identity());
            it != pool->roster.durable_ranks().end()) {
          hint = it->second;
        }
        if (request.held().holding()) hint = request.held().rank();
        pool->roster.SetRank(*member, pool->roster.FreeRank(hint, pool->world_size));
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
    const bool still_ready =
        member->phase == v1::MEMBER_PHASE_READY && member->incarnation == request.incarnation() &&
        pool->phases.phase() == v1::POOL_PHASE_READY && request.held().holding() &&
        request.held().generation() == pool->generation;
    // Otherwise a member of the running generation that comes back without it lost it: the
    // generation fails like on any loss, so the pool is never READY with a member that is not.
    if (!still_ready && member->rank >= 0 &&
        (pool->phases.phase() == v1::POOL_PHASE_READY ||
         pool->phases.phase() == v1::POOL_PHASE_INITIALIZING) &&
        (member->phase == v1::MEMBER_PHASE_READY ||
         member->phase == v1::MEMBER_PHASE_INITIALIZING)) {
      LoseMember(
          *pool, *member,
          absl::StrCat("rejoined without the communicators of generation ", pool->generation),
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
    member->session_id = sessions_.Open(pool_name, request.identity(), principal);
    if (!still_ready) {
      member->phase = member->rank >= 0 ? v1::MEMBER_PHASE_JOINED : v1::MEMBER_PHASE_STANDBY;
    }
    member->ever_attached = false;
    member->error.clear();
    // Events show no incarnation: watchers are not to learn it.
    Emit(*pool, v1::EVENT_KIND_JOINED, member->rank, member->identity,
         absl::StrCat(member->rank >= 0 ? absl::StrCat("rank ", member->rank) : "standby",
                      member->held.holding()
                          ? absl::StrCat(", holding generation ", member->held.generation())
                          : ""));
    if (member->rank >= 0) pool->roster.RememberRank(member->identity, member->rank);
    MarkStateChanged();
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
        p->roster.Remove(m->identity);
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
  std::optional<std::string> principal;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError(kCoordinatorRestarting);
    if (const SessionTable::Owner* owner = sessions_.Find(session_id); owner != nullptr) {
      pool_name = owner->pool;
      principal = owner->principal;
    }
  }
  // An unknown session is refused below, as before, once the caller may join at all.
  if (absl::Status s = Authorize(caller, Action::kJoin, PoolName(pool_name)); !s.ok()) return s;
  // The session is bound to the credential that joined: its id alone is not enough.
  if (principal.has_value() && !caller.in_process &&
      *principal != authorizer_->Identify(caller).subject) {
    return Denied(caller, Action::kJoin, PoolName(pool_name),
                  absl::PermissionDeniedError(
                      "this session was opened by another principal; attach with the credential "
                      "that joined (a session id alone does not attach)"));
  }
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
    if (member->held.holding() && !still_ready &&
        pool->phases.phase() != v1::POOL_PHASE_RECOVERING) {
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
                             Completions& out, Departure departure) {
  // A session that ends because this coordinator is stopping is no loss: the agent keeps its
  // communicators and joins the next coordinator, which restores the pool from the state file.
  if (stopping_) return;
  const bool left = departure == Departure::kLeft;
  if (left) {
    spdlog::info("pool {}: {} ({}) leaves: {}", pool.name, member.identity,
                 member.rank >= 0 ? absl::StrCat("rank ", member.rank) : "standby", reason);
    Emit(pool, v1::EVENT_KIND_LEFT, member.rank, member.identity,
         absl::StrCat("planned leave: ", reason));
  } else {
    spdlog::warn("pool {}: {} (rank {}) lost: {}", pool.name, member.identity, member.rank, reason);
    Emit(pool, v1::EVENT_KIND_MEMBER_LOST, member.rank, member.identity, reason);
  }
  if (member.rank < 0) {
    pool.roster.Remove(member.identity);  // standbys hold nothing worth remembering
    Touch(pool, out);
    return;
  }
  // A member that left keeps its record (and its rank, for when its pod comes back), as LEFT.
  member.phase = left ? v1::MEMBER_PHASE_LEFT : v1::MEMBER_PHASE_FAILED;
  member.error = left ? absl::StrCat("left: ", reason) : reason;
  const std::string what = absl::StrCat("rank ", member.rank, " (", member.identity, ") ",
                                        left ? "left" : "was lost", ": ", reason);
  switch (pool.phases.phase()) {
    case v1::POOL_PHASE_INITIALIZING:
    case v1::POOL_PHASE_READY:
      FailGeneration(pool, what, out, v1::POOL_PHASE_DEGRADED, left ? "left" : "lost");
      RefillFromStandby(pool, member, out);
      if (options_.elastic_dp_after > absl::ZeroDuration() && pool.config.has_value() &&
          pool.config->data_parallel_size > 1) {
        CancelTimer(pool.elastic_timer);
        const std::string name = pool.name;
        const int64_t generation = pool.generation;
        pool.elastic_timer =
            Schedule(clock_->Now() + options_.elastic_dp_after, [this, name, generation] {
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
      StartAfterSettle(pool, out);
      break;
    case v1::POOL_PHASE_DEGRADED:
      RefillFromStandby(pool, member, out);
      StartAfterSettle(pool, out);
      break;
    case v1::POOL_PHASE_DESTROYING:
      // A member that had reported its teardown released everything before it went; one that
      // leaves tears everything down on its way out.
      if (!member.teardown_reported && left) {
        member.teardown_reported = true;
      } else if (!member.teardown_reported) {
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
    const v1::AgentMessage& message = raw.kind_case() == v1::AgentMessage::kHeartbeat ? raw : clean;
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
          std::string broken;  // the first group that went into error
          for (const v1::GroupReport& changed : message.group_states().groups()) {
            bool known = false;
            for (v1::GroupReport& g : *member->report.mutable_groups()) {
              if (g.kind() == changed.kind() && g.index() == changed.index()) {
                g = changed;
                known = true;
              }
            }
            if (!known) continue;
            const std::string what =
                absl::StrCat(v1::GroupKind_Name(changed.kind()), " ", changed.index(), ": ",
                             v1::CommState_Name(changed.state()),
                             changed.error().empty() ? "" : " error: ", changed.error(),
                             changed.async_error().empty() ? "" : " ", changed.async_error());
            Emit(*pool, v1::EVENT_KIND_GROUP_STATE, member->rank, member->identity, what);
            if (changed.state() == v1::COMM_STATE_ERROR && broken.empty()) broken = what;
          }
          // A communicator in error (NCCL's asynchronous error: a peer's network or process
          // failed, or a failed op) cannot be used again: the generation is over. Every member
          // aborts, and the next generation forms at once with the same members. (An abort the
          // engine made itself, COMM_STATE_ABORTED, is its own business.)
          if (!broken.empty() && pool->phases.phase() == v1::POOL_PHASE_READY) {
            FailGeneration(*pool,
                           absl::StrCat("rank ", member->rank, " (", member->identity,
                                        ") reports a communicator in error: ", broken),
                           done, v1::POOL_PHASE_DEGRADED, "communicator error");
            MaybeStart(*pool, done);
          }
          Touch(*pool, done);
        }
        break;
      case v1::AgentMessage::kReport:
        if (message.report().generation() != pool->generation) {
          status = absl::AbortedError(
              absl::StrCat("report for generation ", message.report().generation(), " but pool '",
                           pool->name, "' is at generation ", pool->generation, "; ignored"));
          break;
        }
        // Only a member planned into this generation reports on it (not a standby, not a
        // member that already reported).
        if (member->rank < 0 || member->phase != v1::MEMBER_PHASE_INITIALIZING) {
          status = absl::FailedPreconditionError(
              absl::StrCat("report for generation ", pool->generation, " from ",
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
              "teardown report for generation ", message.teardown().generation(), " but pool '",
              pool->name, "' is at generation ", pool->generation, "; ignored"));
          break;
        }
        if (member->rank < 0) {
          status = absl::FailedPreconditionError(
              "teardown report from a standby, which was told to tear nothing down; ignored");
          break;
        }
        HandleTeardownReport(*pool, *member, message.teardown(), done);
        break;
      case v1::AgentMessage::kLeave: {
        // A planned leave: the session ends here, answered, and the member is recorded as LEFT.
        v1::CoordinatorMessage closed;
        closed.mutable_closed()->set_reason(
            absl::StrCat("left pool '", pool->name, "': ", message.leave().reason()));
        member->sink->Send(closed);
        member->sink->Close(absl::OkStatus());
        member->sink = nullptr;
        sessions_.Close(session_id);
        LoseMember(*pool, *member,
                   message.leave().reason().empty() ? "no reason given" : message.leave().reason(),
                   done, Departure::kLeft);
        break;
      }
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

void Coordinator::SweepHeartbeats() { Sweep(clock_->Now()); }

void Coordinator::Sweep(absl::Time due) {
  Completions done;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    // Read under the lock: the wait for it is part of the lateness.
    const absl::Time now = clock_->Now();
    const absl::Duration late = now - due;
    const absl::Duration limit = heartbeats_.window();
    if (heartbeats_.StartSweep(now, late)) {
      // The coordinator's own absence is not the agents' fault (heartbeat_monitor.h).
      spdlog::warn(
          "heartbeat sweep ran {} late (the coordinator was not running, or busy under its lock); "
          "every member "
          "gets a full heartbeat window ({}) before it can be declared lost",
          absl::FormatDuration(late), absl::FormatDuration(limit));
    }
    for (auto& [name, pool] : pools_) {
      std::vector<Member*> stale;
      for (auto& [identity, m] : pool.roster.members()) {
        if (m.sink != nullptr && heartbeats_.Overdue(m.last_heartbeat, now)) stale.push_back(&m);
      }
      for (Member* m : stale) {
        m->sink->Close(absl::AbortedError("missed heartbeats"));
        m->sink = nullptr;
        sessions_.Close(m->session_id);
        LoseMember(pool, *m,
                   absl::StrCat("no heartbeat for ", absl::FormatDuration(now - m->last_heartbeat)),
                   done);
      }
    }
  }
  Finish(done);
}

void Coordinator::BeginShutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    stopping_flag_.store(true);
    spdlog::info("coordinator stopping: admitting nobody, saving the state, closing sessions");
  }
  // Every change made before is saved; none is made after (stopping_).
  FlushState();
  Completions done;
  {
    absl::MutexLock lock(&mu_);
    // Watchers and long-polls end now, with UNAVAILABLE "coordinator restarting", instead of
    // holding the server's shutdown until its grace deadline; their callers ask the next one.
    const absl::Status restarting = absl::UnavailableError(kCoordinatorRestarting);
    events_.CloseWatchers(restarting);
    for (auto& [name, pool] : pools_) {
      for (StateWaiters::Waiter& waiter : pool.state_waiters.TakeAll()) {
        CancelTimer(waiter.timer);
        done.push_back([fn = std::move(waiter.done), restarting] { fn(restarting); });
      }
      // Rendezvous waits too (a generation being built cannot finish here any more).
      for (auto& fn : pool.kv.Reset(restarting)) done.push_back(std::move(fn));
    }
    for (auto& [name, pool] : pools_) {
      for (auto& [identity, m] : pool.roster.members()) {
        if (m.sink == nullptr) continue;
        // UNAVAILABLE, as for a join during the drain: the agent keeps its communicators and
        // joins the successor at once.
        m.sink->Close(absl::UnavailableError(kCoordinatorRestarting));
        m.sink = nullptr;
        sessions_.Close(m.session_id);
      }
    }
  }
  Finish(done);
}

}  // namespace cohort::coordinator
