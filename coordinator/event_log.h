// EventLog: what happened to each pool, for GetEvents, the Watch streams and the event listeners
// (metrics, health). It numbers events (one sequence across all pools, so a watcher of every
// pool sees one order), keeps a bounded history per pool and fans each event out.
//
// Bounds: a pool's history keeps at most `max_events` events and `max_bytes` of them (the oldest
// go first), whatever the agents send. A watcher whose sink refuses an event (gone, or too far
// behind: its queue is full) is dropped at once rather than slowing everyone else down.
//
// Thread safety: none; the owner (the Coordinator) guards it with its lock. Sinks and listeners
// are called with that lock held: they must only queue, never call back into the owner.
#ifndef COHORT_COORDINATOR_EVENT_LOG_H_
#define COHORT_COORDINATOR_EVENT_LOG_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cohort/v1/admin.pb.h"

namespace cohort::coordinator {

// Where the coordinator streams events to a watcher (the Watch RPC, or a test fake).
class WatchSink {
 public:
  virtual ~WatchSink() = default;
  // Queues a message; must not block or call back into the Coordinator. Returns false if the
  // watcher is gone or too far behind (it is then dropped).
  virtual bool Send(const v1::WatchEvent& event) = 0;
  // Ends the stream with `why` once what is queued is written (the coordinator is stopping).
  // Must not block or call back into the Coordinator.
  virtual void Close(const absl::Status& why) = 0;
};

class EventLog {
 public:
  using Listener = std::function<void(const v1::Event&)>;

  EventLog(size_t max_events, size_t max_bytes);

  // Gives `event` the next sequence number, keeps it in the history of its pool (event.pool()),
  // passes it to every listener and streams it to the watchers of that pool and of all pools.
  // Returns the sequence number.
  int64_t Record(v1::Event event);

  // The events of `pool` after `after_seq`, oldest first: the newest `limit` of them (limit <= 0:
  // all that are kept). Empty for a pool with no history.
  std::vector<v1::Event> Since(const std::string& pool, int64_t after_seq, int limit) const;

  // Drops the history of `pool` (it was deleted; a pool made again under its name starts empty).
  void Forget(const std::string& pool);

  // Streams events of `pool` (empty: every pool) to `sink` until RemoveWatcher or until the sink
  // refuses one. The caller checks the watcher limit first (watchers()). `may_see` (when set)
  // leaves out the events of pools it answers false for (a watcher of every pool that may read
  // only some); called under the caller's lock, it must be quick.
  using PoolFilter = std::function<bool(const std::string& pool)>;
  uint64_t AddWatcher(const std::string& pool, WatchSink* sink, PoolFilter may_see = nullptr);
  // Idempotent: an id already dropped is ignored.
  void RemoveWatcher(uint64_t id);
  // Closes every watcher's stream with `why` and drops them all.
  void CloseWatchers(const absl::Status& why);
  size_t watchers() const { return watchers_.size(); }

  void AddListener(Listener listener);

 private:
  struct History {
    std::deque<v1::Event> events;
    size_t bytes = 0;  // of `events`
  };
  struct Watcher {
    std::string pool;  // empty: all
    WatchSink* sink;
    PoolFilter may_see;
  };

  const size_t max_events_;
  const size_t max_bytes_;
  int64_t seq_ = 0;
  std::map<std::string, History> pools_;
  std::map<uint64_t, Watcher> watchers_;
  uint64_t next_watcher_ = 1;
  std::vector<Listener> listeners_;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_EVENT_LOG_H_
