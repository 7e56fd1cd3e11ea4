#include "coordinator/state_persister.h"

#include <string>
#include <utility>

#include "spdlog/spdlog.h"

namespace cohort::coordinator {

StatePersister::StatePersister(StateStore* store, Snapshot snapshot)
    : store_(store), snapshot_(std::move(snapshot)) {}

void StatePersister::MarkDirty() {
  absl::MutexLock lock(&mu_);
  dirty_ = true;
}

void StatePersister::WriteIfDirty() {
  {
    absl::MutexLock lock(&mu_);
    if (writing_ || !dirty_) return;  // the writer saves this change too, or nothing changed
    writing_ = true;
  }
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (!dirty_) {
        writing_ = false;
        return;
      }
      // Cleared before the snapshot: a change marked after this point sets it again and is
      // either in this snapshot or in the next one.
      dirty_ = false;
    }
    const std::optional<v1::DurableState> state = snapshot_();
    if (!state.has_value()) continue;
    const absl::Status saved = store_->Save(*state);
    if (!saved.ok()) spdlog::error("state store {}: {}", store_->Describe(), saved.ToString());
    absl::MutexLock lock(&mu_);
    ++saves_;
  }
}

void StatePersister::Flush() {
  WriteIfDirty();
  // Another thread was writing: its loop ends only once nothing is dirty, so every change marked
  // before this call is saved when it stops.
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](bool* writing) { return !*writing; }, &writing_));
}

int64_t StatePersister::saves() const {
  absl::MutexLock lock(&mu_);
  return saves_;
}

}  // namespace cohort::coordinator
