// The transport-security flags of the three binaries (common/transport_security.h):
//   --insecure                      plaintext; only when asked for
//   --tls-cert FILE, --tls-key FILE, --tls-ca FILE
//   server: --tls-client-auth require|optional, --tls-reload-interval DURATION
//   client: --tls-server-name NAME, --token-file FILE
// The file flags also read $COHORT_TLS_CERT, $COHORT_TLS_KEY, $COHORT_TLS_CA and
// $COHORT_TOKEN_FILE (handy in a Kubernetes pod spec).
//
// Plaintext is never a default: a command line with neither --insecure nor the TLS files is a
// parse error (exit status 2) naming both choices, and so is one with both. Part of
// cohort_flags (CLI11).
#ifndef COHORT_COMMON_TRANSPORT_FLAGS_H_
#define COHORT_COMMON_TRANSPORT_FLAGS_H_

#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "common/transport_security.h"

namespace cohort {

struct TransportFlags {
  bool insecure = false;
  std::string certificate_file, key_file, ca_file;
  std::string client_auth = "require";
  std::string server_name, token_file;
  absl::Duration reload_interval = absl::Seconds(10);

  // Registers the flags of `side` on `app` (group "Transport security") and a parse-complete
  // check on `app` that fills `*resolved` from them or fails the parse (exit status 2) with
  // ToOptions()'s message. `resolved` must outlive the parse. Sets app's parse-complete
  // callback: `app` must not have one of its own. With `required` false (a command that may
  // skip the coordinator, e.g. `cohortctl version`), choosing nothing is no error: Chosen()
  // then says false and `*resolved` keeps its (insecure) default, which must not be used.
  void Register(CLI::App* app, TransportSecurityOptions::Side side,
                TransportSecurityOptions* resolved, bool required = true);

  // Whether --insecure or a TLS file flag was given.
  bool Chosen() const {
    return insecure || !certificate_file.empty() || !key_file.empty() || !ca_file.empty();
  }

  // The options the flags give, validated for `side` (files read once).
  // Errors: INVALID_ARGUMENT when neither --insecure nor TLS flags were given, when both were,
  // and every TransportSecurityOptions::Validate error.
  absl::StatusOr<TransportSecurityOptions> ToOptions(TransportSecurityOptions::Side side) const;
};

// The message of a command line that chose no transport.
inline constexpr char kChooseTransport[] =
    "choose the transport: --tls-cert/--tls-key/--tls-ca for TLS, or --insecure for plaintext";

}  // namespace cohort

#endif  // COHORT_COMMON_TRANSPORT_FLAGS_H_
