#include "coordinator/state_waiters.h"

#include <utility>

namespace cohort::coordinator {

uint64_t StateWaiters::Add(int64_t after_version, Done done) {
  const uint64_t id = next_id_++;
  Waiter& waiter = waiters_[id];
  waiter.after_version = after_version;
  waiter.done = std::move(done);
  return id;
}

void StateWaiters::SetTimer(uint64_t id, TimerQueue::TimerId timer) {
  if (auto it = waiters_.find(id); it != waiters_.end()) it->second.timer = timer;
}

std::vector<StateWaiters::Waiter> StateWaiters::Release(int64_t version) {
  std::vector<Waiter> due;
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (it->second.after_version < version) {
      due.push_back(std::move(it->second));
      it = waiters_.erase(it);
    } else {
      ++it;
    }
  }
  return due;
}

std::optional<StateWaiters::Waiter> StateWaiters::Take(uint64_t id) {
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return std::nullopt;
  Waiter waiter = std::move(it->second);
  waiters_.erase(it);
  return waiter;
}

std::vector<StateWaiters::Waiter> StateWaiters::TakeAll() {
  std::vector<Waiter> all;
  all.reserve(waiters_.size());
  for (auto& [id, waiter] : waiters_) all.push_back(std::move(waiter));
  waiters_.clear();
  return all;
}

std::vector<TimerQueue::TimerId> StateWaiters::timers() const {
  std::vector<TimerQueue::TimerId> out;
  out.reserve(waiters_.size());
  for (const auto& [id, waiter] : waiters_) out.push_back(waiter.timer);
  return out;
}

}  // namespace cohort::coordinator
