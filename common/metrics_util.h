// Helpers shared by the coordinator's and the agent's Prometheus endpoints.
#ifndef COHORT_COMMON_METRICS_UTIL_H_
#define COHORT_COMMON_METRICS_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
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

// The HTTP endpoint serving collectables at /metrics (civetweb, through prometheus-cpp): the
// coordinator's and the agent's `--metrics-listen`.
class MetricsEndpoint {
 public:
  // `address` is "IP:PORT" ("0.0.0.0:9464", "127.0.0.1:0", "[::1]:0"); port 0 picks a free
  // one. Errors: INVALID_ARGUMENT if it is not IP:PORT; UNAVAILABLE if it cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& address,
      const std::vector<std::weak_ptr<prometheus::Collectable>>& collectables, int num_threads = 2);
  // Stops serving promptly (see DestroyExposerPromptly).
  ~MetricsEndpoint();

  // The port actually bound.
  int port() const { return port_; }
  // "http://HOST:PORT/metrics" with the real port.
  std::string url() const;

 private:
  MetricsEndpoint() = default;

  std::string host_;
  int port_ = 0;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace cohort

#endif  // COHORT_COMMON_METRICS_UTIL_H_
