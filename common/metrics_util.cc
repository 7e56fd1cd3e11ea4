#include "common/metrics_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace cohort {

prometheus::MetricFamily GaugeFamily(std::string name, std::string help) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = prometheus::MetricType::Gauge;
  return family;
}

void AddGauge(prometheus::MetricFamily& family, std::vector<prometheus::ClientMetric::Label> labels,
              double value) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  family.metric.push_back(std::move(metric));
}

void DestroyExposerPromptly(std::unique_ptr<prometheus::Exposer> exposer, const std::string& host,
                            int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const std::string wake_host = host == "0.0.0.0" || host == "localhost" ? "127.0.0.1" : host;
  if (port <= 0 || inet_pton(AF_INET, wake_host.c_str(), &addr.sin_addr) != 1) {
    exposer.reset();  // IPv6: no wake-up, the plain (slow) stop
    return;
  }
  absl::Notification gone;
  std::thread waker([&] {
    // Bounded: civetweb's own poll ends the stop within 2 s anyway.
    for (int i = 0; i < 200 && !gone.HasBeenNotified(); ++i) {
      const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd >= 0) {
        connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
        close(fd);
      }
      gone.WaitForNotificationWithTimeout(absl::Milliseconds(10));
    }
  });
  exposer.reset();
  gone.Notify();
  waker.join();
}

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& address,
    const std::vector<std::weak_ptr<prometheus::Collectable>>& collectables, int num_threads) {
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(absl::string_view(address).substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics address '", address, "' is not IP:PORT; e.g. 0.0.0.0:9464 or 127.0.0.1:0"));
  }
  std::string host = address.substr(0, colon);
  // civetweb takes numeric addresses only; "localhost" is common enough to accept.
  const std::string bind_host = host == "localhost" ? "127.0.0.1" : host;
  std::unique_ptr<MetricsEndpoint> endpoint(new MetricsEndpoint());
  try {
    // civetweb reports a failed bind by throwing: caught here, at the edge.
    endpoint->exposer_ = std::make_unique<prometheus::Exposer>(absl::StrCat(bind_host, ":", port),
                                                               static_cast<size_t>(num_threads));
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", address, " (", e.what(),
                                               "); is the port in use or the IP not local?"));
  }
  const std::vector<int> ports = endpoint->exposer_->GetListeningPorts();
  if (ports.empty() || ports.front() <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", address));
  }
  endpoint->host_ = std::move(host);
  endpoint->port_ = ports.front();
  for (const auto& collectable : collectables) endpoint->exposer_->RegisterCollectable(collectable);
  return endpoint;
}

MetricsEndpoint::~MetricsEndpoint() { DestroyExposerPromptly(std::move(exposer_), host_, port_); }

std::string MetricsEndpoint::url() const {
  return absl::StrCat("http://", host_, ":", port_, "/metrics");
}

}  // namespace cohort
