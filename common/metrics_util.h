// Helpers shared by the coordinator's and the agent's Prometheus endpoints.
#ifndef COHORT_COMMON_METRICS_UTIL_H_
#define COHORT_COMMON_METRICS_UTIL_H_

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"
#include "prometheus/metric_family.h"

namespace cohort {

// Builders for scrape-time gauge families. Labels are given in name order, as Family<> emits
// them.
prometheus::MetricFamily GaugeFamily(std::string name, std::string help);
void AddGauge(prometheus::MetricFamily& family, std::vector<prometheus::ClientMetric::Label> labels,
              double value);

// civetweb's listener thread polls its sockets every 2 s and sees a stop request only then, so
// destroying an Exposer takes up to 2 s; a connection wakes it at once. Destroys `exposer`,
// connecting to its port (IPv4) until it is gone.
void DestroyExposerPromptly(std::unique_ptr<prometheus::Exposer> exposer, const std::string& host,
                            int port);

// Whether civetweb can serve HTTPS in this process. Debian 12's civetweb 1.15 is built for the
// OpenSSL 1.1 API and finds libssl's functions by name at run time (dlopen("libssl.so") and
// dlsym); OpenSSL 3 no longer exports SSL_get_peer_certificate (now a macro over
// SSL_get1_peer_certificate), so civetweb's pointer to it would be null and the first HTTPS
// connection would crash the whole process (it calls it on every connection). The first call
// loads libcohort_civetweb_ssl_compat.so (which supplies that function, see
// civetweb_ssl_compat.cc) where needed, then does civetweb's lookup; call it before any civetweb
// starts with TLS (MetricsEndpoint::Start does). Errors: FAILED_PRECONDITION when the lookup
// still fails (the compat library missing), UNAVAILABLE without libssl.so.
absl::Status CivetwebTlsSupport();

// HTTPS for a metrics endpoint: the same PEM files as the gRPC port (--tls-cert, --tls-key,
// --tls-ca).
struct MetricsTls {
  std::string certificate_file;
  std::string key_file;
  // Client certificates are verified against this CA: required with
  // require_client_certificate, otherwise checked only when a scraper presents one.
  std::string ca_file;
  bool require_client_certificate = true;
  // How often the files are checked for changes; a change restarts the endpoint on its port.
  absl::Duration reload_interval = absl::Seconds(10);
};

// The HTTP(S) endpoint serving collectables at /metrics (civetweb, through prometheus-cpp): the
// coordinator's and the agent's `--metrics-listen`.
//
// With TLS, civetweb (which loads libssl at run time) is given one PEM holding the key and the
// certificate, written to a private 0600 temporary file and removed once civetweb has read it.
// civetweb reads its certificate only when it starts, so a thread checks the three files every
// reload_interval and, when one changed, restarts the endpoint on the same port (scrapes during
// the few milliseconds of the restart fail; Prometheus retries at the next interval).
class MetricsEndpoint {
 public:
  // `address` is "IP:PORT" ("0.0.0.0:9464", "127.0.0.1:0", "[::1]:0"); port 0 picks a free
  // one. Errors: INVALID_ARGUMENT if it is not IP:PORT; UNAVAILABLE if it cannot be bound, or
  // (with `tls`) if civetweb cannot load the certificate or libssl; with `tls`,
  // CivetwebTlsSupport()'s error (checked before civetweb is started with TLS).
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& address,
      const std::vector<std::weak_ptr<prometheus::Collectable>>& collectables, int num_threads = 2,
      std::optional<MetricsTls> tls = std::nullopt);
  // Stops serving promptly (see DestroyExposerPromptly).
  ~MetricsEndpoint();

  // The port actually bound.
  int port() const { return port_; }
  // "http://HOST:PORT/metrics" (or https://) with the real port.
  std::string url() const;
  // How many times the endpoint was restarted for changed certificate files.
  int reloads() const;
  // How many restarts after a certificate change failed (each is tried again at the next
  // interval until one works).
  int failed_restarts() const;

 private:
  MetricsEndpoint() = default;
  // A new exposer on bind_host_:port (port 0: any).
  absl::StatusOr<std::unique_ptr<prometheus::Exposer>> NewExposer(int port) const;
  // Restarts the endpoint with the certificate files as they are now. Returns false if it could
  // not (half-written files, the port not free yet): the endpoint is down until a later try.
  bool WatchCertificates();

  std::string host_, bind_host_;
  int port_ = 0;
  int num_threads_ = 2;
  std::vector<std::weak_ptr<prometheus::Collectable>> collectables_;
  std::optional<MetricsTls> tls_;
  mutable absl::Mutex mu_;
  std::unique_ptr<prometheus::Exposer> exposer_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int reloads_ ABSL_GUARDED_BY(mu_) = 0;
  int failed_restarts_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread watcher_;
};

}  // namespace cohort

#endif  // COHORT_COMMON_METRICS_UTIL_H_
