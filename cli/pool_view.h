// Reading a pool's state for people: the fields of a member and the state of a group across its
// members, as the inspection commands print them.
#ifndef COHORT_CLI_POOL_VIEW_H_
#define COHORT_CLI_POOL_VIEW_H_

#include <cstdint>
#include <map>
#include <ostream>
#include <string>

#include "cli/admin_rpc.h"
#include "cli/output.h"
#include "cohort/v1/admin.pb.h"
#include "common/rank_generator.h"

namespace cohort::cli {

// One GetState call (filters in `request`). Returns kExitOk or the RPC's exit status (after its
// error line).
int GetStateOnce(const ConnectionFlags& connection, const v1::GetStateRequest& request,
                 v1::GetStateResponse* response, std::ostream& err);

// "pool default: READY, generation 2, 4/4 ready, tp2 x pp2 (world 4) on gloo".
std::string PoolHeadline(const v1::PoolState& state, const Style& style);

// "missing ranks: [3,5]" (empty when none is missing).
std::string MissingRanksLine(const v1::PoolState& state, const Style& style);

// "world, dp, cfg, ...": every group kind, for help and error lines.
std::string KindChoices();
// Parses a group kind ("tp"). Returns kExitOk, or kExitUsage after an error line naming the
// kinds.
int ParseKindFlag(const std::string& text, v1::GroupKind* kind, std::ostream& err);

RankList Ranks(const v1::RankGroup& group);
// "cuda:3" or "cpu".
std::string DeviceText(const v1::DeviceInfo& device);
// The hostname, or the address when there is none.
std::string HostText(const v1::DeviceInfo& device);
std::string OrDash(const std::string& text);
// "850ms ago", or "disconnected".
std::string HeartbeatText(const v1::MemberState& member);
// "splitting dp 3/11", or "-".
std::string ProgressText(const v1::Progress& progress);

// The index of the i-th group of `set`: the server sets it on filtered layouts; elsewhere it is
// the position.
int IndexOf(const v1::GroupSet& set, int i);
// `member`'s report of group (kind, index); nullptr if it has none.
const v1::GroupReport* FindReport(const v1::MemberState& member, v1::GroupKind kind, int index);
// Ranked members by rank.
std::map<int, const v1::MemberState*> MembersByRank(const v1::PoolState& state);

// One group's communicators across its members.
struct GroupSummary {
  // "ready 4/4" when all are; otherwise "ready k/N" then each other state with its ranks
  // ("ready 2/4, error [1], missing [3]"); "pending" before any report.
  std::string state;
  Color color = Color::kNone;  // green all ready; red any error, aborted or missing; else yellow
  int64_t create_us = 0;       // the slowest member's
  int64_t verify_us = 0;
  std::string error;  // the first error or async error, with its rank
};
GroupSummary Summarize(const std::map<int, const v1::MemberState*>& members, v1::GroupKind kind,
                       int index, const v1::RankGroup& group);

// Replaces the layout of `state` with `layout` (already filtered) and keeps only the members
// whose rank is in one of its groups.
void KeepMembersOf(const v1::Layout& layout, v1::PoolState* state);

}  // namespace cohort::cli

#endif  // COHORT_CLI_POOL_VIEW_H_
