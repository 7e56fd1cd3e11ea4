// Roster: the members of one pool and who holds which rank — the rank-assignment rules, with no
// messages, events or timers. The Coordinator asks it what to do (which rank a joining agent
// gets, which standby fills which rank) and then does it: tells the agents and records events.
//
// Rank assignment (deterministic): a rank hint (e.g. a pod ordinal) wins when that rank is free
// and inside the world; otherwise the lowest free rank (order of arrival); when every rank of a
// known world is taken the agent becomes a standby. A world of 0 (no config yet) has no upper
// bound. Identities remembered with their ranks (durable ranks, from the state file or earlier
// joins) get their old rank back; one identity per rank, so the map never outgrows the world.
//
// Thread safety: none; the Coordinator guards each pool's roster with its lock.
#ifndef COHORT_COORDINATOR_ROSTER_H_
#define COHORT_COORDINATOR_ROSTER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "cohort/v1/admin.pb.h"
#include "cohort/v1/agent.pb.h"

namespace cohort::coordinator {

class SessionSink;

// One agent in a pool, as the coordinator knows it.
struct Member {
  std::string identity;
  std::string incarnation;
  std::string session_id;
  int rank = -1;  // -1: standby. Written only through Roster::SetRank (it keeps an index).
  v1::JoinRequest join;
  v1::MemberPhase phase = v1::MEMBER_PHASE_JOINED;
  SessionSink* sink = nullptr;  // null: not attached (never, or lost)
  bool ever_attached = false;
  absl::Time last_heartbeat;
  int64_t generation = 0;
  v1::GenerationReport report;
  v1::Progress progress;
  std::string error;
  bool teardown_reported = false;
  uint64_t join_seq = 0;  // arrival order, for promoting standbys
  absl::Time attached_at;
  std::string backend;  // of the last plan
  v1::HeldState held;   // what it reported holding when it (re)joined
};

// A member's own rank hint (e.g. its pod ordinal), if it gave one inside a world of `world`.
std::optional<int> HintOf(const v1::JoinRequest& join, int world);

class Roster {
 public:
  // Members by identity. Add members through it (they start as standbys, rank -1); remove them
  // with Remove and give ranks with SetRank, which keep the rank index true.
  std::map<std::string, Member>& members() { return members_; }
  const std::map<std::string, Member>& members() const { return members_; }
  Member* Find(const std::string& identity);
  // Gives `m` (a member of this roster) `rank` (-1: standby).
  void SetRank(Member& m, int rank);
  // Removes the member `identity` (if any).
  void Remove(const std::string& identity);
  // The member holding `rank`, or null.
  Member* AtRank(int rank);
  const Member* AtRank(int rank) const;
  // Every member with a rank in [0, world), indexed by rank (null where none): one pass over the
  // roster, for loops over all ranks (AtRank in such a loop is O(world^2)).
  std::vector<Member*> ByRank(int world);
  std::vector<const Member*> ByRank(int world) const;

  // The rank a newcomer gets in a world of `world` (0: unbounded): `hint` when it is free and
  // inside the world, else the lowest free rank; -1 (standby) when every rank is taken.
  int FreeRank(std::optional<int> hint, int world) const;
  // Ranks of [0, world) held by no attached member.
  std::vector<int> MissingRanks(int world) const;

  // The rank of an agent joining a RECOVERING pool: the rank it holds, else its durable rank,
  // unless another member has or holds that rank; otherwise -1 (a standby until recovery ends).
  int RecoveryRank(const v1::JoinRequest& request, int world) const;

  // Which attached standby takes which free rank of [0, world), in the order to apply: each its
  // own hint where free, then the lowest free ranks in order of arrival.
  std::vector<std::pair<std::string, int>> PlanPromotions(int world) const;
  // Every rank assigned anew (nothing is built): for each attached member, by identity, its hint
  // where free, else its current rank where free, else the lowest free rank, else -1 (standby).
  std::map<std::string, int> PlanReassignment(int world) const;
  // The attached standby that arrived first, or null.
  Member* EarliestStandby();

  // Durable ranks: identity -> rank, for agents that come back.
  const std::map<std::string, int>& durable_ranks() const { return durable_ranks_; }
  // Records identity -> rank, dropping any other identity remembered for that rank.
  void RememberRank(const std::string& identity, int rank);
  void ForgetRank(const std::string& identity);
  // A rank from the state file, taken as it is (the file was validated).
  void LoadRank(const std::string& identity, int rank);

 private:
  // taken[r]: some member (attached or not) has rank r.
  std::vector<bool> Taken() const;
  // Whether holders_ counts what the members hold (checked in debug builds).
  bool IndexIsTrue() const;

  std::map<std::string, Member> members_;
  // holders_[r]: how many members have rank r (more than one only in the middle of a reshuffle):
  // FreeRank per join reads it instead of walking every member (O(N^2) over a join storm).
  std::vector<int> holders_;
  std::map<std::string, int> durable_ranks_;
  // durable_ranks_ the other way round (rank -> identities; one, except after LoadRank of a file
  // that gave a rank twice), so that RememberRank is not a pass over every identity per join.
  std::multimap<int, std::string> durable_holders_;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_ROSTER_H_
