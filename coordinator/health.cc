#include "coordinator/health.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace cohort::coordinator {

std::string PoolHealth::ServiceName(absl::string_view pool) {
  return absl::StrCat("cohort.pool.", pool);
}

PoolHealth::PoolHealth(Coordinator* coordinator) {
  // Listener first, then the pools that exist: an event between the two is recorded by the
  // listener and then possibly overwritten with the (same or newer) phase ListPools reports.
  coordinator->AddEventListener([this](const v1::Event& event) { OnEvent(event); });
  // In process: always allowed.
  const std::vector<v1::PoolSummary> pools = *coordinator->ListPools();
  absl::MutexLock lock(&mu_);
  for (const v1::PoolSummary& pool : pools) {
    serving_[pool.pool()] = pool.phase() == v1::POOL_PHASE_READY;
    changed_.insert(pool.pool());
  }
}

PoolHealth::~PoolHealth() { Stop(); }

void PoolHealth::OnEvent(const v1::Event& event) {
  // Under the coordinator's lock: record only. Any event names a pool that exists; a pool only
  // becomes READY through a PHASE event, so a pool first seen through another event is not.
  absl::MutexLock lock(&mu_);
  if (event.kind() == v1::EVENT_KIND_PHASE) {
    serving_[event.pool()] = event.phase() == v1::POOL_PHASE_READY;
    changed_.insert(event.pool());
  } else if (serving_.try_emplace(event.pool(), false).second) {
    changed_.insert(event.pool());
  }
}

void PoolHealth::Start(std::vector<grpc::HealthCheckServiceInterface*> services) {
  services.erase(std::remove(services.begin(), services.end(), nullptr), services.end());
  {
    absl::MutexLock lock(&mu_);
    if (!services_.empty() || stopping_ || services.empty()) return;
    services_ = std::move(services);
  }
  worker_ = std::thread([this] { Run(); });
}

void PoolHealth::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (worker_.joinable()) worker_.join();
}

void PoolHealth::Run() {
  // The first round publishes every pool recorded so far; later rounds the pools whose wanted
  // status changed (and differs from what was last published).
  std::map<std::string, bool> published;
  while (true) {
    std::map<std::string, bool> batch;
    std::vector<grpc::HealthCheckServiceInterface*> services;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](PoolHealth* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stopping_ || !self->changed_.empty();
          },
          this));
      if (stopping_) return;
      for (const std::string& pool : changed_) batch[pool] = serving_[pool];
      changed_.clear();
      services = services_;
    }
    for (const auto& [pool, serving] : batch) {
      auto it = published.find(pool);
      if (it != published.end() && it->second == serving) continue;
      for (grpc::HealthCheckServiceInterface* service : services) {
        service->SetServingStatus(ServiceName(pool), serving);
      }
      published[pool] = serving;
    }
  }
}

}  // namespace cohort::coordinator
