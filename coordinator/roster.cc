#include "coordinator/roster.h"

#include <algorithm>
#include <cassert>
#include <iterator>

namespace cohort::coordinator {
namespace {

template <typename Counts>
bool IsFree(const Counts& taken, int r) {
  return static_cast<size_t>(r) >= taken.size() || !taken[r];
}

void Take(std::vector<bool>& taken, int r) {
  if (static_cast<size_t>(r) >= taken.size()) taken.resize(r + 1, false);
  taken[r] = true;
}

// FreeRank over a set of taken ranks (vector<bool>, or counts of holders).
template <typename Counts>
int FreeRankIn(const Counts& taken, std::optional<int> hint, int world) {
  if (hint.has_value() && *hint >= 0 && (world == 0 || *hint < world) && IsFree(taken, *hint)) {
    return *hint;
  }
  for (int r = 0; world == 0 || r < world; ++r) {
    if (IsFree(taken, r)) return r;
  }
  return -1;  // standby
}

}  // namespace

std::optional<int> HintOf(const v1::JoinRequest& join, int world) {
  if (!join.has_rank_hint() || join.rank_hint() < 0 || join.rank_hint() >= world) {
    return std::nullopt;
  }
  return join.rank_hint();
}

Member* Roster::Find(const std::string& identity) {
  auto it = members_.find(identity);
  return it == members_.end() ? nullptr : &it->second;
}

void Roster::SetRank(Member& m, int rank) {
  if (m.rank == rank) return;
  if (m.rank >= 0 && static_cast<size_t>(m.rank) < holders_.size()) --holders_[m.rank];
  m.rank = rank;
  if (rank >= 0) {
    if (static_cast<size_t>(rank) >= holders_.size()) holders_.resize(rank + 1, 0);
    ++holders_[rank];
  }
}

void Roster::Remove(const std::string& identity) {
  auto it = members_.find(identity);
  if (it == members_.end()) return;
  SetRank(it->second, -1);
  members_.erase(it);
}

bool Roster::IndexIsTrue() const {
  std::vector<int> counts(holders_.size(), 0);
  for (const auto& [identity, m] : members_) {
    if (m.rank < 0) continue;
    if (static_cast<size_t>(m.rank) >= counts.size()) return false;
    ++counts[m.rank];
  }
  return counts == holders_;
}

Member* Roster::AtRank(int rank) {
  for (auto& [identity, m] : members_) {
    if (m.rank == rank) return &m;
  }
  return nullptr;
}

const Member* Roster::AtRank(int rank) const {
  for (const auto& [identity, m] : members_) {
    if (m.rank == rank) return &m;
  }
  return nullptr;
}

std::vector<Member*> Roster::ByRank(int world) {
  std::vector<Member*> by_rank(std::max(world, 0), nullptr);
  for (auto& [identity, m] : members_) {
    if (m.rank >= 0 && m.rank < world && by_rank[m.rank] == nullptr) by_rank[m.rank] = &m;
  }
  return by_rank;
}

std::vector<const Member*> Roster::ByRank(int world) const {
  std::vector<const Member*> by_rank(std::max(world, 0), nullptr);
  for (const auto& [identity, m] : members_) {
    if (m.rank >= 0 && m.rank < world && by_rank[m.rank] == nullptr) by_rank[m.rank] = &m;
  }
  return by_rank;
}

std::vector<bool> Roster::Taken() const {
  std::vector<bool> taken(holders_.size());
  for (size_t r = 0; r < holders_.size(); ++r) taken[r] = holders_[r] > 0;
  return taken;
}

int Roster::FreeRank(std::optional<int> hint, int world) const {
  assert(IndexIsTrue() && "a member's rank was written past Roster::SetRank");
  return FreeRankIn(holders_, hint, world);
}

std::vector<int> Roster::MissingRanks(int world) const {
  std::vector<bool> present(world, false);
  for (const auto& [identity, m] : members_) {
    if (m.rank >= 0 && m.rank < world && m.sink != nullptr) present[m.rank] = true;
  }
  std::vector<int> missing;
  for (int r = 0; r < world; ++r) {
    if (!present[r]) missing.push_back(r);
  }
  return missing;
}

int Roster::RecoveryRank(const v1::JoinRequest& request, int world) const {
  const std::string& identity = request.identity();
  auto in_world = [world](int r) { return r >= 0 && (world == 0 || r < world); };
  // A rank is claimed by another present member that has it or holds communicators for it.
  auto claimed = [&](int r) {
    for (const auto& [id, m] : members_) {
      if (id != identity && (m.rank == r || (m.held.holding() && m.held.rank() == r))) {
        return true;
      }
    }
    return false;
  };
  // What the agent holds wins: that is what the restored pool is made of.
  if (request.held().holding() && in_world(request.held().rank()) &&
      !claimed(request.held().rank())) {
    return request.held().rank();
  }
  // Its rank from the state file (it may hold nothing after a restart: recovery then decides).
  if (auto it = durable_ranks_.find(identity);
      it != durable_ranks_.end() && in_world(it->second) && !claimed(it->second)) {
    return it->second;
  }
  return -1;  // a standby until recovery ends
}

namespace {

// Attached members passing `keep`, in order of arrival.
template <typename Keep>
std::vector<const Member*> ByArrival(const std::map<std::string, Member>& members, Keep keep) {
  std::vector<const Member*> out;
  for (const auto& [identity, m] : members) {
    if (m.sink != nullptr && keep(m)) out.push_back(&m);
  }
  std::sort(out.begin(), out.end(),
            [](const Member* a, const Member* b) { return a->join_seq < b->join_seq; });
  return out;
}

}  // namespace

std::vector<std::pair<std::string, int>> Roster::PlanPromotions(int world) const {
  const std::vector<const Member*> standbys =
      ByArrival(members_, [](const Member& m) { return m.rank < 0; });
  std::vector<bool> taken = Taken();
  std::vector<std::pair<std::string, int>> plan;
  std::vector<bool> promoted(standbys.size(), false);
  // A standby whose own hint is free takes it first (a pod gets its ordinal back), then the
  // others take the lowest free ranks in order of arrival.
  for (size_t i = 0; i < standbys.size(); ++i) {
    const std::optional<int> hint = HintOf(standbys[i]->join, world);
    if (hint.has_value() && FreeRankIn(taken, hint, world) == *hint) {
      Take(taken, *hint);
      promoted[i] = true;
      plan.emplace_back(standbys[i]->identity, *hint);
    }
  }
  for (size_t i = 0; i < standbys.size(); ++i) {
    if (promoted[i]) continue;
    const int rank = FreeRankIn(taken, std::nullopt, world);
    if (rank < 0) break;
    Take(taken, rank);
    plan.emplace_back(standbys[i]->identity, rank);
  }
  return plan;
}

std::map<std::string, int> Roster::PlanReassignment(int world) const {
  const std::vector<const Member*> attached =
      ByArrival(members_, [](const Member&) { return true; });
  // Nothing is built: every rank is up for grabs. Hints first, then a member keeps its current
  // rank if still free, then the lowest free ranks in order of arrival; the rest wait.
  std::map<std::string, int> chosen;
  std::vector<bool> taken(world, false);
  auto take = [&](const Member* m, int r) {
    chosen[m->identity] = r;
    taken[r] = true;
  };
  for (const Member* m : attached) {
    const std::optional<int> hint = HintOf(m->join, world);
    if (hint.has_value() && !taken[*hint]) take(m, *hint);
  }
  for (const Member* m : attached) {
    if (!chosen.count(m->identity) && m->rank >= 0 && m->rank < world && !taken[m->rank]) {
      take(m, m->rank);
    }
  }
  int next = 0;
  for (const Member* m : attached) {
    if (chosen.count(m->identity)) continue;
    while (next < world && taken[next]) ++next;
    if (next < world) {
      take(m, next);
    } else {
      chosen[m->identity] = -1;
    }
  }
  return chosen;
}

Member* Roster::EarliestStandby() {
  Member* standby = nullptr;
  for (auto& [identity, m] : members_) {
    if (m.rank < 0 && m.sink != nullptr && (standby == nullptr || m.join_seq < standby->join_seq)) {
      standby = &m;
    }
  }
  return standby;
}

void Roster::RememberRank(const std::string& identity, int rank) {
  auto [first, last] = durable_holders_.equal_range(rank);
  for (auto it = first; it != last;) {
    if (it->second == identity) {
      ++it;
      continue;
    }
    durable_ranks_.erase(it->second);
    it = durable_holders_.erase(it);
  }
  LoadRank(identity, rank);
}

void Roster::ForgetRank(const std::string& identity) {
  auto it = durable_ranks_.find(identity);
  if (it == durable_ranks_.end()) return;
  auto [first, last] = durable_holders_.equal_range(it->second);
  for (auto h = first; h != last; ++h) {
    if (h->second == identity) {
      durable_holders_.erase(h);
      break;
    }
  }
  durable_ranks_.erase(it);
}

void Roster::LoadRank(const std::string& identity, int rank) {
  if (auto it = durable_ranks_.find(identity); it != durable_ranks_.end() && it->second == rank) {
    return;
  }
  ForgetRank(identity);
  durable_ranks_[identity] = rank;
  durable_holders_.emplace(rank, identity);
}

}  // namespace cohort::coordinator
