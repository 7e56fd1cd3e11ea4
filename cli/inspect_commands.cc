#include "cli/inspect_commands.h"

#include <algorithm>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/pool_view.h"
#include "cli/table.h"
#include "cohort/v1/admin.grpc.pb.h"
#include "common/layout_proto.h"

namespace cohort::cli {
namespace {

// A missing-member row for tables whose columns start RANK, IDENTITY, PHASE.
std::vector<std::string> MissingRow(int rank, size_t columns, const Style& style) {
  std::vector<std::string> row(columns, "-");
  row[0] = absl::StrCat(rank);
  row[2] = style.State("MISSING");
  row.back() = "no connected member holds this rank";
  return row;
}

}  // namespace

// ---- status ---------------------------------------------------------------------------------

CLI::App* StatusCommand::Register(CLI::App* app) {
  cmd = app->add_subcommand("status",
                            "Every pool in one table: phase, generation, k/N ready, "
                            "missing ranks, error");
  cmd->footer(
      "With --pool, just that pool's row. -o json/yaml print the ListPools response.\n\n"
      "Examples:\n"
      "  cohortctl status -c 127.0.0.1:7070 --insecure\n"
      "  cohortctl status --pool default -o wide");
  connection.Register(cmd);
  output.Register(cmd);
  return cmd;
}

int StatusCommand::Run(std::ostream& out, std::ostream& err) const {
  auto stub = Connect(connection);
  grpc::ClientContext context;
  SetRpcDeadline(&context);
  v1::ListPoolsResponse response;
  grpc::Status status = stub->ListPools(&context, v1::ListPoolsRequest(), &response);
  if (!status.ok()) return ReportRpcError(status, connection, err);
  if (cmd != nullptr && cmd->count("--pool") > 0) {
    v1::ListPoolsResponse one;
    for (const v1::PoolSummary& p : response.pools()) {
      if (p.pool() == connection.pool) *one.add_pools() = p;
    }
    if (one.pools_size() == 0) {
      err << "error: unknown pool '" << connection.pool << "'\n";
      return kExitFailed;
    }
    response = std::move(one);
  }
  if (output.structured()) {
    PrintDocument(response, output.format(), out);
    return kExitOk;
  }
  if (response.pools_size() == 0) {
    out << "no pools\n";
    return kExitOk;
  }
  const Style style = output.StyleFor(out);
  const bool wide = output.format() == OutputFormat::kWide;
  std::vector<std::string> header = {"POOL", "PHASE", "GENERATION", "READY", "MISSING"};
  if (wide) header.insert(header.end(), {"STANDBY", "CONFIG", "BACKEND", "INIT_MS"});
  header.push_back("ERROR");
  Table table(header);
  for (const v1::PoolSummary& p : response.pools()) {
    // The summary does not name missing ranks; the pool's state does.
    v1::GetStateRequest request;
    request.set_pool(p.pool());
    v1::GetStateResponse state;
    std::ostringstream ignored;
    const bool have_state = GetStateOnce(connection, request, &state, ignored) == kExitOk;
    const v1::PoolState& s = state.state();
    std::string missing = "?";
    if (have_state) {
      missing = s.missing_ranks_size() == 0
                    ? "-"
                    : style.Paint(
                          FormatRanks(RankList(s.missing_ranks().begin(), s.missing_ranks().end())),
                          Color::kRed);
    }
    std::vector<std::string> row = {
        p.pool(), style.State(PhaseName(p.phase())), absl::StrCat(p.generation()),
        p.world_size() > 0 ? absl::StrCat(p.members_ready(), "/", p.world_size()) : "-", missing};
    if (wide) {
      row.push_back(have_state ? absl::StrCat(s.members_standby()) : "?");
      row.push_back(p.has_config() ? FromProto(p.config()).ShortString() : "-");
      row.push_back(have_state ? OrDash(s.options().backend()) : "?");
      row.push_back(have_state && s.init_ms() > 0 ? absl::StrCat(s.init_ms()) : "-");
    }
    row.push_back(p.error().empty() ? "-" : style.Paint(p.error(), Color::kRed));
    table.AddRow(std::move(row));
  }
  table.Print(out);
  return kExitOk;
}

// ---- members --------------------------------------------------------------------------------

CLI::App* MembersCommand::Register(CLI::App* app) {
  CLI::App* cmd = app->add_subcommand(
      "members", "A pool's members: rank, identity, phase, host, device, heartbeat, error");
  cmd->footer(
      "Ranked members come first, then a row for every missing rank, then standbys.\n"
      "-o wide adds device UUID and PCI bus, NCCL version, session uptime,\n"
      "backend and build progress. -o json/yaml print the GetState response.\n\n"
      "Examples:\n"
      "  cohortctl members --pool default\n"
      "  cohortctl members -o wide --no-color");
  connection.Register(cmd);
  output.Register(cmd);
  return cmd;
}

int MembersCommand::Run(std::ostream& out, std::ostream& err) const {
  v1::GetStateRequest request;
  request.set_pool(connection.pool);
  v1::GetStateResponse response;
  if (int rc = GetStateOnce(connection, request, &response, err); rc != kExitOk) return rc;
  if (output.structured()) {
    PrintDocument(response, output.format(), out);
    return kExitOk;
  }
  const v1::PoolState& s = response.state();
  const Style style = output.StyleFor(out);
  const bool wide = output.format() == OutputFormat::kWide;
  out << PoolHeadline(s, style) << "\n";
  if (!s.error().empty()) out << style.Paint("error:", Color::kRed) << " " << s.error() << "\n";
  out << "\n";
  std::vector<std::string> header = {"RANK",   "IDENTITY",  "PHASE",     "HOST",
                                     "DEVICE", "HEARTBEAT", "GENERATION"};
  if (wide) {
    header.insert(header.end(), {"UUID", "PCI_BUS", "NCCL", "UPTIME", "BACKEND", "PROGRESS"});
  }
  header.push_back("ERROR");
  // Ranked rows (members and missing ranks) by rank, then standbys in the coordinator's order.
  std::vector<std::pair<int, std::vector<std::string>>> ranked;
  std::vector<std::vector<std::string>> standbys;
  std::set<int> held;
  for (const v1::MemberState& m : s.members()) {
    std::string heartbeat = HeartbeatText(m);
    std::vector<std::string> row = {m.rank() >= 0 ? absl::StrCat(m.rank()) : "-",
                                    m.identity(),
                                    style.State(MemberPhaseName(m.phase())),
                                    OrDash(HostText(m.device())),
                                    DeviceText(m.device()),
                                    m.connected() ? heartbeat : style.Paint(heartbeat, Color::kRed),
                                    m.generation() > 0 ? absl::StrCat(m.generation()) : "-"};
    if (wide) {
      row.insert(row.end(), {OrDash(m.device().gpu_uuid()), OrDash(m.device().pci_bus_id()),
                             OrDash(m.nccl_version()),
                             m.session_uptime_ms() > 0 ? FormatAge(m.session_uptime_ms()) : "-",
                             OrDash(m.backend()), ProgressText(m.progress())});
    }
    row.push_back(m.error().empty() ? "-" : style.Paint(m.error(), Color::kRed));
    if (m.rank() >= 0) {
      held.insert(m.rank());
      ranked.emplace_back(m.rank(), std::move(row));
    } else {
      standbys.push_back(std::move(row));
    }
  }
  for (int r : s.missing_ranks()) {
    if (!held.count(r)) ranked.emplace_back(r, MissingRow(r, header.size(), style));
  }
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  Table table(header);
  for (auto& [rank, row] : ranked) table.AddRow(std::move(row));
  for (auto& row : standbys) table.AddRow(std::move(row));
  table.Print(out);
  if (ranked.empty() && standbys.empty()) out << "(no members)\n";
  if (std::string line = MissingRanksLine(s, style); !line.empty()) out << "\n" << line << "\n";
  return kExitOk;
}

// ---- groups ---------------------------------------------------------------------------------

CLI::App* GroupsCommand::Register(CLI::App* app) {
  CLI::App* cmd = app->add_subcommand(
      "groups", "A pool's groups: ranks, communicator state on each member, slowest timings");
  cmd->footer(
      "STATE is 'ready k/N' when every member's communicator is ready, and otherwise names\n"
      "the ranks in each other state (error, aborted, creating, pending, missing).\n"
      "-o json/yaml print the GetState response (filtered).\n\n"
      "Examples:\n"
      "  cohortctl groups --kind tp\n"
      "  cohortctl groups --rank 5 -o wide");
  connection.Register(cmd);
  output.Register(cmd);
  cmd->add_option("--kind,-k", kind, "Only groups of this kind (" + KindChoices() + ")");
  cmd->add_option("--rank,-r", rank, "Only the groups holding this rank");
  return cmd;
}

int GroupsCommand::Run(std::ostream& out, std::ostream& err) const {
  v1::GroupKind k = v1::GROUP_KIND_UNSPECIFIED;
  if (!kind.empty()) {
    if (int rc = ParseKindFlag(kind, &k, err); rc != kExitOk) return rc;
  }
  v1::GetStateRequest request;
  request.set_pool(connection.pool);
  request.set_kind(k);
  if (rank.has_value()) request.set_rank(*rank);
  v1::GetStateResponse response;
  if (int rc = GetStateOnce(connection, request, &response, err); rc != kExitOk) return rc;
  if (rank.has_value()) {
    // The rank filter keeps only that rank's member; the groups' states need all of theirs.
    v1::GetStateRequest all = request;
    all.clear_rank();
    v1::GetStateResponse everyone;
    if (int rc = GetStateOnce(connection, all, &everyone, err); rc != kExitOk) return rc;
    const v1::Layout layout = response.state().layout();
    response = std::move(everyone);
    KeepMembersOf(layout, response.mutable_state());
  }
  if (output.structured()) {
    PrintDocument(response, output.format(), out);
    return kExitOk;
  }
  const v1::PoolState& s = response.state();
  const Style style = output.StyleFor(out);
  const bool wide = output.format() == OutputFormat::kWide;
  out << PoolHeadline(s, style) << "\n\n";
  if (s.layout().group_sets_size() == 0) {
    out << (s.has_config() ? absl::StrCat("no ", kind, " groups in this layout")
                           : "no groups: the pool has no config yet")
        << "\n";
    return kExitOk;
  }
  std::vector<std::string> header = {"KIND", "INDEX", "RANKS", "STATE", "CREATE_MS", "VERIFY_MS"};
  if (wide) header.insert(header.end(), {"SIZE", "ERROR"});
  Table table(header);
  const auto members = MembersByRank(s);
  for (const v1::GroupSet& set : s.layout().group_sets()) {
    for (int i = 0; i < set.groups_size(); ++i) {
      const int index = IndexOf(set, i);
      GroupSummary g = Summarize(members, set.kind(), index, set.groups(i));
      std::vector<std::string> row = {KindName(set.kind()),
                                      absl::StrCat(index),
                                      FormatRanks(Ranks(set.groups(i))),
                                      style.Paint(g.state, g.color),
                                      FormatMillis(g.create_us),
                                      FormatMillis(g.verify_us)};
      if (wide) {
        row.push_back(absl::StrCat(set.groups(i).ranks_size()));
        row.push_back(g.error.empty() ? "-" : style.Paint(g.error, Color::kRed));
      }
      table.AddRow(std::move(row));
    }
  }
  table.Print(out);
  if (std::string line = MissingRanksLine(s, style); !line.empty()) out << "\n" << line << "\n";
  return kExitOk;
}

}  // namespace cohort::cli
