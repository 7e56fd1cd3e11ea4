// StateStore: where the coordinator keeps its small durable state (pool configs, generations,
// identity -> rank: v1::DurableState). The Coordinator only ever hands a store a complete
// snapshot, so a store needs no knowledge of pools or members. FileStateStore (--state-file) is
// today's one implementation; a replicated store (e.g. etcd: one key holding the serialized
// DurableState, written with a compare-and-swap on its revision) would be another.
#ifndef COHORT_COORDINATOR_STATE_STORE_H_
#define COHORT_COORDINATOR_STATE_STORE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cohort/v1/state.pb.h"

namespace cohort::coordinator {

class StateStore {
 public:
  virtual ~StateStore() = default;
  // The last state saved. A store that never saved anything returns an empty state. Errors: the
  // store cannot be read or holds something that does not validate (StateFile::Validate); the
  // coordinator then starts empty and never calls Save.
  virtual absl::StatusOr<v1::DurableState> Load() = 0;
  // Replaces the stored state with `state` as one atomic step: after a crash, Load returns
  // either the previous state or this one. Called from one thread at a time (StatePersister),
  // never under the coordinator's lock; may block (fsync, network). Errors are logged by the
  // caller and the next change saves again.
  virtual absl::Status Save(const v1::DurableState& state) = 0;
  // For log messages: where the state lives.
  virtual std::string Describe() const = 0;
};

// The --state-file store: StateFile::Load and StateFile::Save (atomic rename, fsynced, never
// through a link; see state_file.h).
class FileStateStore : public StateStore {
 public:
  explicit FileStateStore(std::string path) : path_(std::move(path)) {}
  absl::StatusOr<v1::DurableState> Load() override;
  absl::Status Save(const v1::DurableState& state) override;
  std::string Describe() const override { return path_; }

 private:
  const std::string path_;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_STATE_STORE_H_
