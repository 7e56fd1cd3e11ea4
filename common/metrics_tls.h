// The metrics endpoint's HTTPS settings from the transport options: with TLS, /metrics is served
// over HTTPS with the same certificate, key and CA as the gRPC port.
#ifndef COHORT_COMMON_METRICS_TLS_H_
#define COHORT_COMMON_METRICS_TLS_H_

#include <optional>

#include "common/metrics_util.h"
#include "common/transport_security.h"

namespace cohort {

// std::nullopt (plain HTTP) for insecure options. A server's client_auth carries over (require:
// scrapers present a certificate signed by the CA); a client's options (the agent's) always
// require one.
inline std::optional<MetricsTls> MetricsTlsOf(const TransportSecurityOptions& options) {
  if (options.mode != TransportSecurityOptions::Mode::kTls) return std::nullopt;
  MetricsTls tls;
  tls.certificate_file = options.certificate_file;
  tls.key_file = options.key_file;
  tls.ca_file = options.ca_file;
  tls.require_client_certificate =
      options.client_auth == TransportSecurityOptions::ClientAuth::kRequire;
  tls.reload_interval = options.reload_interval;
  return tls;
}

}  // namespace cohort

#endif  // COHORT_COMMON_METRICS_TLS_H_
