#include "coordinator/state_store.h"

#include "coordinator/state_file.h"

namespace cohort::coordinator {

absl::StatusOr<v1::DurableState> FileStateStore::Load() { return StateFile::Load(path_); }

absl::Status FileStateStore::Save(const v1::DurableState& state) {
  return StateFile::Save(path_, state);
}

}  // namespace cohort::coordinator
