#include "coordinator/write_starter.h"

#include <utility>

namespace cohort::coordinator {

WriteStarter::WriteStarter() : thread_([this] { Loop(); }) {}

WriteStarter::~WriteStarter() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void WriteStarter::Add(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  tasks_.push_back(std::move(task));
}

void WriteStarter::Loop() {
  std::deque<std::function<void()>> batch;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !tasks_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      batch.swap(tasks_);
    }
    for (std::function<void()>& task : batch) task();
    batch.clear();
  }
}

}  // namespace cohort::coordinator
