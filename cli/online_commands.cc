#include "cli/online_commands.h"

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cli/output.h"
#include "cli/pool_view.h"
#include "cli/table.h"
#include "cohort/v1/admin.grpc.pb.h"
#include "common/grpc_status.h"
#include "common/layout.h"
#include "common/layout_proto.h"
#include "grpcpp/grpcpp.h"

namespace cohort::cli {
namespace {

std::string Millis(int64_t us) { return absl::StrFormat("%.1f", us / 1000.0); }

}  // namespace

// ---- init -----------------------------------------------------------------------------------

CLI::App* InitCommand::Register(CLI::App* app) {
  CLI::App* cmd =
      app->add_subcommand("init", "Set a pool's parallel config and build its communicators");
  cmd->footer(
      "Exit status: 0 READY (or accepted without --wait), 1 refused or FAILED, 2 invalid\n"
      "config, 3 --wait timed out, 4 coordinator unreachable.\n\n"
      "Example:\n"
      "  cohortctl init -c 127.0.0.1:7070 --insecure --world-size 8 --dp 2 --cfg 2 --ulysses 2 "
      "--wait");
  connection.Register(cmd);
  config.Register(cmd, /*world_size_required=*/true);
  cmd->add_option("--backend", backend, "gloo, nccl or none")
      ->check(CLI::IsMember({"gloo", "nccl", "none"}))
      ->capture_default_str();
  cmd->add_option("--init-mode", init_mode, "split (ncclCommSplit from the world) or per-group-id")
      ->check(CLI::IsMember({"split", "per-group-id"}))
      ->capture_default_str();
  cmd->add_option("--deadline-ms", deadline_ms, "Deadline of the whole generation")
      ->capture_default_str();
  cmd->add_flag("--no-verify", no_verify, "Skip the all-reduce check of every group");
  cmd->add_flag("--wait", wait, "Wait until READY, showing k/N ready");
  AddDurationOption(cmd, "--timeout,-t", &timeout, "How long --wait waits");
  return cmd;
}

int InitCommand::Run(std::ostream& out, std::ostream& err) const {
  absl::StatusOr<ParallelConfig> parsed = config.ToConfig();
  absl::StatusOr<Layout> layout =
      parsed.ok() ? Layout::Build(*parsed) : absl::StatusOr<Layout>(parsed.status());
  if (!layout.ok()) {
    err << "error: " << layout.status().message() << "\n";
    return kExitUsage;
  }
  v1::InitializeRequest request;
  request.set_pool(connection.pool);
  *request.mutable_config() = ToProto(*parsed);
  request.mutable_options()->set_backend(backend);
  request.mutable_options()->set_init_mode(init_mode == "split" ? v1::INIT_MODE_SPLIT
                                                                : v1::INIT_MODE_PER_GROUP_ID);
  request.mutable_options()->set_deadline_ms(deadline_ms);
  request.mutable_options()->set_verify(!no_verify);
  auto stub = Connect(connection);
  grpc::ClientContext context;
  SetRpcDeadline(&context);
  v1::InitializeResponse response;
  grpc::Status status = stub->Initialize(&context, request, &response);
  if (!status.ok()) return ReportRpcError(status, connection, err);
  out << "pool " << connection.pool << ": generation " << response.generation() << " of "
      << parsed->ShortString() << " on " << backend
      << (response.started() ? ": plans sent" : ": waiting for members") << "\n";
  if (!wait) return kExitOk;
  const int64_t generation = response.generation();
  v1::PoolState last;
  int rc = WaitForPoolState(
      connection, timeout,
      [generation](const v1::PoolState& s) {
        return s.generation() >= generation &&
               (s.phase() == v1::POOL_PHASE_READY || s.phase() == v1::POOL_PHASE_FAILED);
      },
      [&out, shown = std::string()](const v1::PoolState& s) mutable {
        std::string line = absl::StrCat("  ", PhaseName(s.phase()), ": ", s.members_ready(), "/",
                                        s.world_size(), " ready");
        if (s.missing_ranks_size() > 0) {
          absl::StrAppend(
              &line, ", waiting for ranks ",
              FormatRanks(RankList(s.missing_ranks().begin(), s.missing_ranks().end())));
        }
        if (line != shown) out << line << "\n";  // only when something a person sees changed
        shown = line;
      },
      &last, err);
  if (rc == kExitTimeout) {
    err << "error: pool " << connection.pool << " not READY after " << absl::FormatDuration(timeout)
        << " (" << PhaseName(last.phase()) << ", " << last.members_ready() << "/"
        << last.world_size() << " ready)\n";
    return rc;
  }
  if (rc != kExitOk) return rc;
  if (last.phase() == v1::POOL_PHASE_FAILED) {
    err << "error: generation " << last.generation() << " failed: " << last.error() << "\n";
    return kExitFailed;
  }
  out << "pool " << connection.pool << ": generation " << last.generation() << " READY in "
      << last.init_ms() << " ms\n";
  return kExitOk;
}

// ---- check ----------------------------------------------------------------------------------

CLI::App* DeletePoolCommand::Register(CLI::App* app) {
  CLI::App* cmd = app->add_subcommand("delete", "Delete a pool from the coordinator");
  cmd->require_subcommand(1);
  CLI::App* pool_cmd = cmd->add_subcommand(
      "pool", "Forget a pool: its members, rendezvous store, events and durable state");
  pool_cmd->footer(
      "Refused while members are attached unless --force (their sessions are closed; what they\n"
      "hold is theirs to release). Exit status: 0 deleted, 1 refused or unknown pool, 4\n"
      "coordinator unreachable.\n\n"
      "Example:\n"
      "  cohortctl delete pool old-job -c 127.0.0.1:7070 --insecure");
  pool_cmd->add_option("name", name, "The pool to delete")->required();
  pool_cmd->add_flag("--force", force, "Delete even while members are attached");
  pool_cmd->add_option("--coordinator,-c", connection.coordinator,
                       "Coordinator host:port (default: $COHORT_COORDINATOR or 127.0.0.1:7070)");
  connection.transport_flags.Register(pool_cmd, TransportSecurityOptions::Side::kClient,
                                      &connection.transport_security);
  return cmd;
}

int DeletePoolCommand::Run(std::ostream& out, std::ostream& err) const {
  auto stub = Connect(connection);
  grpc::ClientContext context;
  SetRpcDeadline(&context);
  v1::DeletePoolRequest request;
  request.set_pool(name);
  request.set_force(force);
  v1::DeletePoolResponse response;
  grpc::Status status = stub->DeletePool(&context, request, &response);
  if (!status.ok()) return ReportRpcError(status, connection, err);
  out << "pool " << name << " deleted\n";
  return kExitOk;
}

CLI::App* CheckCommand::Register(CLI::App* app) {
  CLI::App* cmd = app->add_subcommand(
      "check", "Run the verification all-reduce on every group of a READY pool again");
  cmd->footer(
      "Every member all-reduces its global rank in every group it holds and reports the sum;\n"
      "the command waits for every report. Exit status: 0 every group checked out, 1 a group\n"
      "failed (named) or the pool is not READY, 3 timed out, 4 coordinator unreachable.\n\n"
      "Example:\n"
      "  cohortctl check -c 127.0.0.1:7070 --insecure --timeout 30");
  connection.Register(cmd);
  AddDurationOption(cmd, "--timeout,-t", &timeout, "How long to wait for every member's report");
  return cmd;
}

int CheckCommand::Run(std::ostream& out, std::ostream& err) const {
  auto stub = Connect(connection);
  // Events after this sequence number are the answers to this check.
  int64_t before = 0;
  {
    grpc::ClientContext context;
    SetRpcDeadline(&context);
    v1::GetEventsRequest request;
    request.set_pool(connection.pool);
    request.set_limit(1);
    v1::GetEventsResponse response;
    grpc::Status status = stub->GetEvents(&context, request, &response);
    if (!status.ok()) return ReportRpcError(status, connection, err);
    if (response.events_size() > 0) before = response.events(0).seq();
  }
  v1::CheckResponse checked;
  {
    grpc::ClientContext context;
    SetRpcDeadline(&context);
    v1::CheckRequest request;
    request.set_pool(connection.pool);
    grpc::Status status = stub->Check(&context, request, &checked);
    if (!status.ok()) return ReportRpcError(status, connection, err);
  }
  int expected = -1;
  std::vector<v1::Event> answers;
  v1::PoolState last;
  int rc = WaitForPoolState(
      connection, timeout,
      [&](const v1::PoolState& s) {
        if (expected < 0) {
          expected = 0;
          for (const v1::MemberState& m : s.members()) {
            if (m.rank() >= 0) expected += m.groups_size();
          }
        }
        grpc::ClientContext context;
        SetRpcDeadline(&context);
        v1::GetEventsRequest request;
        request.set_pool(connection.pool);
        request.set_after_seq(before);
        v1::GetEventsResponse response;
        if (!stub->GetEvents(&context, request, &response).ok()) return false;
        answers.clear();
        for (const v1::Event& e : response.events()) {
          if (e.kind() == v1::EVENT_KIND_GROUP_STATE) answers.push_back(e);
        }
        return static_cast<int>(answers.size()) >= expected || s.phase() != v1::POOL_PHASE_READY;
      },
      [](const v1::PoolState&) {}, &last, err);
  if (rc == kExitTimeout) {
    err << "error: " << answers.size() << " of " << expected << " group checks reported after "
        << absl::FormatDuration(timeout) << "\n";
    return rc;
  }
  if (rc != kExitOk) return rc;
  std::vector<std::string> failures;
  for (const v1::Event& e : answers) {
    // A group that answered with an error (a failed or a refused check) failed.
    if (!absl::StrContains(e.message(), "COMM_STATE_READY") ||
        absl::StrContains(e.message(), " error: ")) {
      failures.push_back(absl::StrCat("rank ", e.rank(), " ", e.message()));
    }
  }
  if (last.phase() != v1::POOL_PHASE_READY) {
    failures.push_back(absl::StrCat("the pool left READY: ", last.error()));
  }
  if (!failures.empty()) {
    for (const std::string& f : failures) err << "error: " << f << "\n";
    return kExitFailed;
  }
  out << "pool " << connection.pool << ": generation " << checked.generation() << ": "
      << answers.size() << " group checks on " << last.members_ready()
      << " members, every all-reduce matched the layout\n";
  return kExitOk;
}

// ---- destroy --------------------------------------------------------------------------------

CLI::App* DestroyCommand::Register(CLI::App* app) {
  CLI::App* cmd = app->add_subcommand(
      "destroy", "Tear down a pool's model-parallel groups (or, with --all, the world too)");
  cmd->footer(
      "Exit status: 0 accepted (or torn down with --wait), 1 refused or teardown failed,\n"
      "3 --wait timed out, 4 coordinator unreachable.\n\n"
      "Example:\n"
      "  cohortctl destroy --pool default --wait");
  connection.Register(cmd);
  cmd->add_flag("--all", all, "Destroy the world communicator too");
  cmd->add_flag("--wait", wait, "Wait until every member reported its teardown");
  AddDurationOption(cmd, "--timeout,-t", &timeout, "How long --wait waits");
  return cmd;
}

int DestroyCommand::Run(std::ostream& out, std::ostream& err) const {
  v1::DestroyRequest request;
  request.set_pool(connection.pool);
  request.set_scope(all ? v1::DESTROY_SCOPE_ALL : v1::DESTROY_SCOPE_MODEL_PARALLEL);
  auto stub = Connect(connection);
  grpc::ClientContext context;
  SetRpcDeadline(&context);
  v1::DestroyResponse response;
  grpc::Status status = stub->Destroy(&context, request, &response);
  if (!status.ok()) return ReportRpcError(status, connection, err);
  out << "pool " << connection.pool << ": destroying generation " << response.generation()
      << (all ? " (everything)" : " (model-parallel groups)") << "\n";
  if (!wait) return kExitOk;
  v1::PoolState last;
  int rc = WaitForPoolState(
      connection, timeout,
      [](const v1::PoolState& s) { return s.phase() != v1::POOL_PHASE_DESTROYING; },
      [](const v1::PoolState&) {}, &last, err);
  if (rc == kExitTimeout) {
    err << "error: teardown not finished after " << absl::FormatDuration(timeout) << "\n";
  }
  if (rc != kExitOk) return rc;
  out << "pool " << connection.pool << ": " << PhaseName(last.phase()) << "\n";
  // The coordinator clears the pool's error on a clean teardown and otherwise names every
  // member that failed: lost during the teardown, reported a failure, or never reported.
  if (!last.error().empty()) {
    err << "error: teardown of generation " << response.generation() << " failed: " << last.error()
        << "\n";
    return kExitFailed;
  }
  return kExitOk;
}

// ---- state ----------------------------------------------------------------------------------

CLI::App* StateCommand::Register(CLI::App* app) {
  CLI::App* cmd = app->add_subcommand("state", "Show a pool: members, groups and timings");
  cmd->footer(
      "-o wide adds each member's device and generation, and the names of the rendezvous\n"
      "store's keys; -o json/yaml print the pool's PoolState message, every field included.\n"
      "See also: status, members, groups, describe, events, watch, wait.\n\n"
      "Example:\n"
      "  cohortctl state --pool default -o json");
  connection.Register(cmd);
  output.Register(cmd);
  return cmd;
}

int StateCommand::Run(std::ostream& out, std::ostream& err) const {
  auto stub = Connect(connection);
  grpc::ClientContext context;
  SetRpcDeadline(&context);
  v1::GetStateRequest request;
  request.set_pool(connection.pool);
  v1::GetStateResponse response;
  grpc::Status status = stub->GetState(&context, request, &response);
  if (!status.ok()) return ReportRpcError(status, connection, err);
  if (output.structured()) {
    PrintDocument(response.state(), output.format(), out);
  } else {
    PrintPoolState(response.state(), output.StyleFor(out), output.format() == OutputFormat::kWide,
                   out);
  }
  return kExitOk;
}

void PrintPoolState(const v1::PoolState& s, const Style& style, bool wide, std::ostream& out) {
  out << "pool " << s.pool() << "  generation " << s.generation() << "  "
      << style.State(PhaseName(s.phase()));
  if (s.has_config()) {
    out << "  " << FromProto(s.config()).ShortString() << " on " << s.options().backend();
  }
  if (s.init_ms() > 0) out << "  init " << s.init_ms() << " ms";
  out << "\n";
  out << "members " << s.members_ready() << "/" << s.world_size() << " ready";
  if (s.missing_ranks_size() > 0) {
    RankList missing(s.missing_ranks().begin(), s.missing_ranks().end());
    out << ", missing ranks " << style.Paint(FormatRanks(missing), Color::kRed);
  }
  out << "\n";
  if (!s.error().empty()) out << style.Paint("error:", Color::kRed) << " " << s.error() << "\n";
  // The store's key names (never values): how far the rendezvous got.
  if (s.store_key_count() > 0) {
    out << "store " << s.store_key_count() << (s.store_key_count() == 1 ? " key" : " keys");
    if (wide) {
      out << ":";
      for (const std::string& key : s.store_keys()) out << " " << key;
      if (s.store_keys_size() < s.store_key_count()) out << " ...";
    }
    out << "\n";
  }
  out << "\n";
  std::vector<std::string> header = {"RANK", "IDENTITY", "PHASE", "HOST", "HEARTBEAT", "READY_MS"};
  if (wide) header.insert(header.end(), {"DEVICE", "GENERATION"});
  header.push_back("ERROR");
  Table members(header);
  for (const v1::MemberState& m : s.members()) {
    std::vector<std::string> row = {m.rank() >= 0 ? absl::StrCat(m.rank()) : "standby",
                                    m.identity(),
                                    style.State(MemberPhaseName(m.phase())),
                                    m.device().host_address(),
                                    m.connected() ? absl::StrCat(m.heartbeat_age_ms(), "ms")
                                                  : style.Paint("disconnected", Color::kRed),
                                    m.ready_us() > 0 ? Millis(m.ready_us()) : "-"};
    if (wide) {
      row.insert(row.end(),
                 {DeviceText(m.device()), m.generation() > 0 ? absl::StrCat(m.generation()) : "-"});
    }
    row.push_back(style.Paint(m.error(), Color::kRed));
    members.AddRow(std::move(row));
  }
  members.Print(out);
  if (s.layout().group_sets_size() == 0) return;
  // Slowest member's timings per kind.
  std::map<int, std::pair<int64_t, int64_t>> slowest;
  for (const v1::MemberState& m : s.members()) {
    for (const v1::GroupReport& g : m.groups()) {
      auto& [create, verify] = slowest[g.kind()];
      create = std::max(create, g.create_us());
      verify = std::max(verify, g.verify_us());
    }
  }
  out << "\n";
  Table groups({"KIND", "GROUPS", "SIZE", "CREATE_MS", "VERIFY_MS", "MEMBERS"});
  for (const v1::GroupSet& set : s.layout().group_sets()) {
    std::string members_text;
    for (const v1::RankGroup& g : set.groups()) {
      if (!members_text.empty()) members_text += " ";
      members_text += FormatRanks(RankList(g.ranks().begin(), g.ranks().end()));
    }
    auto it = slowest.find(set.kind());
    absl::StatusOr<GroupKind> kind = FromProto(set.kind());
    groups.AddRow({kind.ok() ? std::string(GroupKindName(*kind)) : "?",
                   absl::StrCat(set.groups_size()), absl::StrCat(set.groups(0).ranks_size()),
                   it != slowest.end() ? Millis(it->second.first) : "-",
                   it != slowest.end() ? Millis(it->second.second) : "-", members_text});
  }
  groups.Print(out);
}

}  // namespace cohort::cli
