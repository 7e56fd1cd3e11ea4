// AgentMetrics: an agent's Prometheus endpoint (`cohort-agent --metrics-listen IP:PORT`,
// GET /metrics). Every value is read at scrape time from the Agent's public API, so the agent's
// own threads do no metrics work.
//
// Metric names (labels in braces; every series also carries pool and identity):
//   cohort_agent_rank                                  gauge  (-1 while a standby)
//   cohort_agent_world_size                            gauge
//   cohort_agent_ready_generation                      gauge  (0 while no generation is READY)
//   cohort_agent_group_state{kind,index,state}         gauge  1 for the communicator's state
//                                                             (creating, ready, error, aborted,
//                                                             destroyed), 0 for the others
//   cohort_agent_group_size{kind,index}                gauge
//   cohort_agent_group_creation_seconds{kind,index}    gauge  (forming the communicator)
//   cohort_agent_group_store_wait_seconds{kind,index}  gauge  (of which blocked on the store)
//   cohort_agent_group_ops_in_flight{kind,index}       gauge  (a stuck collective shows here)
#ifndef COHORT_AGENT_AGENT_METRICS_H_
#define COHORT_AGENT_AGENT_METRICS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/agent.h"
#include "common/metrics_tls.h"
#include "common/metrics_util.h"
#include "prometheus/collectable.h"

namespace prometheus {
class Exposer;
struct MetricFamily;
}  // namespace prometheus

namespace cohort::agent {

// The scrape-time collector (tests use it without HTTP).
class AgentMetricsCollector final : public prometheus::Collectable {
 public:
  // `agent` must outlive every Collect().
  explicit AgentMetricsCollector(const Agent* agent) : agent_(agent) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const Agent* const agent_;
};

class AgentMetricsServer {
 public:
  // Serves `agent`'s metrics at http://`address`/metrics (https:// with `tls`); `address` is
  // IP:PORT, port 0 picks a free one. Destroy the server before the agent. Errors:
  // INVALID_ARGUMENT if the address is not IP:PORT; UNAVAILABLE if it cannot be bound.
  static absl::StatusOr<std::unique_ptr<AgentMetricsServer>> Start(
      const std::string& address, const Agent* agent, std::optional<MetricsTls> tls = std::nullopt);
  ~AgentMetricsServer();

  int port() const { return endpoint_->port(); }
  // "http://HOST:PORT/metrics" with the real port.
  std::string url() const { return endpoint_->url(); }

 private:
  AgentMetricsServer() = default;

  std::shared_ptr<AgentMetricsCollector> collector_;
  std::unique_ptr<MetricsEndpoint> endpoint_;
};

}  // namespace cohort::agent

#endif  // COHORT_AGENT_AGENT_METRICS_H_
