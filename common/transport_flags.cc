#include "common/transport_flags.h"

#include "absl/strings/str_cat.h"
#include "common/duration_flag.h"

namespace cohort {

using Side = TransportSecurityOptions::Side;

void TransportFlags::Register(CLI::App* app, Side side, TransportSecurityOptions* resolved,
                              bool required) {
  const std::string group = "Transport security";
  app->add_flag("--insecure", insecure,
                "Plaintext gRPC: no encryption, no authentication (loopback demos and tests)")
      ->group(group);
  app->add_option("--tls-cert", certificate_file,
                  side == Side::kServer ? "PEM certificate this server presents"
                                        : "PEM client certificate to present (with --tls-key)")
      ->envname("COHORT_TLS_CERT")
      ->group(group);
  app->add_option("--tls-key", key_file, "PEM private key of --tls-cert")
      ->envname("COHORT_TLS_KEY")
      ->group(group);
  app->add_option("--tls-ca", ca_file,
                  side == Side::kServer ? "PEM CA bundle that client certificates must chain to"
                                        : "PEM CA bundle the coordinator's certificate must "
                                          "chain to")
      ->envname("COHORT_TLS_CA")
      ->group(group);
  if (side == Side::kServer) {
    app->add_option("--tls-client-auth", client_auth,
                    "require: every client presents a certificate; optional: a client without "
                    "one must bring a bearer token")
        ->check(CLI::IsMember({"require", "optional"}))
        ->capture_default_str()
        ->group(group);
  } else {
    app->add_option("--tls-server-name", server_name,
                    "Name to verify in the coordinator's certificate instead of the address's "
                    "host (for IP addresses)")
        ->group(group);
    app->add_option("--token-file", token_file,
                    "File holding a bearer token sent with every call (re-read when it "
                    "changes; needs TLS)")
        ->envname("COHORT_TOKEN_FILE")
        ->group(group);
  }
  AddDurationOption(app, "--tls-reload-interval", &reload_interval,
                    "How often certificate files are re-read (rotation without a restart)")
      ->group(group);
  app->parse_complete_callback([this, side, resolved, required] {
    if (!required && !Chosen()) return;
    absl::StatusOr<TransportSecurityOptions> options = ToOptions(side);
    if (!options.ok()) throw CLI::ValidationError(std::string(options.status().message()));
    *resolved = *std::move(options);
  });
}

absl::StatusOr<TransportSecurityOptions> TransportFlags::ToOptions(Side side) const {
  const bool any_tls = !certificate_file.empty() || !key_file.empty() || !ca_file.empty();
  if (insecure && any_tls) {
    return absl::InvalidArgumentError(
        "--insecure cannot be combined with --tls-cert, --tls-key or --tls-ca: choose one");
  }
  if (!insecure && !any_tls) return absl::InvalidArgumentError(kChooseTransport);
  TransportSecurityOptions options;
  options.mode =
      insecure ? TransportSecurityOptions::Mode::kInsecure : TransportSecurityOptions::Mode::kTls;
  options.certificate_file = certificate_file;
  options.key_file = key_file;
  options.ca_file = ca_file;
  options.client_auth = client_auth == "optional" ? TransportSecurityOptions::ClientAuth::kOptional
                                                  : TransportSecurityOptions::ClientAuth::kRequire;
  options.server_name = server_name;
  options.token_file = token_file;
  options.reload_interval = reload_interval;
  if (absl::Status s = options.Validate(side); !s.ok()) return s;
  return options;
}

}  // namespace cohort
