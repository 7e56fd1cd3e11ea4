#include "cli/version_command.h"

#include "absl/time/clock.h"
#include "cli/output.h"
#include "common/command_line.h"
#include "common/grpc_status.h"

namespace cohort::cli {

CLI::App* VersionCommand::Register(CLI::App* app) {
  CLI::App* cmd = app->add_subcommand(
      "version", "This client's version and, when it answers, the coordinator's");
  cmd->footer(
      "Examples:\n"
      "  cohortctl version -c 127.0.0.1:7070 --insecure\n"
      "  cohortctl version --client");
  connection.Register(cmd, /*transport_required=*/false);
  AddDurationOption(cmd, "--timeout,-t", &timeout, "How long to wait for the coordinator");
  cmd->add_flag("--client", client_only, "Only this client's version; do not call the coordinator");
  return cmd;
}

int VersionCommand::Run(std::ostream& out, std::ostream& err) const {
  out << "cohortctl " << CohortVersion() << "\n";
  if (client_only) return kExitOk;
  if (!connection.transport_flags.Chosen()) {
    err << "note: no coordinator version: " << kChooseTransport << " to ask the coordinator\n";
    return kExitOk;
  }
  auto stub = Connect(connection);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  v1::ListPoolsResponse response;
  const grpc::Status status = stub->ListPools(&context, v1::ListPoolsRequest(), &response);
  if (!status.ok()) {
    err << "note: no coordinator version: " << connection.Address() << " did not answer within "
        << absl::FormatDuration(timeout) << ": " << FromGrpcStatus(status).message()
        << " (set --coordinator or COHORT_COORDINATOR, or --timeout)\n";
    return kExitOk;
  }
  const std::string& version = response.coordinator_version();
  out << "coordinator "
      << (version.empty() ? "(version not reported: an older coordinator)" : version) << " at "
      << connection.Address() << "\n";
  return kExitOk;
}

}  // namespace cohort::cli
