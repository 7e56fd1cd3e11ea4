#include "cli/admin_rpc.h"

#include <cstdlib>

#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/transport_security.h"

namespace cohort::cli {

void ConnectionFlags::Register(CLI::App* app, bool transport_required) {
  app->add_option("--coordinator,-c", coordinator,
                  "Coordinator host:port (default: $COHORT_COORDINATOR or 127.0.0.1:7070)");
  app->add_option("--pool,-p", pool, "Pool name")->capture_default_str();
  transport_flags.Register(app, TransportSecurityOptions::Side::kClient, &transport_security,
                           transport_required);
}

std::string ConnectionFlags::Address() const {
  if (!coordinator.empty()) return coordinator;
  const char* env = std::getenv("COHORT_COORDINATOR");
  return env != nullptr && *env != '\0' ? env : "127.0.0.1:7070";
}

std::unique_ptr<v1::AdminService::Stub> Connect(const ConnectionFlags& flags) {
  return v1::AdminService::NewStub(CreateChannel(flags.Address(), flags.transport_security));
}

void SetRpcDeadline(grpc::ClientContext* context) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + kRpcTimeout));
}

int ReportRpcError(const grpc::Status& status, const ConnectionFlags& flags, std::ostream& err) {
  const absl::Status s = FromGrpcStatus(status);
  if (IsTransportFailure(s) || s.code() == absl::StatusCode::kDeadlineExceeded) {
    // A failed handshake looks like any other unreachable coordinator: name what to check.
    const char* transport_hint =
        flags.transport_security.mode == TransportSecurityOptions::Mode::kTls
            ? "; with TLS, check that --tls-ca signed the coordinator's certificate, that the "
              "coordinator trusts --tls-cert, and the name it is checked for (--tls-server-name)"
            : "; a coordinator with TLS closes plaintext (--insecure) connections";
    err << "error: cannot reach the coordinator at " << flags.Address() << ": " << s.message()
        << " (set --coordinator or COHORT_COORDINATOR" << transport_hint << ")\n";
    return kExitUnreachable;
  }
  err << "error: " << s.message() << "\n";
  return s.code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
}

int WaitForPoolState(const ConnectionFlags& flags, absl::Duration timeout,
                     const std::function<bool(const v1::PoolState&)>& done,
                     const std::function<void(const v1::PoolState&)>& on_change,
                     v1::PoolState* last, std::ostream& err) {
  auto stub = Connect(flags);
  const absl::Time deadline = absl::Now() + timeout;
  int64_t version = -1;
  while (true) {
    // The first call answers at once: a pool already in the wanted state ends the wait even
    // with a zero timeout.
    const absl::Duration left = deadline - absl::Now();
    if (version >= 0 && left <= absl::ZeroDuration()) return kExitTimeout;
    grpc::ClientContext context;
    context.set_deadline(
        absl::ToChronoTime(absl::Now() + std::max(left, absl::ZeroDuration()) + absl::Seconds(5)));
    v1::GetStateRequest request;
    request.set_pool(flags.pool);
    if (version >= 0) {
      request.mutable_wait()->set_after_version(version);
      request.mutable_wait()->set_timeout_ms(std::max<int64_t>(1, absl::ToInt64Milliseconds(left)));
    }
    v1::GetStateResponse response;
    grpc::Status status = stub->GetState(&context, request, &response);
    if (!status.ok()) return ReportRpcError(status, flags, err);
    *last = response.state();
    if (last->version() != version) on_change(*last);
    version = last->version();
    if (done(*last)) return kExitOk;
  }
}

}  // namespace cohort::cli
