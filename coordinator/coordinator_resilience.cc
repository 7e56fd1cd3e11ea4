// Coordinator: what keeps a pool alive through failures — standby promotion and refill, aborting
// what members hold, elastic dp, recovery after a coordinator restart, and the state file.
#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cohort/v1/state.pb.h"
#include "common/layout_proto.h"
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_internal.h"
#include "coordinator/elastic_dp.h"
#include "coordinator/recovery.h"
#include "coordinator/state_file.h"
#include "spdlog/spdlog.h"

namespace cohort::coordinator {

using internal::PoolName;

void Coordinator::GiveRank(Pool& pool, Member& m, int rank, const std::string& why) {
  if (m.rank == rank) return;
  pool.roster.SetRank(m, rank);
  m.phase = rank >= 0 ? v1::MEMBER_PHASE_JOINED : v1::MEMBER_PHASE_STANDBY;
  if (rank >= 0) {
    pool.roster.RememberRank(m.identity, rank);
  } else {
    pool.roster.ForgetRank(m.identity);
  }
  if (m.sink != nullptr) {
    v1::CoordinatorMessage message;
    message.mutable_rank_assignment()->set_rank(rank);
    m.sink->Send(message);
  }
  Emit(pool, v1::EVENT_KIND_RANK_ASSIGNED, rank, m.identity, why);
}

void Coordinator::PromoteStandbys(Pool& pool, const std::string& why) {
  for (const auto& [identity, rank] : pool.roster.PlanPromotions(pool.world_size)) {
    GiveRank(pool, *pool.roster.Find(identity), rank, why);
  }
}

void Coordinator::ReassignByHints(Pool& pool, const std::string& why) {
  const std::map<std::string, int> chosen = pool.roster.PlanReassignment(pool.world_size);
  // Members that are gone hold no rank in the rebuilt world.
  for (auto& [identity, m] : pool.roster.members()) {
    if (m.sink == nullptr && m.rank >= 0) {
      pool.roster.SetRank(m, -1);
      m.phase = v1::MEMBER_PHASE_LEFT;
      pool.roster.ForgetRank(identity);
    }
  }
  // Two passes so that no rank is ever held by two members in between.
  for (const auto& [identity, r] : chosen) {
    Member& m = *pool.roster.Find(identity);
    if (m.rank != r && r < 0) GiveRank(pool, m, r, why);
  }
  for (const auto& [identity, r] : chosen) {
    Member& m = *pool.roster.Find(identity);
    if (m.rank != r && r >= 0) GiveRank(pool, m, r, why);
  }
}

void Coordinator::AbortHeld(Pool& pool, Member& member, const std::string& reason) {
  if (member.sink != nullptr) {
    v1::CoordinatorMessage message;
    v1::Teardown* teardown = message.mutable_teardown();
    teardown->set_generation(member.held.generation());
    teardown->set_scope(v1::DESTROY_SCOPE_ALL);
    teardown->set_abort(true);
    teardown->set_reason(reason);
    member.sink->Send(message);
    Emit(pool, v1::EVENT_KIND_ABORT, member.rank, member.identity, reason);
  }
  member.held.Clear();
}

void Coordinator::RefillFromStandby(Pool& pool, Member& lost, Completions& out) {
  if (!options_.refill_from_standby || lost.rank < 0 || lost.sink != nullptr) return;
  Member* standby = pool.roster.EarliestStandby();
  if (standby == nullptr) return;
  const int rank = lost.rank;
  pool.roster.SetRank(lost, -1);
  lost.phase = v1::MEMBER_PHASE_LEFT;
  spdlog::info("pool {}: standby {} takes rank {} of {}", pool.name, standby->identity, rank,
               lost.identity);
  GiveRank(pool, *standby, rank, absl::StrCat("standby takes the rank of ", lost.identity));
  MarkStateChanged();
  Touch(pool, out);
}

void Coordinator::ShrinkDp(Pool& pool, Completions& out) {
  const ParallelConfig config = *pool.config;
  absl::StatusOr<DpShrink> shrink =
      cohort::coordinator::ShrinkDp(config, pool.roster.MissingRanks(pool.world_size));
  if (!shrink.ok()) {
    spdlog::warn("pool {}: elastic dp cannot shrink {}: {}", pool.name, config.ShortString(),
                 std::string(shrink.status().message()));
    return;
  }
  const ParallelConfig& smaller = shrink->config;
  // Members of a dropped replica wait as standbys; the others move to their new ranks.
  for (auto& [identity, m] : pool.roster.members()) {
    if (m.rank < 0) continue;
    auto it = shrink->new_rank.find(m.rank);
    if (it == shrink->new_rank.end()) {
      pool.roster.SetRank(m, -1);
      m.phase = m.sink != nullptr ? v1::MEMBER_PHASE_STANDBY : v1::MEMBER_PHASE_LEFT;
      pool.roster.ForgetRank(identity);
      if (m.sink != nullptr) {
        v1::CoordinatorMessage message;
        message.mutable_rank_assignment()->set_rank(-1);  // now a standby
        m.sink->Send(message);
      }
      continue;
    }
    const int rank = it->second;
    if (rank != m.rank && m.sink != nullptr) {
      v1::CoordinatorMessage message;
      message.mutable_rank_assignment()->set_rank(rank);
      m.sink->Send(message);
    }
    pool.roster.SetRank(m, rank);
    pool.roster.RememberRank(identity, rank);
  }
  pool.elastic.Shrunk(config);
  const std::string before = config.ShortString();
  pool.config = smaller;
  pool.layout = *Layout::Build(smaller);
  pool.world_size = pool.layout->world_size();
  spdlog::warn("pool {}: elastic dp: {} -> {} (replicas lost: {})", pool.name, before,
               smaller.ShortString(), shrink->replicas_dropped);
  Emit(pool, v1::EVENT_KIND_CONFIGURED, -1, "",
       absl::StrCat("elastic dp: shrunk ", before, " to ", smaller.ShortString()));
  SetPhase(pool, v1::POOL_PHASE_WAITING);
  MarkStateChanged();
  Touch(pool, out);
  MaybeStart(pool, out);
}

void Coordinator::MaybeGrowDp(Pool& pool, Completions& out) {
  if (pool.phases.phase() != v1::POOL_PHASE_READY) return;
  int available = 0;
  for (const auto& [identity, m] : pool.roster.members()) available += m.sink != nullptr;
  if (!pool.elastic.ShouldGrow(available)) return;
  spdlog::info("pool {}: elastic dp: {} agents available, growing back to {}", pool.name, available,
               pool.elastic.full_config()->ShortString());
  pool.elastic.StartGrowing();
  pool.teardown.Start(v1::DESTROY_SCOPE_ALL, /*from_ready=*/true, "elastic dp grows back");
  SetPhase(pool, v1::POOL_PHASE_DESTROYING);
  for (auto& [identity, m] : pool.roster.members()) {
    m.teardown_reported = false;
    if (m.rank < 0 || m.sink == nullptr) continue;
    v1::CoordinatorMessage message;
    message.mutable_teardown()->set_generation(pool.generation);
    message.mutable_teardown()->set_scope(v1::DESTROY_SCOPE_ALL);
    message.mutable_teardown()->set_reason(pool.teardown.reason());
    m.sink->Send(message);
  }
  Emit(pool, v1::EVENT_KIND_DESTROY, -1, "", "elastic dp grows back: rebuilding the full world");
  Touch(pool, out);
}

absl::Status Coordinator::ValidateHeld(const v1::HeldState& held) const {
  auto refuse = [&](const std::string& what) {
    return absl::InvalidArgumentError(
        absl::StrCat("held state refused: ", what,
                     "; an agent reports only what it really holds (restart "
                     "the agent without communicators to join fresh)"));
  };
  if (held.world_size() < 1 || held.world_size() > kMaxWorldSize) {
    return refuse(
        absl::StrCat("world_size ", held.world_size(), " is outside [1, ", kMaxWorldSize, "]"));
  }
  if (held.rank() < 0 || held.rank() >= held.world_size()) {
    return refuse(
        absl::StrCat("rank ", held.rank(), " is outside the world of ", held.world_size()));
  }
  if (held.generation() < 1) {
    return refuse(absl::StrCat("generation ", held.generation(), " was never built"));
  }
  if (held.has_config()) {
    const ParallelConfig config = FromProto(held.config());
    if (absl::StatusOr<DerivedSizes> valid = ValidateParallelConfig(config); !valid.ok()) {
      return refuse(absl::StrCat("its config is invalid: ", valid.status().message()));
    }
    if (config.world_size != held.world_size()) {
      return refuse(absl::StrCat("world_size ", held.world_size(), " differs from its config's ",
                                 config.world_size));
    }
  }
  return absl::OkStatus();
}

void Coordinator::StartRecovery(Pool& pool) {
  // Agents that joined this unknown pool before the first holder did hold nothing: they wait
  // as standbys, so that every held rank stays free for its holder.
  for (auto& [identity, m] : pool.roster.members()) {
    if (m.rank < 0 || m.held.holding()) continue;
    spdlog::info("pool {}: {} holds nothing; it waits as a standby while the pool recovers",
                 pool.name, identity);
    GiveRank(pool, m, -1, "standby while the pool recovers (holds nothing)");
  }
  SetPhase(pool, v1::POOL_PHASE_RECOVERING);
  const std::string name = pool.name;
  pool.recovery_timer = Schedule(clock_->Now() + options_.attach_timeout, [this, name] {
    Completions done;
    {
      absl::MutexLock lock(&mu_);
      Pool* p = FindPool(name);
      if (p == nullptr || p->phases.phase() != v1::POOL_PHASE_RECOVERING) return;
      p->recovery_timer = 0;
      TryRecover(*p, /*give_up=*/true, done);
    }
    Finish(done);
  });
}

void Coordinator::TryRecover(Pool& pool, bool give_up, Completions& out) {
  // Adopt the held config (and its world) of the first holder when the state file had none.
  for (auto& [identity, m] : pool.roster.members()) {
    if (!m.held.holding() || pool.config.has_value() || !m.held.has_config()) continue;
    absl::StatusOr<Layout> layout = Layout::Build(FromProto(m.held.config()));
    if (!layout.ok()) continue;
    pool.config = FromProto(m.held.config());
    pool.layout = *std::move(layout);
    pool.world_size = pool.layout->world_size();
    pool.options.set_backend(m.held.backend());
    pool.options.set_init_mode(m.held.init_mode());
  }
  if (pool.layout.has_value()) pool.world_size = pool.layout->world_size();
  // Once the world is known, a rank outside it makes a standby (e.g. a rank hint given before).
  for (auto& [identity, m] : pool.roster.members()) {
    if (m.rank < pool.world_size || pool.world_size == 0) continue;
    GiveRank(pool, m, -1, absl::StrCat("standby: outside the world of ", pool.world_size));
  }
  const bool complete = pool.world_size > 0 && pool.roster.MissingRanks(pool.world_size).empty();
  if (!complete && !give_up) return;
  CancelTimer(pool.recovery_timer);

  // The rule (recovery.h): restored only if every rank is back and all hold the same thing;
  // otherwise every holder aborts and the next generation starts after the highest reported.
  const RecoveryVerdict verdict =
      JudgeRecovery(pool.roster, pool.world_size, complete, pool.config, pool.generation);
  const int64_t highest = verdict.highest_generation;
  const std::vector<std::string>& reports = verdict.reports;
  if (verdict.restore.has_value()) {
    const std::optional<v1::HeldState>& reference = verdict.restore;
    pool.generation = reference->generation();
    const std::vector<Member*> by_rank = pool.roster.ByRank(pool.world_size);
    for (int r = 0; r < pool.world_size; ++r) {
      Member* m = by_rank[r];
      m->generation = pool.generation;
      m->backend = m->held.backend();
      if (!reference->world_only()) {
        m->phase = v1::MEMBER_PHASE_READY;
        m->report.Clear();
        m->report.set_generation(pool.generation);
        m->report.set_ok(true);
        *m->report.mutable_groups() = m->held.groups();
      }
      m->held.Clear();
    }
    // A holder that did not get a rank back (its rank belongs to another) holds leftovers.
    for (auto& [identity, m] : pool.roster.members()) {
      if (m.rank < 0 && m.held.holding()) {
        AbortHeld(pool, m, "coordinator recovery: this agent's rank belongs to another member");
      }
    }
    if (reference->world_only()) {
      std::map<int, std::string> incarnations;
      for (int r = 0; r < pool.world_size; ++r) incarnations[r] = by_rank[r]->incarnation;
      pool.world.Keep(pool.generation, std::move(incarnations));
      SetPhase(pool, v1::POOL_PHASE_DESTROYED);
    } else {
      SetPhase(pool, v1::POOL_PHASE_READY);
    }
    spdlog::info("pool {}: recovered at generation {} from {} members, nothing rebuilt", pool.name,
                 pool.generation, pool.world_size);
    Emit(pool, v1::EVENT_KIND_RECOVERED, -1, "",
         absl::StrCat("restored generation ", pool.generation, " from the members' reports"));
    MarkStateChanged();
    Touch(pool, out);
    return;
  }
  const std::string why =
      !complete ? absl::StrCat("not every rank came back within ",
                               absl::FormatDuration(options_.attach_timeout))
                : absl::StrCat("conflicting reports (", absl::StrJoin(reports, "; "), ")");
  spdlog::warn("pool {}: cannot restore: {}; aborting what members hold", pool.name, why);
  for (auto& [identity, m] : pool.roster.members()) {
    if (m.held.holding()) AbortHeld(pool, m, absl::StrCat("coordinator recovery: ", why));
  }
  pool.generation = highest;
  SetPhase(pool, v1::POOL_PHASE_WAITING);
  Emit(pool, v1::EVENT_KIND_FAILED, -1, "", absl::StrCat("recovery: ", why));
  // Recovery is over: standbys that waited for it fill the ranks nobody came back for.
  PromoteStandbys(pool, "standby promoted after recovery");
  Touch(pool, out);
  MaybeStart(pool, out);
}

void Coordinator::MarkStateChanged() {
  if (persister_ != nullptr) persister_->MarkDirty();
}

std::optional<v1::DurableState> Coordinator::DurableSnapshot() const {
  v1::DurableState state;
  for (const auto& [name, pool] : pools_) {
    // Never write what StateFile::Load would refuse (it would stop the next start): names it
    // cannot hold, and ranks outside the world or held twice (a stale entry of an identity
    // that is gone) are left out. A member that has the rank now wins it.
    if (name.empty() || name.size() > StateFile::kMaxNameLength) {
      spdlog::warn("state store {}: pool name of {} bytes not saved", store_->Describe(),
                   name.size());
      continue;
    }
    v1::DurablePool* p = state.add_pools();
    p->set_name(name);
    if (pool.config.has_value()) *p->mutable_config() = ToProto(*pool.config);
    *p->mutable_options() = pool.options;
    // The config's world (0 without one), as Load requires.
    const int64_t world = pool.config.has_value() ? pool.config->world_size : 0;
    p->set_world_size(static_cast<int32_t>(world));
    p->set_generation(pool.generation);
    std::map<int, std::string> holder;  // rank -> identity
    for (const auto& [identity, rank] : pool.roster.durable_ranks()) {
      const bool in_world = rank >= 0 && rank < (world > 0 ? world : kMaxWorldSize);
      if (identity.empty() || identity.size() > StateFile::kMaxNameLength || !in_world) continue;
      auto [it, inserted] = holder.emplace(rank, identity);
      if (inserted) continue;
      auto member = pool.roster.members().find(identity);
      if (member != pool.roster.members().end() && member->second.rank == rank)
        it->second = identity;
    }
    for (const auto& [rank, identity] : holder) (*p->mutable_ranks())[identity] = rank;
  }
  if (absl::Status valid = StateFile::Validate(state); !valid.ok()) {
    spdlog::error("state store {}: not written, the state would not load back: {}",
                  store_->Describe(), std::string(valid.message()));
    return std::nullopt;
  }
  return state;
}

void Coordinator::Finish(Completions& completions, Durability durability) {
  RunAll(completions);
  // Outside mu_: the snapshot takes it briefly, the store's Save (fsync, rename) runs unlocked.
  if (persister_ == nullptr) return;
  if (durability == Durability::kDurable) {
    persister_->Flush();
  } else {
    persister_->WriteIfDirty();
  }
}

void Coordinator::FlushState() {
  if (persister_ != nullptr) persister_->Flush();
}

int64_t Coordinator::StateSaves() const { return persister_ != nullptr ? persister_->saves() : 0; }

void Coordinator::LoadState() {
  if (store_ == nullptr) return;
  // CoordinatorServer::Start refused a bad file (or moved it aside) before building us; a
  // Coordinator built directly over a bad store leaves it alone and does not persist.
  absl::StatusOr<v1::DurableState> state = store_->Load();
  if (!state.ok()) {
    spdlog::error("{}; starting empty and not writing the state file",
                  std::string(state.status().message()));
    return;
  }
  persister_ = std::make_unique<StatePersister>(store_.get(), [this] {
    absl::MutexLock lock(&mu_);
    return DurableSnapshot();
  });
  for (const v1::DurablePool& p : state->pools()) {
    // Validated: a config builds and its world is the pool's; ranks are inside it.
    Pool& pool = GetOrCreatePool(p.name());
    if (p.has_config()) {
      absl::StatusOr<Layout> layout = Layout::Build(FromProto(p.config()));
      if (layout.ok()) {
        pool.config = FromProto(p.config());
        pool.layout = *std::move(layout);
      }
    }
    pool.options = p.options();
    pool.world_size = pool.layout.has_value() ? pool.layout->world_size() : 0;
    pool.generation = p.generation();
    for (const auto& [identity, rank] : p.ranks()) pool.roster.LoadRank(identity, rank);
    // Members that hold communicators report back; until then the pool is RECOVERING.
    StartRecovery(pool);
    spdlog::info("pool {}: loaded from {} (generation {}, {} known ranks); recovering", pool.name,
                 store_->Describe(), pool.generation, pool.roster.durable_ranks().size());
  }
}

}  // namespace cohort::coordinator
