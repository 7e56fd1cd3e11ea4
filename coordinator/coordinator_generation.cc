// Coordinator: generations (start, plans, reports, deadline, failure) and teardowns (reports,
// deadline, the end of a destroy).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_internal.h"
#include "coordinator/plan.h"
#include "spdlog/spdlog.h"

namespace cohort::coordinator {

using internal::BackendOf;

// ---- Generations ----------------------------------------------------------------------------

void Coordinator::MaybeStart(Pool& pool, Completions& out) {
  if (pool.phases.phase() == v1::POOL_PHASE_RECOVERING) {
    TryRecover(pool, /*give_up=*/false, out);
    return;
  }
  if (!pool.config.has_value() || pool.world_size == 0 ||
      (pool.phases.phase() != v1::POOL_PHASE_WAITING &&
       pool.phases.phase() != v1::POOL_PHASE_DEGRADED)) {
    return;
  }
  if (pool.settle_timer != 0) return;  // losses settle; the timer calls again
  if (!pool.roster.MissingRanks(pool.world_size).empty()) return;
  StartGeneration(pool, out);
}

PlanBuilder Coordinator::PlansOf(const Pool& pool) const {
  return PlanBuilder(pool.name, pool.generation, *pool.config, *pool.layout, pool.options,
                     options_.default_init_deadline);
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
  // Rank -> member in one pass (AtRank per rank would be O(world^2): seconds at 16k ranks).
  const std::vector<Member*> by_rank = pool.roster.ByRank(pool.world_size);
  const bool reuse = pool.world.ReusableBy(pool.world_size, [&](int r) -> const std::string* {
    const Member* m = r >= 0 && r < static_cast<int>(by_rank.size()) ? by_rank[r] : nullptr;
    return m != nullptr ? &m->incarnation : nullptr;
  });
  if (!reuse) pool.world.Drop();
  SetPhase(pool, v1::POOL_PHASE_INITIALIZING);
  pool.error.clear();
  pool.build.Start(pool.world_size, clock_->Now());
  PlanBuilder plans = PlansOf(pool);
  for (int r = 0; r < pool.world_size; ++r) {
    Member* m = by_rank[r];
    m->phase = v1::MEMBER_PHASE_INITIALIZING;
    m->report.Clear();
    m->progress.Clear();
    m->error.clear();
    v1::CoordinatorMessage message;
    *message.mutable_plan() = plans.Build(r, m->join.accepts_rank_runs());
    m->backend = message.plan().backend();
    if (reuse) {
      message.mutable_plan()->set_reuse_world(true);
      message.mutable_plan()->set_reuse_world_generation(pool.world.generation());
    }
    m->sink->Send(message);
  }
  const absl::Duration deadline =
      absl::Milliseconds(PlanDeadlineMs(pool.options, options_.default_init_deadline)) +
      absl::Seconds(1);
  const std::string name = pool.name;
  const int64_t generation = pool.generation;
  pool.deadline_timer = Schedule(clock_->Now() + deadline, [this, name, generation] {
    OnGenerationDeadline(name, generation);
  });
  spdlog::info("pool {}: generation {} started: {} ({}, {} ranks{})", pool.name, pool.generation,
               pool.config->ShortString(), BackendOf(pool.options), pool.world_size,
               reuse ? ", reusing the world communicator" : "");
  MarkStateChanged();
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
                   absl::StrCat("generation ", generation,
                                " missed its deadline; ranks not "
                                "READY: ",
                                absl::StrJoin(missing, ", ")),
                   done);
  }
  Finish(done);
}

void Coordinator::FailGeneration(Pool& pool, const std::string& error, Completions& out,
                                 v1::PoolPhase next, const std::string& reason) {
  if (reason == "left") {
    // A planned leave ends the generation without failing it: the LEFT event and the phase
    // event (DEGRADED (left)) say so, and alerts on failed generations stay quiet.
    spdlog::info("pool {}: generation {} ends: {}", pool.name, pool.generation, error);
  } else {
    spdlog::error("pool {}: generation {} failed: {}", pool.name, pool.generation, error);
    Emit(pool, v1::EVENT_KIND_FAILED, -1, "", error);
  }
  SetPhase(pool, next, reason);
  pool.error = error;
  pool.world.Drop();
  CancelTimer(pool.deadline_timer);
  // Agents still waiting on the rendezvous store of this generation stop waiting now.
  for (auto& fn : pool.kv.Reset(
           absl::AbortedError(absl::StrCat("generation ", pool.generation, " failed: ", error)))) {
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

void Coordinator::StartAfterSettle(Pool& pool, Completions& out) {
  if (options_.regroup_settle <= absl::ZeroDuration()) {
    MaybeStart(pool, out);
    return;
  }
  const absl::Time now = clock_->Now();
  if (pool.settle_timer == 0) {
    pool.settle_opened = now;
    spdlog::info("pool {}: next generation in {} at the earliest (losses settle)", pool.name,
                 absl::FormatDuration(options_.regroup_settle));
  } else {
    // A loss inside the open window moves its end, up to the cap counted from the first loss.
    CancelTimer(pool.settle_timer);
  }
  const absl::Time cap =
      pool.settle_opened + std::max(options_.regroup_settle, options_.regroup_settle_max);
  const std::string name = pool.name;
  const uint64_t window = ++settle_windows_;
  pool.settle_window = window;
  pool.settle_timer = Schedule(std::min(now + options_.regroup_settle, cap), [this, name, window] {
    Completions done;
    {
      absl::MutexLock lock(&mu_);
      Pool* p = FindPool(name);
      // Gone (deleted, perhaps made anew), or this window was closed (a destroy, an Initialize)
      // while its callback was already due.
      if (p == nullptr || p->settle_timer == 0 || p->settle_window != window) return;
      p->settle_timer = 0;
      MaybeStart(*p, done);
      if (p->phases.phase() == v1::POOL_PHASE_DEGRADED) {
        spdlog::info("pool {}: losses settled; the next generation waits for {} missing rank(s)",
                     p->name, p->roster.MissingRanks(p->world_size).size());
      }
    }
    Finish(done);
  });
}

void Coordinator::HandleReport(Pool& pool, Member& member, const v1::GenerationReport& report,
                               Completions& out) {
  if (pool.phases.phase() != v1::POOL_PHASE_INITIALIZING) return;  // late, after a failure
  member.report = report;
  member.generation = report.generation();
  if (!report.ok()) {
    member.phase = v1::MEMBER_PHASE_FAILED;
    member.error = report.error();
    FailGeneration(pool,
                   absl::StrCat("rank ", member.rank, " (", member.identity, "): ", report.error()),
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

void Coordinator::HandleTeardownReport(Pool& pool, Member& member, const v1::TeardownReport& report,
                                       Completions& out) {
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
  auto waits = [](const Member& m) {
    return m.rank >= 0 && m.sink != nullptr && !m.teardown_reported;
  };
  // Called at every teardown report: stop at the first member still to report (reports come in
  // any order, so that is a few members in, not all of them: a full pass per report was O(N^2),
  // 9 s of a 4,096-member destroy).
  if (!force && std::any_of(pool.roster.members().begin(), pool.roster.members().end(),
                            [&](const auto& entry) { return waits(entry.second); })) {
    return;
  }
  std::vector<Member*> waiting;
  for (auto& [identity, m] : pool.roster.members()) {
    if (waits(m)) waiting.push_back(&m);
  }
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
    pool.error =
        pool.teardown.Fail(pool.error, absl::StrCat(why, " from ", absl::StrJoin(names, ", ")));
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
  if (std::optional<ParallelConfig> grown = pool.elastic.FinishGrowing(); grown.has_value()) {
    // Elastic dp grows back: the full config, the current ranks kept, standbys fill the rest.
    const ParallelConfig full = *grown;
    pool.config = full;
    pool.layout = *Layout::Build(full);
    pool.world_size = pool.layout->world_size();
    ReassignByHints(pool, "elastic dp grows back");
    Emit(pool, v1::EVENT_KIND_CONFIGURED, -1, "",
         absl::StrCat("elastic dp: grown back to ", full.ShortString()));
    SetPhase(pool, v1::POOL_PHASE_WAITING);
    MarkStateChanged();
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

}  // namespace cohort::coordinator
