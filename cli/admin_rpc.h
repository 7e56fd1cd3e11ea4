// How cohortctl calls the coordinator's AdminService: the connection flags, the stub, the one
// mapping from RPC failures to exit statuses, and the long-poll on a pool's state.
#ifndef COHORT_CLI_ADMIN_RPC_H_
#define COHORT_CLI_ADMIN_RPC_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/time/time.h"
#include "cohort/v1/admin.grpc.pb.h"
#include "common/transport_flags.h"
#include "common/transport_security.h"
#include "grpcpp/grpcpp.h"

namespace cohort::cli {

// Exit statuses of the online commands.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;       // refused by the coordinator, or the pool FAILED
inline constexpr int kExitUsage = 2;        // bad flags or an invalid config
inline constexpr int kExitTimeout = 3;      // a wait ran out of time
inline constexpr int kExitUnreachable = 4;  // the coordinator could not be reached

// How long one plain (non-waiting) admin RPC may take.
inline constexpr absl::Duration kRpcTimeout = absl::Seconds(10);

struct ConnectionFlags {
  std::string coordinator;  // default: $COHORT_COORDINATOR or 127.0.0.1:7070
  std::string pool = "default";
  // From the transport flags (common/transport_flags.h) once `app` is parsed.
  TransportSecurityOptions transport_security;
  TransportFlags transport_flags;
  // Registers --coordinator, --pool and the transport flags (which set app's parse-complete
  // callback).
  // With `transport_required` false, a command line may choose no transport
  // (transport_flags.Chosen() is then false and the command must not connect).
  void Register(CLI::App* app, bool transport_required = true);
  std::string Address() const;
};

std::unique_ptr<v1::AdminService::Stub> Connect(const ConnectionFlags& flags);

// Sets a deadline of kRpcTimeout from now on `context`.
void SetRpcDeadline(grpc::ClientContext* context);

// Maps an RPC failure to an exit status and prints one `error:` line: unreachable (transport
// failures and the RPC's own deadline) -> 4, INVALID_ARGUMENT -> 2, any other refusal -> 1.
int ReportRpcError(const grpc::Status& status, const ConnectionFlags& flags, std::ostream& err);

// Long-polls GetState until `done(state)` or `timeout`, calling `on_change` for every new
// version. `last` holds the last state seen. Returns kExitOk, kExitTimeout, or the exit status
// of a failed RPC (after printing its error line).
int WaitForPoolState(const ConnectionFlags& flags, absl::Duration timeout,
                     const std::function<bool(const v1::PoolState&)>& done,
                     const std::function<void(const v1::PoolState&)>& on_change,
                     v1::PoolState* last, std::ostream& err);

}  // namespace cohort::cli

#endif  // COHORT_CLI_ADMIN_RPC_H_
