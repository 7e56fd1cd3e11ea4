// StateFile: reads, validates and writes the coordinator's durable state (--state-file): a
// JSON `v1::DurableState` (proto/cohort/v1/state.proto) of pool configs, generations and
// identity -> rank. No Coordinator needed, so every rule here is tested on its own.
//
// Writing is atomic and does not follow links: a fresh temporary is created next to the file
// with mkostemp (O_CREAT|O_EXCL, mode 0600, so nothing planted at a temporary's name is ever
// opened), written fully, fsynced, renamed over the file, and the directory is fsynced. A crash
// at any point leaves either the old file or the new one, never a mix (at worst a stray
// `<path>.tmp-XXXXXX`).
//
// At startup (Open): the path must be usable — not a directory, not a symbolic link, in an
// existing directory where files can be created — and an existing file must parse and pass
// Validate. A file that does not is left untouched and the start is refused, unless `reset`
// (--state-file-reset) is given: then it is moved aside to `<path>.corrupt-<UTC time>` and the
// coordinator starts empty.
#ifndef COHORT_COORDINATOR_STATE_FILE_H_
#define COHORT_COORDINATOR_STATE_FILE_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cohort/v1/state.pb.h"

namespace cohort::coordinator {

class StateFile {
 public:
  // The longest pool name and identity a state file may hold (bytes).
  static constexpr size_t kMaxNameLength = 1024;
  // The largest state file read (bytes); anything bigger is refused as corrupt.
  static constexpr size_t kMaxFileSize = size_t{256} << 20;

  // Reads and validates `path`. A missing file is an empty state (a first start). Errors:
  // DATA_LOSS (does not parse, or too big), INVALID_ARGUMENT (parses but fails Validate),
  // FAILED_PRECONDITION (a symbolic link, a directory, or not a regular file), or the errno's
  // code when it cannot be read. Every message names the path.
  static absl::StatusOr<v1::DurableState> Load(const std::string& path);

  // Every rule a loaded state must meet, one INVALID_ARGUMENT naming the pool and entry at
  // fault: pool names non-empty, at most kMaxNameLength and unique; a config valid
  // (ValidateParallelConfig) with world_size equal to the pool's; without a config,
  // world_size 0; generation >= 0; identities non-empty and at most kMaxNameLength; ranks in
  // [0, world_size) (in [0, kMaxWorldSize) while the world is unknown), no rank held by two
  // identities.
  static absl::Status Validate(const v1::DurableState& state);

  // Writes `state` atomically (see above), mode 0600. Errors name the path and the errno.
  static absl::Status Save(const std::string& path, const v1::DurableState& state);

  // Whether the coordinator can keep its state at `path`: an existing entry there must be a
  // regular file (a directory or a symbolic link is refused: the file is replaced by a rename,
  // which would replace the link itself), its directory must exist and accept new files (one
  // is created and removed). FAILED_PRECONDITION naming the path and the fix.
  static absl::Status CheckUsable(const std::string& path);

  // The startup check: CheckUsable, then Load. A file that fails to parse or validate is
  // refused (FAILED_PRECONDITION naming the path, where --state-file-reset would move it and
  // the flag; the file is left as it is) or, with `reset`, moved aside to
  // CorruptPath(path, now) and an empty state returned. With `reset`, a valid file is loaded
  // as usual.
  static absl::StatusOr<v1::DurableState> Open(const std::string& path, bool reset,
                                               absl::Time now = absl::Now());

  // `<path>.corrupt-YYYYMMDDTHHMMSSZ` (UTC).
  static std::string CorruptPath(const std::string& path, absl::Time now);
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_STATE_FILE_H_
