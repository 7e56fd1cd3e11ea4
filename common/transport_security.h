// Transport security: the one place that turns options into gRPC server and channel
// credentials. The coordinator's listening port, the agent's coordinator channel and cohortctl's
// channel all take their credentials from here, so a new mode (TLS, mTLS) is added once.
//
// Today the only mode is kInsecure (plaintext, what every binary used before). The next mode,
// mutual TLS, adds the PEM contents (certificate, key, CA) to the options, read from the paths
// of the flags once at startup and checked by Validate() (a missing or unreadable file is an
// INVALID_ARGUMENT naming the flag), so that the credential functions stay infallible and each
// caller stays one line.
#ifndef COHORT_COMMON_TRANSPORT_SECURITY_H_
#define COHORT_COMMON_TRANSPORT_SECURITY_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace cohort {

struct TransportSecurityOptions {
  enum class Mode {
    kInsecure,  // plaintext HTTP/2: no authentication, no encryption
  };
  Mode mode = Mode::kInsecure;

  // "insecure". For logs and errors.
  std::string ModeName() const;
  // Errors: INVALID_ARGUMENT naming the problem and the fix for options no credentials can be
  // made from. Always OK for kInsecure.
  absl::Status Validate() const;
};

// Credentials for a server's listening port (ServerBuilder::AddListeningPort).
// `options` must Validate().
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(
    const TransportSecurityOptions& options);

// Credentials for a channel to the coordinator (grpc::CreateChannel / CreateCustomChannel).
// `options` must Validate().
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(
    const TransportSecurityOptions& options);

}  // namespace cohort

#endif  // COHORT_COMMON_TRANSPORT_SECURITY_H_
