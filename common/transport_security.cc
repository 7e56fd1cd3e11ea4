#include "common/transport_security.h"

#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace cohort {
namespace {

using Mode = TransportSecurityOptions::Mode;
using Side = TransportSecurityOptions::Side;
using ClientAuth = TransportSecurityOptions::ClientAuth;

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError("cannot be opened");
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return absl::DataLossError("cannot be read");
  return contents.str();
}

// `path` (given with `flag`) exists, can be read and holds a PEM block whose label contains
// `label` ("CERTIFICATE", "PRIVATE KEY").
absl::Status CheckPemFile(const std::string& flag, const std::string& path,
                          const std::string& label) {
  absl::StatusOr<std::string> contents = ReadWholeFile(path);
  if (!contents.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " ", path, ": ", contents.status().message(), "; give a readable PEM file"));
  }
  const size_t begin = contents->find("-----BEGIN ");
  if (begin == std::string::npos || contents->find(label, begin) == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": not a PEM ", label,
                                                   " (expected a -----BEGIN ... ", label,
                                                   "----- block)"));
  }
  return absl::OkStatus();
}

unsigned int ReloadSeconds(const TransportSecurityOptions& options) {
  const int64_t seconds = absl::ToInt64Seconds(options.reload_interval);
  return static_cast<unsigned int>(std::max<int64_t>(1, seconds));
}

// Sends "authorization: Bearer <token>" on every call, the token read from a file that is
// re-read whenever its modification time or size changes (a projected ServiceAccount token is
// replaced before it expires). Blocking: gRPC runs it off the call's thread.
class BearerTokenFilePlugin : public grpc::MetadataCredentialsPlugin {
 public:
  explicit BearerTokenFilePlugin(std::string path) : path_(std::move(path)) {}

  const char* GetType() const override { return "cohort-bearer-token-file"; }

  grpc::Status GetMetadata(grpc::string_ref /*service_url*/, grpc::string_ref /*method_name*/,
                           const grpc::AuthContext& /*channel_auth_context*/,
                           std::multimap<grpc::string, grpc::string>* metadata) override {
    absl::StatusOr<std::string> token = Token();
    if (!token.ok()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::string(token.status().message()));
    }
    metadata->emplace("authorization", absl::StrCat("Bearer ", *token));
    return grpc::Status::OK;
  }

  grpc::string DebugString() override { return absl::StrCat("BearerTokenFile(", path_, ")"); }

 private:
  absl::StatusOr<std::string> Token() {
    struct stat st {};
    if (stat(path_.c_str(), &st) != 0) {
      return absl::UnauthenticatedError(
          absl::StrCat("--token-file ", path_, " cannot be read; check the file exists"));
    }
    absl::MutexLock lock(&mu_);
    const bool same = st.st_mtim.tv_sec == mtime_.tv_sec && st.st_mtim.tv_nsec == mtime_.tv_nsec &&
                      st.st_size == size_ && st.st_ino == inode_ && !token_.empty();
    if (same) return token_;
    absl::StatusOr<std::string> contents = ReadWholeFile(path_);
    if (!contents.ok()) {
      return absl::UnauthenticatedError(
          absl::StrCat("--token-file ", path_, ": ", contents.status().message()));
    }
    absl::StatusOr<std::string> token = ParseBearerToken(*contents);
    if (!token.ok()) {
      return absl::UnauthenticatedError(
          absl::StrCat("--token-file ", path_, ": ", token.status().message()));
    }
    token_ = *std::move(token);
    mtime_ = st.st_mtim;
    size_ = st.st_size;
    inode_ = st.st_ino;
    return token_;
  }

  const std::string path_;
  absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
  struct timespec mtime_ ABSL_GUARDED_BY(mu_) = {};
  off_t size_ ABSL_GUARDED_BY(mu_) = -1;
  ino_t inode_ ABSL_GUARDED_BY(mu_) = 0;
};

// Whether the caller set `key` in `args` (its value then stands).
bool HasChannelArgument(const grpc::ChannelArguments& args, const char* key) {
  const grpc_channel_args c = args.c_channel_args();
  for (size_t i = 0; i < c.num_args; ++i) {
    if (std::strcmp(c.args[i].key, key) == 0) return true;
  }
  return false;
}

}  // namespace

std::string TransportSecurityOptions::ModeName() const {
  switch (mode) {
    case Mode::kInsecure:
      return "insecure";
    case Mode::kTls:
      return "tls";
  }
  return "unknown";
}

std::string TransportSecurityOptions::Describe(Side side) const {
  if (mode == Mode::kInsecure) return "plaintext (--insecure)";
  if (side == Side::kServer) {
    return client_auth == ClientAuth::kRequire
               ? "TLS, client certificates required"
               : "TLS, client certificates optional (bearer token otherwise)";
  }
  std::string d =
      certificate_file.empty() ? "TLS without client certificate" : "TLS with client certificate";
  if (!token_file.empty()) absl::StrAppend(&d, " and bearer token");
  return d;
}

absl::Status TransportSecurityOptions::Validate(Side side) const {
  if (mode == Mode::kInsecure) {
    if (!token_file.empty()) {
      return absl::InvalidArgumentError(
          "--token-file needs TLS: gRPC sends a bearer token only over an encrypted channel; "
          "drop --insecure and give --tls-ca (and --tls-server-name for an IP address)");
    }
    if (!certificate_file.empty() || !key_file.empty() || !ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--insecure cannot be combined with --tls-cert, --tls-key or --tls-ca: choose one");
    }
    return absl::OkStatus();
  }
  if (mode != Mode::kTls) {
    return absl::InvalidArgumentError("unknown transport security mode: use insecure or tls");
  }
  if (reload_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-reload-interval ", absl::FormatDuration(reload_interval),
                     " is too short: gRPC re-reads certificate files in whole seconds; use 1s "
                     "or more"));
  }
  if (side == Side::kServer) {
    if (certificate_file.empty() || key_file.empty() || ca_file.empty()) {
      return absl::InvalidArgumentError(
          "TLS on the server needs --tls-cert, --tls-key (its certificate and key) and "
          "--tls-ca (the CA that signs client certificates)");
    }
    if (!token_file.empty() || !server_name.empty()) {
      return absl::InvalidArgumentError(
          "--token-file and --tls-server-name are client flags; a server does not use them");
    }
  } else {
    if (ca_file.empty()) {
      return absl::InvalidArgumentError(
          "TLS on the client needs --tls-ca: the CA that signed the coordinator's certificate");
    }
    if (certificate_file.empty() != key_file.empty()) {
      return absl::InvalidArgumentError(
          certificate_file.empty()
              ? "--tls-key given without --tls-cert: give both (the client certificate and its "
                "key) or neither"
              : "--tls-cert given without --tls-key: give both (the client certificate and its "
                "key) or neither");
    }
  }
  if (!certificate_file.empty()) {
    if (absl::Status s = CheckPemFile("--tls-cert", certificate_file, "CERTIFICATE"); !s.ok()) {
      return s;
    }
  }
  if (!key_file.empty()) {
    if (absl::Status s = CheckPemFile("--tls-key", key_file, "PRIVATE KEY"); !s.ok()) return s;
  }
  if (absl::Status s = CheckPemFile("--tls-ca", ca_file, "CERTIFICATE"); !s.ok()) return s;
  if (!token_file.empty()) {
    absl::StatusOr<std::string> contents = ReadWholeFile(token_file);
    if (!contents.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--token-file ", token_file, ": ",
                                                     contents.status().message(),
                                                     "; give a readable file holding a token"));
    }
    absl::StatusOr<std::string> token = ParseBearerToken(*contents);
    if (!token.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--token-file ", token_file, ": ", token.status().message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ParseBearerToken(const std::string& contents) {
  const absl::string_view token = absl::StripAsciiWhitespace(contents);
  if (token.empty()) return absl::InvalidArgumentError("the token file is empty");
  for (const char c : token) {
    // A header value: visible ASCII only (a token holds no spaces or control characters).
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(
          "the token holds a space, control or non-ASCII character; a bearer token is one word "
          "of visible ASCII");
    }
  }
  return std::string(token);
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(
    const TransportSecurityOptions& options) {
  if (options.mode == Mode::kInsecure) return grpc::InsecureServerCredentials();
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      options.key_file, options.certificate_file, options.ca_file, ReloadSeconds(options));
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_identity_key_cert_pairs();
  tls.watch_root_certs();
  tls.set_cert_request_type(options.client_auth == ClientAuth::kRequire
                                ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  return grpc::experimental::TlsServerCredentials(tls);
}

std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(
    const TransportSecurityOptions& options) {
  if (options.mode == Mode::kInsecure) return grpc::InsecureChannelCredentials();
  const bool has_identity = !options.certificate_file.empty();
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      has_identity ? options.key_file : "", has_identity ? options.certificate_file : "",
      options.ca_file, ReloadSeconds(options));
  grpc::experimental::TlsChannelCredentialsOptions tls;
  tls.set_certificate_provider(provider);
  tls.watch_root_certs();
  if (has_identity) tls.watch_identity_key_cert_pairs();
  tls.set_verify_server_certs(true);
  // The chain is verified against ca_file; the verifier then checks the server's name (the
  // address's host, or --tls-server-name).
  tls.set_certificate_verifier(std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  std::shared_ptr<grpc::ChannelCredentials> channel = grpc::experimental::TlsCredentials(tls);
  if (options.token_file.empty()) return channel;
  return grpc::CompositeChannelCredentials(
      channel, grpc::MetadataCredentialsFromPlugin(
                   std::make_unique<BearerTokenFilePlugin>(options.token_file)));
}

grpc::ChannelArguments MakeChannelArguments(const TransportSecurityOptions& options,
                                            grpc::ChannelArguments args) {
  if (options.mode == Mode::kTls && !options.server_name.empty()) {
    args.SetSslTargetNameOverride(options.server_name);
  }
  // A coordinator that moved to a new IP address behind its name (a pod rescheduled behind a
  // headless Service, a Service recreated with a new cluster IP): gRPC's DNS resolver (c-ares or
  // native) does not poll; it resolves again only when the load-balancing policy asks, i.e. when
  // the connection is lost or a connection attempt fails, and then no sooner than this long after
  // its previous resolution (default 30 s). Measured by tests/fault/dns_move_test.cc: with the
  // default, agents kept dialling the old address for ~28 s after the new coordinator listened;
  // with 1 s they rejoined within about a second. 1 s keeps the DNS load bounded: only a channel
  // that cannot reach the coordinator asks, at most once a second (one A and one AAAA query),
  // and a connected channel asks nothing.
  if (!HasChannelArgument(args, GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS)) {
    args.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS,
                static_cast<int>(absl::ToInt64Milliseconds(kMinTimeBetweenResolutions)));
  }
  return args;
}

std::shared_ptr<grpc::Channel> CreateChannel(const std::string& address,
                                             const TransportSecurityOptions& options,
                                             grpc::ChannelArguments args) {
  return grpc::CreateCustomChannel(address, MakeChannelCredentials(options),
                                   MakeChannelArguments(options, std::move(args)));
}

}  // namespace cohort
