#include "cli/pool_view.h"

#include <algorithm>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/table.h"
#include "cohort/v1/admin.grpc.pb.h"
#include "common/layout.h"
#include "common/layout_proto.h"

namespace cohort::cli {

RankList Ranks(const v1::RankGroup& group) {
  return RankList(group.ranks().begin(), group.ranks().end());
}

std::string KindChoices() {
  std::vector<std::string> names;
  for (GroupKind k : kAllGroupKinds) names.emplace_back(GroupKindName(k));
  return absl::StrJoin(names, ", ");
}

// Parses a group kind flag. Returns kExitOk, or kExitUsage after an error line.
int ParseKindFlag(const std::string& text, v1::GroupKind* kind, std::ostream& err) {
  std::optional<GroupKind> parsed = ParseGroupKind(text);
  if (!parsed.has_value()) {
    err << "error: unknown group kind '" << text << "': use one of " << KindChoices() << "\n";
    return kExitUsage;
  }
  *kind = ToProto(*parsed);
  return kExitOk;
}

std::string DeviceText(const v1::DeviceInfo& d) {
  return d.gpu_index() >= 0 ? absl::StrCat("cuda:", d.gpu_index()) : "cpu";
}

std::string HostText(const v1::DeviceInfo& d) {
  return d.hostname().empty() ? d.host_address() : d.hostname();
}

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

std::string HeartbeatText(const v1::MemberState& m) {
  if (!m.connected()) return "disconnected";
  return absl::StrCat(FormatAge(m.heartbeat_age_ms()), " ago");
}

std::string ProgressText(const v1::Progress& p) {
  if (p.phase().empty()) return "-";
  if (p.groups_total() == 0) return p.phase();
  return absl::StrCat(p.phase(), " ", p.groups_done(), "/", p.groups_total());
}

// The index of the i-th group of `set`: set by the server on filtered layouts, else its position.
int IndexOf(const v1::GroupSet& set, int i) {
  const v1::RankGroup& g = set.groups(i);
  return g.has_index() ? g.index() : i;
}

const v1::GroupReport* FindReport(const v1::MemberState& m, v1::GroupKind kind, int index) {
  for (const v1::GroupReport& r : m.groups()) {
    if (r.kind() == kind && r.index() == index) return &r;
  }
  return nullptr;
}

// Ranked members by rank.
std::map<int, const v1::MemberState*> MembersByRank(const v1::PoolState& s) {
  std::map<int, const v1::MemberState*> by_rank;
  for (const v1::MemberState& m : s.members()) {
    if (m.rank() >= 0) by_rank[m.rank()] = &m;
  }
  return by_rank;
}

GroupSummary Summarize(const std::map<int, const v1::MemberState*>& members, v1::GroupKind kind,
                       int index, const v1::RankGroup& group) {
  GroupSummary s;
  std::map<std::string, RankList> by_state;  // state name -> ranks, for the non-ready ones
  int ready = 0;
  int reported = 0;
  for (int rank : group.ranks()) {
    auto it = members.find(rank);
    const v1::GroupReport* r = it == members.end() ? nullptr : FindReport(*it->second, kind, index);
    if (it == members.end()) {
      by_state["missing"].push_back(rank);
      continue;
    }
    if (r == nullptr) {
      by_state["pending"].push_back(rank);
      continue;
    }
    ++reported;
    s.create_us = std::max(s.create_us, r->create_us());
    s.verify_us = std::max(s.verify_us, r->verify_us());
    if (s.error.empty() && !r->error().empty())
      s.error = absl::StrCat("rank ", rank, ": ", r->error());
    if (s.error.empty() && !r->async_error().empty()) {
      s.error = absl::StrCat("rank ", rank, ": ", r->async_error());
    }
    if (r->state() == v1::COMM_STATE_READY) {
      ++ready;
    } else {
      by_state[CommStateName(r->state())].push_back(rank);
    }
  }
  const int n = group.ranks_size();
  if (reported == 0 && !by_state.count("missing")) {
    s.state = "pending";
    s.color = Color::kYellow;
    return s;
  }
  s.state = absl::StrCat("ready ", ready, "/", n);
  for (const auto& [name, ranks] : by_state)
    absl::StrAppend(&s.state, ", ", name, " ", FormatRanks(ranks));
  s.color = ready == n ? Color::kGreen : Color::kYellow;
  for (const char* bad : {"missing", "error", "aborted"}) {
    if (by_state.count(bad)) s.color = Color::kRed;
  }
  return s;
}

// Keeps in `s` only the groups of `layout` (already filtered) and the members holding them.
void KeepMembersOf(const v1::Layout& layout, v1::PoolState* s) {
  std::set<int> ranks;
  for (const v1::GroupSet& set : layout.group_sets()) {
    for (const v1::RankGroup& g : set.groups()) ranks.insert(g.ranks().begin(), g.ranks().end());
  }
  google::protobuf::RepeatedPtrField<v1::MemberState> kept;
  for (v1::MemberState& m : *s->mutable_members()) {
    if (m.rank() >= 0 && ranks.count(m.rank())) *kept.Add() = std::move(m);
  }
  s->mutable_members()->Swap(&kept);
  *s->mutable_layout() = layout;
}

int GetStateOnce(const ConnectionFlags& connection, const v1::GetStateRequest& request,
                 v1::GetStateResponse* response, std::ostream& err) {
  auto stub = Connect(connection);
  grpc::ClientContext context;
  SetRpcDeadline(&context);
  grpc::Status status = stub->GetState(&context, request, response);
  return status.ok() ? kExitOk : ReportRpcError(status, connection, err);
}

std::string PoolHeadline(const v1::PoolState& s, const Style& style) {
  std::string line = absl::StrCat("pool ", s.pool(), ": ", style.State(PhaseName(s.phase())),
                                  s.reason().empty() ? "" : absl::StrCat(" (", s.reason(), ")"),
                                  ", generation ", s.generation());
  if (s.world_size() > 0)
    absl::StrAppend(&line, ", ", s.members_ready(), "/", s.world_size(), " ready");
  if (s.members_standby() > 0) absl::StrAppend(&line, ", ", s.members_standby(), " standby");
  if (s.has_config()) {
    absl::StrAppend(&line, ", ", FromProto(s.config()).ShortString(), " on ",
                    s.options().backend().empty() ? "gloo" : s.options().backend());
  }
  if (s.init_ms() > 0) absl::StrAppend(&line, ", init ", s.init_ms(), " ms");
  return line;
}

std::string MissingRanksLine(const v1::PoolState& s, const Style& style) {
  if (s.missing_ranks_size() == 0) return "";
  return absl::StrCat(style.Paint("missing ranks:", Color::kRed), " ",
                      FormatRanks(RankList(s.missing_ranks().begin(), s.missing_ranks().end())));
}

}  // namespace cohort::cli
