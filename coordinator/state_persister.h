// StatePersister: keeps a StateStore up to date with the coordinator's durable state without
// doing I/O under the coordinator's lock, and without one write per change.
//
// The owner calls MarkDirty under its lock after each change to the durable state (a join that
// gets a rank, a plan, a destroy...), and WriteIfDirty once its lock is released. The first
// thread to reach WriteIfDirty becomes the writer: it takes a snapshot (under the owner's lock,
// through the `snapshot` callback) and saves it, and goes on while changes arrived meanwhile.
// Anyone else returns at once: the writer's next snapshot includes their change. So a burst of
// N changes during one Save costs at most one more Save, not N.
//
// What a crash can lose: a change is durable only once a snapshot taken after it has been
// saved. A call that returns while another thread is writing has not waited for that: its
// change (e.g. a join's rank) is lost if the process dies before the writer's next Save
// completes. Nothing that was saved is ever lost, and the store never holds a mix of two
// snapshots (StateStore::Save is atomic). After such a crash the coordinator recovers as it does
// without a state file for that change: agents report what they hold (RECOVERING), and an agent
// whose rank was not saved joins like a new one. Callers that must not lose a change (the
// coordinator's operator commands) call Flush instead of WriteIfDirty: it returns only once a
// save holding their change completed.
//
// Thread safety: every method may be called from any thread. WriteIfDirty and Flush must not be
// called with the owner's lock held (the snapshot callback takes it).
#ifndef COHORT_COORDINATOR_STATE_PERSISTER_H_
#define COHORT_COORDINATOR_STATE_PERSISTER_H_

#include <cstdint>
#include <functional>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cohort/v1/state.pb.h"
#include "coordinator/state_store.h"

namespace cohort::coordinator {

class StatePersister {
 public:
  // Builds the snapshot to save, taking the owner's lock itself; nullopt: nothing worth saving
  // (e.g. the state would not load back), the change is dropped.
  using Snapshot = std::function<std::optional<v1::DurableState>()>;

  // `store` must outlive the persister.
  StatePersister(StateStore* store, Snapshot snapshot);
  StatePersister(const StatePersister&) = delete;
  StatePersister& operator=(const StatePersister&) = delete;

  // Notes that the durable state changed. Cheap and never blocks on I/O: meant to be called
  // under the owner's lock.
  void MarkDirty();

  // Saves the latest state if it changed and nobody else is saving it (see above). A failed
  // Save is logged; the state stays as it was saved last until the next change.
  void WriteIfDirty();

  // Returns once every change marked before the call is saved (or its Save failed), saving it
  // here when no other thread is. For shutdown and for callers that must see the store current.
  void Flush();

  // How many times Save was called (tests, and the burst bound above).
  int64_t saves() const;

 private:
  StateStore* const store_;
  const Snapshot snapshot_;
  mutable absl::Mutex mu_;
  // A change was marked that no snapshot taken since includes.
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  // A thread is between its first snapshot and its last Save.
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  int64_t saves_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_STATE_PERSISTER_H_
