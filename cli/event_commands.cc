// events, watch and wait: the commands that follow a pool over time.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/inspect_commands.h"
#include "cli/pool_view.h"
#include "cli/table.h"
#include "cohort/v1/admin.grpc.pb.h"

namespace cohort::cli {
namespace {

// The cells of one event: TIME, GEN, KIND, RANK, IDENTITY, MESSAGE; wide adds SEQ, POOL and
// PHASE after TIME.
std::vector<std::string> EventCells(const v1::Event& e, bool wide, const Style& style) {
  std::vector<std::string> cells = {FormatUnixMillis(e.unix_ms())};
  if (wide) {
    cells.push_back(absl::StrCat(e.seq()));
    cells.push_back(e.pool());
    cells.push_back(e.phase() == v1::POOL_PHASE_UNSPECIFIED ? "-"
                                                            : style.State(PhaseName(e.phase())));
  }
  cells.push_back(e.generation() > 0 ? absl::StrCat(e.generation()) : "-");
  cells.push_back(style.State(EventKindName(e.kind())));
  cells.push_back(e.rank() >= 0 ? absl::StrCat(e.rank()) : "-");
  cells.push_back(e.identity().empty() ? "-" : e.identity());
  cells.push_back(e.message());
  return cells;
}

std::vector<std::string> EventHeader(bool wide) {
  std::vector<std::string> header = {"TIME"};
  if (wide) header.insert(header.end(), {"SEQ", "POOL", "PHASE"});
  header.insert(header.end(), {"GEN", "KIND", "RANK", "IDENTITY", "MESSAGE"});
  return header;
}

// One streamed line: the event's cells padded to fixed widths (later lines cannot realign).
std::string EventLine(const v1::Event& e, bool wide, const Style& style) {
  std::vector<std::string> cells = EventCells(e, wide, style);
  std::vector<size_t> widths = {29};
  if (wide) widths.insert(widths.end(), {6, 10, 12});
  widths.insert(widths.end(), {3, 14, 4, 16});
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) {
    line += cells[i];
    if (i + 1 < cells.size()) {
      const size_t w = VisibleWidth(cells[i]);
      line += std::string(w < widths[i] ? widths[i] - w + 2 : 2, ' ');
    }
  }
  return line;
}

// While alive, SIGINT cancels `context` (from a helper thread: a signal handler may only write
// to a pipe) and is remembered, so the command can end cleanly with status 0. The previous
// SIGINT disposition comes back on destruction. One at a time per process.
class InterruptCancels {
 public:
  explicit InterruptCancels(grpc::ClientContext* context) {
    if (pipe(fds_) != 0) return;
    fcntl(fds_[1], F_SETFL, O_NONBLOCK);
    write_fd_.store(fds_[1]);
    struct sigaction action = {};
    action.sa_handler = &OnSignal;
    sigemptyset(&action.sa_mask);
    installed_ = sigaction(SIGINT, &action, &previous_) == 0;
    thread_ = std::thread([this, context] {
      char c = 0;
      while (read(fds_[0], &c, 1) < 0 && errno == EINTR) {
      }
      if (c == 'i') {
        interrupted_.store(true);
        context->TryCancel();
      }
    });
  }
  ~InterruptCancels() {
    if (installed_) sigaction(SIGINT, &previous_, nullptr);
    write_fd_.store(-1);
    if (thread_.joinable()) {
      const char quit = 'q';
      (void)!write(fds_[1], &quit, 1);
      thread_.join();
    }
    if (fds_[0] >= 0) close(fds_[0]);
    if (fds_[1] >= 0) close(fds_[1]);
  }
  bool interrupted() const { return interrupted_.load(); }

 private:
  static void OnSignal(int) {
    const int fd = write_fd_.load();
    const char c = 'i';
    if (fd >= 0) (void)!write(fd, &c, 1);
  }

  static inline std::atomic<int> write_fd_{-1};
  int fds_[2] = {-1, -1};
  bool installed_ = false;
  struct sigaction previous_ = {};
  std::atomic<bool> interrupted_{false};
  std::thread thread_;
};

std::vector<std::string> PhaseChoices() {
  std::vector<std::string> names;
  const google::protobuf::EnumDescriptor* d = v1::PoolPhase_descriptor();
  for (int i = 0; i < d->value_count(); ++i) {
    if (d->value(i)->number() == v1::POOL_PHASE_UNSPECIFIED) continue;
    names.push_back(
        absl::AsciiStrToLower(PhaseName(static_cast<v1::PoolPhase>(d->value(i)->number()))));
  }
  return names;
}

}  // namespace

// ---- events ---------------------------------------------------------------------------------

CLI::App* EventsCommand::Register(CLI::App* app) {
  CLI::App* cmd = app->add_subcommand("events", "A pool's recent events, oldest first");
  cmd->footer(
      "TIME is local time (ISO 8601, milliseconds). The coordinator keeps a bounded log; use\n"
      "'cohortctl watch' to follow new events. -o json/yaml print the GetEvents response.\n\n"
      "Examples:\n"
      "  cohortctl events --limit 20\n"
      "  cohortctl events -o wide --pool default");
  connection.Register(cmd);
  output.Register(cmd);
  cmd->add_option("--limit,-n", limit, "Only the newest N events (0: all retained)")
      ->check(CLI::NonNegativeNumber);
  return cmd;
}

int EventsCommand::Run(std::ostream& out, std::ostream& err) const {
  auto stub = Connect(connection);
  grpc::ClientContext context;
  SetRpcDeadline(&context);
  v1::GetEventsRequest request;
  request.set_pool(connection.pool);
  request.set_limit(limit);
  v1::GetEventsResponse response;
  grpc::Status status = stub->GetEvents(&context, request, &response);
  if (!status.ok()) return ReportRpcError(status, connection, err);
  if (output.structured()) {
    PrintDocument(response, output.format(), out);
    return kExitOk;
  }
  const Style style = output.StyleFor(out);
  const bool wide = output.format() == OutputFormat::kWide;
  if (response.events_size() == 0) {
    out << "no events\n";
    return kExitOk;
  }
  Table table(EventHeader(wide));
  for (const v1::Event& e : response.events()) table.AddRow(EventCells(e, wide, style));
  table.Print(out);
  return kExitOk;
}

// ---- watch ----------------------------------------------------------------------------------

CLI::App* WatchCommand::Register(CLI::App* app) {
  CLI::App* cmd = app->add_subcommand(
      "watch", "Follow a pool's events as they happen (until Ctrl-C or the stream ends)");
  cmd->footer(
      "One line per event; -o json prints one JSON document per line, -o yaml one YAML\n"
      "document per event (each after '---'). Ctrl-C ends the watch with status 0.\n\n"
      "Examples:\n"
      "  cohortctl watch --snapshot\n"
      "  cohortctl watch --all-pools -o json | jq .event.kind\n"
      "  cohortctl watch --max-events 1 --snapshot -o yaml   # one snapshot, for scripts");
  connection.Register(cmd);
  output.Register(cmd);
  cmd->add_flag("--snapshot", snapshot, "Start with a snapshot of the pool's state");
  cmd->add_flag("--all-pools", all_pools, "Watch every pool (--pool is ignored)");
  cmd->add_option("--max-events", max_events,
                  "Exit (status 0) after this many events, snapshots included (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  return cmd;
}

int WatchCommand::Run(std::ostream& out, std::ostream& err) const {
  auto stub = Connect(connection);
  grpc::ClientContext context;
  v1::WatchRequest request;
  request.set_pool(all_pools ? "" : connection.pool);
  request.set_snapshot(snapshot);
  InterruptCancels interrupt(&context);
  std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader = stub->Watch(&context, request);
  const Style style = output.StyleFor(out);
  const bool wide = output.format() == OutputFormat::kWide;
  v1::WatchEvent event;
  int64_t seen = 0;
  bool enough = false;
  while (reader->Read(&event)) {
    if (output.format() == OutputFormat::kYaml) out << "---\n";
    if (output.structured()) {
      PrintDocument(event, output.format(), out);
    } else if (event.has_snapshot()) {
      const v1::PoolState& s = event.snapshot();
      out << "snapshot  " << PoolHeadline(s, style);
      if (s.missing_ranks_size() > 0) out << "; " << MissingRanksLine(s, style);
      if (!s.error().empty()) out << "; error: " << s.error();
      out << "\n";
    } else {
      // -o wide names the pool of every event; so does a watch of all pools.
      if (all_pools && !wide) out << event.event().pool() << "  ";
      out << EventLine(event.event(), wide, style) << "\n";
    }
    out.flush();
    if (max_events > 0 && ++seen >= max_events) {
      enough = true;
      context.TryCancel();
      break;
    }
  }
  while (reader->Read(&event)) {
  }
  const grpc::Status status = reader->Finish();
  if (enough || interrupt.interrupted() || status.ok()) return kExitOk;
  return ReportRpcError(status, connection, err);
}

// ---- wait -----------------------------------------------------------------------------------

CLI::App* WaitCommand::Register(CLI::App* app) {
  CLI::App* cmd =
      app->add_subcommand("wait", "Wait until a pool reaches a phase (long-polls the coordinator)");
  cmd->footer(
      "Exit status: 0 reached; 3 timed out (the pool's phase and missing ranks on stderr);\n"
      "1 the pool FAILED while waiting for another phase, or refused; 4 unreachable.\n"
      "-o json/yaml print the last GetState response.\n\n"
      "Examples:\n"
      "  cohortctl wait --state ready --timeout 2m\n"
      "  cohortctl wait --state destroyed --generation 3 --timeout 500ms");
  connection.Register(cmd);
  output.Register(cmd);
  cmd->add_option("--state,-s", state, "The phase to wait for")
      ->required()
      ->check(CLI::IsMember(PhaseChoices(), CLI::ignore_case));
  cmd->add_option("--generation,-g", generation, "Only at this generation or a later one");
  AddDurationOption(cmd, "--timeout,-t", &timeout, "How long to wait");
  return cmd;
}

int WaitCommand::Run(std::ostream& out, std::ostream& err) const {
  v1::PoolPhase target;
  if (!v1::PoolPhase_Parse("POOL_PHASE_" + absl::AsciiStrToUpper(state), &target)) {
    err << "error: unknown state '" << state << "': use one of "
        << absl::StrJoin(PhaseChoices(), ", ") << "\n";
    return kExitUsage;
  }
  auto at_generation = [this](const v1::PoolState& s) {
    return !generation.has_value() || s.generation() >= *generation;
  };
  auto failed_instead = [&](const v1::PoolState& s) {
    return target != v1::POOL_PHASE_FAILED && s.phase() == v1::POOL_PHASE_FAILED &&
           at_generation(s);
  };
  v1::PoolState last;
  const int rc = WaitForPoolState(
      connection, timeout,
      [&](const v1::PoolState& s) {
        return (s.phase() == target && at_generation(s)) || failed_instead(s);
      },
      [](const v1::PoolState&) {}, &last, err);
  if (rc != kExitOk && rc != kExitTimeout) return rc;
  const Style style = output.StyleFor(out);
  if (output.structured()) {
    v1::GetStateResponse response;
    *response.mutable_state() = last;
    PrintDocument(response, output.format(), out);
  }
  const std::string wanted = PhaseName(target);
  if (rc == kExitTimeout) {
    err << "error: pool " << last.pool() << " not " << wanted
        << (generation.has_value() ? absl::StrCat(" at generation ", *generation) : "") << " after "
        << absl::FormatDuration(timeout) << ": " << PhaseName(last.phase()) << ", generation "
        << last.generation() << ", " << last.members_ready() << "/" << last.world_size()
        << " ready";
    if (last.missing_ranks_size() > 0) {
      err << ", missing ranks "
          << FormatRanks(RankList(last.missing_ranks().begin(), last.missing_ranks().end()));
    }
    if (!last.error().empty()) err << ", error: " << last.error();
    err << "\n";
    return kExitTimeout;
  }
  if (failed_instead(last)) {
    err << "error: pool " << last.pool() << " FAILED (generation " << last.generation()
        << ") while waiting for " << wanted << ": " << last.error() << "\n";
    return kExitFailed;
  }
  if (!output.structured()) out << PoolHeadline(last, style) << "\n";
  return kExitOk;
}

}  // namespace cohort::cli
