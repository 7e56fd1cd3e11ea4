// Helpers shared by the coordinator's and the agent's Prometheus endpoints.
#ifndef COHORT_COMMON_METRICS_UTIL_H_
#define COHORT_COMMON_METRICS_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "prometheus/exposer.h"
#include "prometheus/metric_family.h"

namespace cohort {

// Builders for scrape-time gauge families. Labels are given in name order, as Family<> emits
// them.
prometheus::MetricFamily GaugeFamily(std::string name, std::string help);
void AddGauge(prometheus::MetricFamily& family,
              std::vector<prometheus::ClientMetric::Label> labels, double value);

// civetweb's listener thread polls its sockets every 2 s and sees a stop request only then, so
// destroying an Exposer takes up to 2 s; a connection wakes it at once. Destroys `exposer`,
// connecting to its port (IPv4) until it is gone.
void DestroyExposerPromptly(std::unique_ptr<prometheus::Exposer> exposer, const std::string& host,
                            int port);

}  // namespace cohort

#endif  // COHORT_COMMON_METRICS_UTIL_H_
