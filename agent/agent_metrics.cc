#include "agent/agent_metrics.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/metrics_util.h"
#include "prometheus/exposer.h"
#include "prometheus/metric_family.h"

namespace cohort::agent {
namespace {

using Labels = std::vector<prometheus::ClientMetric::Label>;

constexpr CommState kCommStates[] = {CommState::kCreating, CommState::kReady, CommState::kError,
                                     CommState::kAborted, CommState::kDestroyed};

}  // namespace

std::vector<prometheus::MetricFamily> AgentMetricsCollector::Collect() const {
  const AgentOptions& options = agent_->options();
  const Labels agent_labels = {{"identity", options.identity}, {"pool", options.pool}};
  auto with = [&agent_labels](Labels extra) {
    Labels labels = agent_labels;
    labels.insert(labels.end(), extra.begin(), extra.end());
    return labels;
  };

  auto rank = GaugeFamily("cohort_agent_rank", "This agent's rank (-1 while a standby).");
  auto world_size = GaugeFamily("cohort_agent_world_size", "The pool's world size.");
  auto ready = GaugeFamily("cohort_agent_ready_generation",
                           "The generation whose groups are READY here (0: none).");
  auto state = GaugeFamily("cohort_agent_group_state",
                           "1 for the communicator's current state, 0 for the others.");
  auto size = GaugeFamily("cohort_agent_group_size", "Ranks in the group.");
  auto creation =
      GaugeFamily("cohort_agent_group_creation_seconds", "Time taken to form the communicator.");
  auto store_wait = GaugeFamily("cohort_agent_group_store_wait_seconds",
                                "Part of the creation time spent blocked on the rendezvous store.");
  auto in_flight = GaugeFamily("cohort_agent_group_ops_in_flight",
                               "Collectives running or queued on the communicator.");

  AddGauge(rank, agent_labels, agent_->rank());
  AddGauge(world_size, agent_labels, agent_->world_size());
  const std::shared_ptr<const GroupMap> groups = agent_->groups();
  AddGauge(ready, agent_labels, groups == nullptr ? 0 : static_cast<double>(groups->generation));
  if (groups != nullptr) {
    for (const auto& [kind, group] : groups->groups) {
      const Communicator& comm = group->comm();
      const std::string kind_name(GroupKindName(kind));
      const std::string index = absl::StrCat(group->index());
      const CommState current = comm.state();
      for (CommState s : kCommStates) {
        AddGauge(
            state,
            with({{"index", index}, {"kind", kind_name}, {"state", std::string(CommStateName(s))}}),
            s == current ? 1 : 0);
      }
      const Labels group_labels = with({{"index", index}, {"kind", kind_name}});
      const GroupTiming& timing = comm.creation_timing();
      AddGauge(size, group_labels, comm.size());
      AddGauge(creation, group_labels, absl::ToDoubleSeconds(timing.total));
      AddGauge(store_wait, group_labels, absl::ToDoubleSeconds(timing.store_wait));
      AddGauge(in_flight, group_labels, comm.ops_in_flight());
    }
  }

  std::vector<prometheus::MetricFamily> out;
  for (auto* family :
       {&rank, &world_size, &ready, &state, &size, &creation, &store_wait, &in_flight}) {
    if (!family->metric.empty()) out.push_back(std::move(*family));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<AgentMetricsServer>> AgentMetricsServer::Start(
    const std::string& address, const Agent* agent, std::optional<MetricsTls> tls) {
  std::unique_ptr<AgentMetricsServer> server(new AgentMetricsServer());
  server->collector_ = std::make_shared<AgentMetricsCollector>(agent);
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
      MetricsEndpoint::Start(address, {server->collector_}, /*num_threads=*/1, std::move(tls));
  if (!endpoint.ok()) return endpoint.status();
  server->endpoint_ = *std::move(endpoint);
  return server;
}

AgentMetricsServer::~AgentMetricsServer() {
  // Stop serving before the collector (and the agent it reads) can go away.
  endpoint_.reset();
}

}  // namespace cohort::agent
