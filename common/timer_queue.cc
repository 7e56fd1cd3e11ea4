#include "common/timer_queue.h"

#include <vector>

namespace cohort {

void TimerQueue::Start() {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void TimerQueue::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  timers_.clear();
  when_.clear();
}

TimerQueue::TimerId TimerQueue::Schedule(absl::Time when, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  const TimerId id = next_id_++;
  timers_.emplace(std::make_pair(when, id), std::move(fn));
  when_[id] = when;
  return id;
}

bool TimerQueue::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  auto it = when_.find(id);
  if (it == when_.end()) return false;
  timers_.erase({it->second, id});
  when_.erase(it);
  return true;
}

size_t TimerQueue::pending() const {
  absl::MutexLock lock(&mu_);
  return timers_.size();
}

int TimerQueue::FireDue() {
  std::vector<std::function<void()>> due;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    while (!timers_.empty() && timers_.begin()->first.first <= now) {
      when_.erase(timers_.begin()->first.second);
      due.push_back(std::move(timers_.begin()->second));
      timers_.erase(timers_.begin());
    }
  }
  for (auto& fn : due) fn();
  return static_cast<int>(due.size());
}

void TimerQueue::Loop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      // Wake at the earliest deadline, when a timer is added (it may be earlier), or on Stop.
      const absl::Time earliest =
          timers_.empty() ? absl::InfiniteFuture() : timers_.begin()->first.first;
      const size_t count = timers_.size();
      auto changed = [this, earliest, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || timers_.size() != count ||
               (!timers_.empty() && timers_.begin()->first.first != earliest);
      };
      mu_.AwaitWithDeadline(absl::Condition(&changed), earliest);
      if (stopping_) return;
    }
    FireDue();
  }
}

}  // namespace cohort
