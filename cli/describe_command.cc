// describe rank R / describe group KIND INDEX.
#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/inspect_commands.h"
#include "cli/pool_view.h"
#include "cli/table.h"
#include "cohort/v1/admin.grpc.pb.h"

namespace cohort::cli {

// ---- describe -------------------------------------------------------------------------------

CLI::App* DescribeCommand::Register(CLI::App* app) {
  CLI::App* cmd = app->add_subcommand("describe", "Everything about one rank or one group");
  cmd->require_subcommand(1);
  cmd->footer(
      "Examples:\n"
      "  cohortctl describe rank 5\n"
      "  cohortctl describe group tp 3 -o yaml");
  rank_cmd = cmd->add_subcommand(
      "rank",
      "One rank: its member (identity, host, device, backend, phase, heartbeat, error, "
      "progress) and every group holding it");
  rank_cmd->footer("Example:\n  cohortctl describe rank 5 --pool default");
  rank_cmd->add_option("RANK", rank, "Global rank")->required();
  connection.Register(rank_cmd);
  output.Register(rank_cmd);
  group_cmd = cmd->add_subcommand(
      "group", "One group: its ranks and, for each member, phase, communicator state, timings");
  group_cmd->footer("Example:\n  cohortctl describe group tp 3");
  group_cmd->add_option("KIND", kind, "Group kind (" + KindChoices() + ")")->required();
  group_cmd->add_option("INDEX", index, "The group's index within its kind (from 0)")->required();
  connection.Register(group_cmd);
  output.Register(group_cmd);
  return cmd;
}

int DescribeCommand::Run(std::ostream& out, std::ostream& err) const {
  if (rank_cmd->parsed()) return RunRank(out, err);
  return RunGroup(out, err);
}

int DescribeCommand::RunRank(std::ostream& out, std::ostream& err) const {
  v1::GetStateRequest request;
  request.set_pool(connection.pool);
  request.set_rank(rank);
  v1::GetStateResponse response;
  if (int rc = GetStateOnce(connection, request, &response, err); rc != kExitOk) return rc;
  if (output.structured()) {
    PrintDocument(response, output.format(), out);
    return kExitOk;
  }
  const v1::PoolState& s = response.state();
  const Style style = output.StyleFor(out);
  out << "rank " << rank << " of " << PoolHeadline(s, style) << "\n\n";
  const v1::MemberState* m = s.members_size() > 0 ? &s.members(0) : nullptr;
  if (m == nullptr) {
    out << style.Paint("missing:", Color::kRed) << " no member holds rank " << rank << "\n";
  } else {
    const v1::DeviceInfo& d = m->device();
    Table facts({"FIELD", "VALUE"});
    facts.AddRow({"identity", m->identity()});
    facts.AddRow({"phase", style.State(MemberPhaseName(m->phase()))});
    facts.AddRow({"generation", m->generation() > 0 ? absl::StrCat(m->generation()) : "-"});
    facts.AddRow({"heartbeat", m->connected() ? HeartbeatText(*m)
                                              : style.Paint(HeartbeatText(*m), Color::kRed)});
    facts.AddRow(
        {"session uptime", m->session_uptime_ms() > 0 ? FormatAge(m->session_uptime_ms()) : "-"});
    facts.AddRow({"host", absl::StrCat(OrDash(d.hostname()), " (", OrDash(d.host_address()), ")")});
    facts.AddRow({"device", DeviceText(d)});
    facts.AddRow({"device uuid", OrDash(d.gpu_uuid())});
    facts.AddRow({"pci bus", OrDash(d.pci_bus_id())});
    facts.AddRow({"backend", absl::StrCat(OrDash(m->backend()), " (offers ",
                                          OrDash(absl::StrJoin(m->backends_offered(), ",")), ")")});
    facts.AddRow({"nccl version", OrDash(m->nccl_version())});
    facts.AddRow({"agent version", OrDash(m->agent_version())});
    facts.AddRow({"ready in", m->ready_us() > 0 ? FormatMillis(m->ready_us()) + " ms" : "-"});
    facts.AddRow({"progress", ProgressText(m->progress())});
    facts.AddRow({"error", m->error().empty() ? "-" : style.Paint(m->error(), Color::kRed)});
    facts.Print(out);
  }
  if (s.layout().group_sets_size() == 0) {
    out << "\nno groups: the pool has no config yet\n";
    return kExitOk;
  }
  out << "\n";
  Table groups({"KIND", "INDEX", "RANKS", "RANK_IN_GROUP", "STATE", "CREATE_MS", "VERIFY_MS",
                "VERIFY_SUM", "ERROR"});
  for (const v1::GroupSet& set : s.layout().group_sets()) {
    for (int i = 0; i < set.groups_size(); ++i) {
      const int index = IndexOf(set, i);
      const RankList ranks = Ranks(set.groups(i));
      const auto pos = std::find(ranks.begin(), ranks.end(), rank);
      const v1::GroupReport* r = m == nullptr ? nullptr : FindReport(*m, set.kind(), index);
      std::string state = m == nullptr   ? "missing"
                          : r == nullptr ? "pending"
                                         : CommStateName(r->state());
      std::string error = r == nullptr ? "" : r->error();
      if (r != nullptr && !r->async_error().empty()) {
        error = absl::StrCat(error.empty() ? "" : error + "; ", "async: ", r->async_error());
      }
      groups.AddRow({KindName(set.kind()), absl::StrCat(index), FormatRanks(ranks),
                     absl::StrCat(pos - ranks.begin()), style.State(state),
                     FormatMillis(r == nullptr ? 0 : r->create_us()),
                     FormatMillis(r == nullptr ? 0 : r->verify_us()),
                     r == nullptr || r->verify_us() == 0 ? "-" : absl::StrCat(r->verify_sum()),
                     error.empty() ? "-" : style.Paint(error, Color::kRed)});
    }
  }
  groups.Print(out);
  return kExitOk;
}

int DescribeCommand::RunGroup(std::ostream& out, std::ostream& err) const {
  v1::GroupKind k;
  if (int rc = ParseKindFlag(kind, &k, err); rc != kExitOk) return rc;
  v1::GetStateRequest request;
  request.set_pool(connection.pool);
  request.set_kind(k);
  v1::GetStateResponse response;
  if (int rc = GetStateOnce(connection, request, &response, err); rc != kExitOk) return rc;
  v1::PoolState* s = response.mutable_state();
  if (s->layout().group_sets_size() == 0) {
    err << "error: pool '" << s->pool() << "' has no " << kind << " groups"
        << (s->has_config() ? " in its layout" : " (no config yet)") << "\n";
    return kExitFailed;
  }
  const v1::GroupSet& set = s->layout().group_sets(0);
  int position = -1;
  for (int i = 0; i < set.groups_size(); ++i) {
    if (IndexOf(set, i) == index) position = i;
  }
  if (position < 0) {
    err << "error: pool '" << s->pool() << "' has " << set.groups_size() << " " << kind
        << " groups: use an index in 0.." << set.groups_size() - 1 << "\n";
    return kExitUsage;
  }
  v1::Layout one;
  v1::GroupSet* one_set = one.add_group_sets();
  one_set->set_kind(set.kind());
  *one_set->add_groups() = set.groups(position);
  one_set->mutable_groups(0)->set_index(index);
  KeepMembersOf(one, s);
  if (output.structured()) {
    PrintDocument(response, output.format(), out);
    return kExitOk;
  }
  const Style style = output.StyleFor(out);
  const bool wide = output.format() == OutputFormat::kWide;
  const v1::RankGroup& group = s->layout().group_sets(0).groups(0);
  const auto members = MembersByRank(*s);
  GroupSummary summary = Summarize(members, k, index, group);
  out << kind << " group " << index << " of " << PoolHeadline(*s, style) << "\n";
  out << "ranks " << FormatRanks(Ranks(group)) << ": " << style.Paint(summary.state, summary.color)
      << "\n\n";
  std::vector<std::string> header = {"RANK",  "RANK_IN_GROUP", "IDENTITY", "PHASE",
                                     "STATE", "CREATE_MS",     "VERIFY_MS"};
  if (wide) header.insert(header.end(), {"VERIFY_SUM", "HOST", "DEVICE", "INCARNATION"});
  header.push_back("ERROR");
  Table table(header);
  RankList missing;
  for (int i = 0; i < group.ranks_size(); ++i) {
    const int r = group.ranks(i);
    auto it = members.find(r);
    if (it == members.end()) {
      missing.push_back(r);
      std::vector<std::string> row(header.size(), "-");
      row[0] = absl::StrCat(r);
      row[1] = absl::StrCat(i);
      row[3] = style.State("MISSING");
      row[4] = style.State("missing");
      row.back() = "no member holds this rank";
      table.AddRow(std::move(row));
      continue;
    }
    const v1::MemberState& m = *it->second;
    const v1::GroupReport* report = FindReport(m, k, index);
    std::string error = report == nullptr ? "" : report->error();
    if (report != nullptr && !report->async_error().empty()) {
      error = absl::StrCat(error.empty() ? "" : error + "; ", "async: ", report->async_error());
    }
    if (error.empty()) error = m.error();
    std::vector<std::string> row = {
        absl::StrCat(r),
        absl::StrCat(i),
        m.identity(),
        style.State(MemberPhaseName(m.phase())),
        style.State(report == nullptr ? "pending" : CommStateName(report->state())),
        FormatMillis(report == nullptr ? 0 : report->create_us()),
        FormatMillis(report == nullptr ? 0 : report->verify_us())};
    if (wide) {
      row.insert(
          row.end(),
          {report == nullptr || report->verify_us() == 0 ? "-" : absl::StrCat(report->verify_sum()),
           OrDash(HostText(m.device())), DeviceText(m.device())});
    }
    row.push_back(error.empty() ? "-" : style.Paint(error, Color::kRed));
    table.AddRow(std::move(row));
  }
  table.Print(out);
  if (!missing.empty()) {
    out << "\n"
        << style.Paint("missing members:", Color::kRed) << " ranks " << FormatRanks(missing)
        << "\n";
  }
  return kExitOk;
}

}  // namespace cohort::cli
