// Transport security: the one place that turns options into gRPC server and channel
// credentials. The coordinator's listening port, the agent's coordinator channel and cohortctl's
// channel all take their credentials from here.
//
// Two modes:
//   kInsecure  plaintext HTTP/2 (only when asked for: --insecure, the loopback demo, tests).
//   kTls       TLS through gRPC's own TLS credentials (grpc::experimental::TlsServerCredentials
//              and TlsCredentials). The server presents certificate_file/key_file and verifies
//              client certificates against ca_file (required, or optional: a client without a
//              certificate must then bring a bearer token, which the policy checks). A client
//              verifies the server against ca_file (and its name, or server_name), presents its
//              own certificate when it has one, and sends token_file's contents as
//              "authorization: Bearer <token>" on every call.
//
// Files are named, not read into the options: gRPC's FileWatcherCertificateProvider re-reads
// them every reload_interval, so a rotated certificate (Kubernetes updates a Secret's files in
// place) is served to new connections without a restart; the token file is read per call.
// Validate() reads each file once so that a missing, unreadable or malformed one stops the start
// with an INVALID_ARGUMENT naming the flag, and the credential functions stay infallible.
#ifndef COHORT_COMMON_TRANSPORT_SECURITY_H_
#define COHORT_COMMON_TRANSPORT_SECURITY_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace cohort {

struct TransportSecurityOptions {
  enum class Mode {
    kInsecure,  // plaintext HTTP/2: no authentication, no encryption
    kTls,       // TLS; mutual when the client presents a certificate
  };
  // Server side: whether a client must present a certificate. A presented certificate is
  // always verified against ca_file.
  enum class ClientAuth {
    kRequire,   // no certificate, no connection
    kOptional,  // a client without one must authenticate with a bearer token (the policy)
  };
  // Which end the options are for (what Validate() requires differs).
  enum class Side { kServer, kClient };

  Mode mode = Mode::kInsecure;
  // PEM files (--tls-cert, --tls-key, --tls-ca). The server needs all three; a client needs
  // the CA and presents cert + key when both are given.
  std::string certificate_file;
  std::string key_file;
  std::string ca_file;
  // Server only (--tls-client-auth).
  ClientAuth client_auth = ClientAuth::kRequire;
  // Client only (--tls-server-name): the name checked in the server's certificate instead of
  // the address's host (for IP addresses and tests). Empty: the address's host.
  std::string server_name;
  // Client only (--token-file): a file holding a bearer token (e.g. a Kubernetes projected
  // ServiceAccount token), re-read when it changes. Needs TLS: gRPC sends call credentials
  // only over a secure channel.
  std::string token_file;
  // How often the certificate files are re-read (--tls-reload-interval). gRPC's file watcher
  // counts whole seconds: at least 1s.
  absl::Duration reload_interval = absl::Seconds(10);

  // "plaintext (--insecure)", "TLS, client certificates required", "TLS, client certificates
  // optional (bearer token otherwise)", "TLS with client certificate", "TLS without client
  // certificate". For logs.
  std::string Describe(Side side) const;
  // "insecure" or "tls". For logs and errors.
  std::string ModeName() const;
  // Errors: INVALID_ARGUMENT naming the flag and the fix for options no credentials can be made
  // from: a missing, unreadable or non-PEM file; a certificate without its key (or the reverse);
  // a server without certificate, key or CA; a client without a CA; a token file or TLS files
  // with kInsecure; a reload interval under 1s. Always OK for default (insecure) options.
  absl::Status Validate(Side side) const;
};

// Credentials for a server's listening port (ServerBuilder::AddListeningPort).
// `options` must Validate(kServer).
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(
    const TransportSecurityOptions& options);

// Credentials for a channel to the coordinator. `options` must Validate(kClient). Use
// CreateChannel() below, which also applies --tls-server-name.
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(
    const TransportSecurityOptions& options);

// The least time between two DNS resolutions of a channel's target (gRPC's default: 30 s).
// gRPC resolves again only when a connection is lost or an attempt fails, so this is how soon
// a client finds a coordinator that moved to a new address behind its name.
inline constexpr absl::Duration kMinTimeBetweenResolutions = absl::Seconds(1);

// `args` plus what `options` needs on the channel (the server name override), plus what every
// channel to the coordinator needs unless `args` sets it already:
//   GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS  kMinTimeBetweenResolutions
grpc::ChannelArguments MakeChannelArguments(const TransportSecurityOptions& options,
                                            grpc::ChannelArguments args = {});

// A channel to `address` secured by `options` (which must Validate(kClient)), with `args`.
// Every channel to the coordinator (agent, cohortctl) is made here.
std::shared_ptr<grpc::Channel> CreateChannel(const std::string& address,
                                             const TransportSecurityOptions& options,
                                             grpc::ChannelArguments args = {});

// The token in a token file's contents: surrounding whitespace (a trailing newline) removed.
// Errors: INVALID_ARGUMENT if it is empty or holds characters a header value cannot carry.
absl::StatusOr<std::string> ParseBearerToken(const std::string& contents);

}  // namespace cohort

#endif  // COHORT_COMMON_TRANSPORT_SECURITY_H_
