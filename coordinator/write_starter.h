// WriteStarter: a thread that runs short tasks in the order they were added — the first write of
// a session stream whose queue was empty.
//
// Why: the Coordinator sends under its lock (SessionSink::Send only queues), and a StartWrite on
// an idle gRPC stream writes the message to the socket there and then (about 80 µs on a loaded
// 2-core machine, perf). A generation of 16,384 ranks, or the abort of one, held the lock for
// 2-5 s that way: reports, heartbeats and losses waited behind it, and the heartbeat sweep saw
// the whole pool as silent. With the starter the lock is held only to queue; the writes go out
// from here, in each stream's own order (a stream's later messages follow from its OnWriteDone).
//
// Thread safety: Add from any thread. Tasks run on the starter's thread, one at a time; a task
// must not block on anything that waits for another task.
#ifndef COHORT_COORDINATOR_WRITE_STARTER_H_
#define COHORT_COORDINATOR_WRITE_STARTER_H_

#include <deque>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace cohort::coordinator {

class WriteStarter {
 public:
  WriteStarter();
  // Stops the thread; tasks not run yet are dropped (the streams they would start are over: the
  // server is shut down before its services are destroyed).
  ~WriteStarter();
  WriteStarter(const WriteStarter&) = delete;
  WriteStarter& operator=(const WriteStarter&) = delete;

  // Runs `task` on the starter's thread after the tasks added before it.
  void Add(std::function<void()> task);

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_WRITE_STARTER_H_
