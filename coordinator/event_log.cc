#include "coordinator/event_log.h"

#include <algorithm>
#include <iterator>
#include <utility>

namespace cohort::coordinator {

EventLog::EventLog(size_t max_events, size_t max_bytes)
    : max_events_(max_events), max_bytes_(max_bytes) {}

int64_t EventLog::Record(v1::Event event) {
  event.set_seq(++seq_);
  History& history = pools_[event.pool()];
  history.bytes += event.ByteSizeLong();
  history.events.push_back(event);
  while (!history.events.empty() &&
         (history.events.size() > max_events_ || history.bytes > max_bytes_)) {
    history.bytes -= std::min(history.bytes, history.events.front().ByteSizeLong());
    history.events.pop_front();
  }
  for (const Listener& listener : listeners_) listener(event);
  const std::string pool = event.pool();
  v1::WatchEvent w;
  *w.mutable_event() = std::move(event);
  for (auto it = watchers_.begin(); it != watchers_.end();) {
    if ((!it->second.pool.empty() && it->second.pool != pool) ||
        (it->second.may_see && !it->second.may_see(pool))) {
      ++it;
      continue;
    }
    // A watcher that is gone or cannot keep up is dropped rather than slowing the coordinator.
    it = it->second.sink->Send(w) ? std::next(it) : watchers_.erase(it);
  }
  return seq_;
}

std::vector<v1::Event> EventLog::Since(const std::string& pool, int64_t after_seq,
                                       int limit) const {
  std::vector<v1::Event> out;
  auto it = pools_.find(pool);
  if (it == pools_.end()) return out;
  for (const v1::Event& e : it->second.events) {
    if (e.seq() > after_seq) out.push_back(e);
  }
  if (limit > 0 && out.size() > static_cast<size_t>(limit)) {
    out.erase(out.begin(), out.end() - limit);
  }
  return out;
}

void EventLog::Forget(const std::string& pool) { pools_.erase(pool); }

uint64_t EventLog::AddWatcher(const std::string& pool, WatchSink* sink, PoolFilter may_see) {
  const uint64_t id = next_watcher_++;
  watchers_[id] = Watcher{pool, sink, std::move(may_see)};
  return id;
}

void EventLog::RemoveWatcher(uint64_t id) { watchers_.erase(id); }

void EventLog::CloseWatchers(const absl::Status& why) {
  for (auto& [id, watcher] : watchers_) watcher.sink->Close(why);
  watchers_.clear();
}

void EventLog::AddListener(Listener listener) { listeners_.push_back(std::move(listener)); }

}  // namespace cohort::coordinator
