#include "common/metrics_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>
#include <utility>

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

void AddGauge(prometheus::MetricFamily& family,
              std::vector<prometheus::ClientMetric::Label> labels, double value) {
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

}  // namespace cohort
