// Key-value rendezvous used while communicators are being formed.
//
// Backends exchange bootstrap data through it: the NCCL unique id of the world (and of each group
// in per-group-id mode), and the Gloo transport addresses of every rank of every group. In
// production the agent implements this interface on top of the coordinator (gRPC); tests use
// InMemoryRendezvousStore. The interface is deliberately small so that both are easy to write.
//
// Keys and values are byte strings (values may hold NUL bytes: an ncclUniqueId is 128 raw bytes).
// A key, once Set, is visible to every later Get; Set of an existing key overwrites it (last write
// wins). Key namespaces (generation, group) are the caller's job: see PrefixedRendezvousStore.
// Implementations must be thread-safe: backends form several groups concurrently over one store.

#ifndef COHORT_AGENT_COMM_RENDEZVOUS_STORE_H_
#define COHORT_AGENT_COMM_RENDEZVOUS_STORE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace cohort::agent {

class RendezvousStore {
 public:
  virtual ~RendezvousStore() = default;

  // Publishes `value` under `key`.
  // Errors: implementation-specific; UNAVAILABLE when the store cannot be reached (retryable),
  // ABORTED when the store refuses the write because the generation moved on.
  virtual absl::Status Set(absl::string_view key, absl::string_view value) = 0;

  // Waits until `key` exists and returns its value.
  // Errors: DEADLINE_EXCEEDED (message names the key) when the key does not appear within
  // `timeout`; otherwise as Set.
  virtual absl::StatusOr<std::string> Get(absl::string_view key, absl::Duration timeout) = 0;

  // Batched Set. The default implementation calls Set once per pair, stopping at the first error.
  // Errors: as Set.
  virtual absl::Status MultiSet(absl::Span<const std::pair<std::string, std::string>> key_values);

  // Batched Get: waits until every key exists (one shared `timeout`) and returns the values in the
  // order of `keys`. The default implementation calls Get once per key with the remaining time.
  // Errors: DEADLINE_EXCEEDED naming the missing key(s); otherwise as Set.
  virtual absl::StatusOr<std::vector<std::string>> MultiGet(absl::Span<const std::string> keys,
                                                            absl::Duration timeout);

  // Ends every call in progress (a wait for peers, above all) and fails every later one with
  // `why`: the build using this store was aborted. Thread-safe. The default does nothing (waits
  // end at their own timeout); the coordinator's store cancels its RPCs.
  virtual void Cancel(absl::Status why) { (void)why; }
};

// Thread-safe in-process store for tests and single-process use. Waiters block on the store's
// mutex condition (no polling), so a Set wakes them at once.
class InMemoryRendezvousStore final : public RendezvousStore {
 public:
  InMemoryRendezvousStore() = default;

  // Never fails.
  absl::Status Set(absl::string_view key, absl::string_view value) override;
  // Errors: DEADLINE_EXCEEDED naming the key.
  absl::StatusOr<std::string> Get(absl::string_view key, absl::Duration timeout) override;
  // Sets all pairs atomically (waiters see all of them or none). Never fails.
  absl::Status MultiSet(absl::Span<const std::pair<std::string, std::string>> key_values) override;
  // Errors: DEADLINE_EXCEEDED naming every key still missing at the deadline.
  absl::StatusOr<std::vector<std::string>> MultiGet(absl::Span<const std::string> keys,
                                                    absl::Duration timeout) override;

  // Number of keys (for tests and diagnostics).
  size_t size() const;
  // Whether `key` exists right now, without waiting.
  bool Contains(absl::string_view key) const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::string> values_ ABSL_GUARDED_BY(mu_);
};

// Views another store under a key prefix, so that each group (and each generation) gets its own
// namespace: PrefixedRendezvousStore(store, "gen/7/") maps key "tp/3/0" to "gen/7/tp/3/0".
// The prefix is prepended verbatim (include the separator). Error messages name the full key.
// `base` must outlive this object.
class PrefixedRendezvousStore final : public RendezvousStore {
 public:
  PrefixedRendezvousStore(RendezvousStore& base, std::string prefix)
      : base_(base), prefix_(std::move(prefix)) {}

  const std::string& prefix() const { return prefix_; }

  // Errors: those of the base store.
  absl::Status Set(absl::string_view key, absl::string_view value) override;
  absl::StatusOr<std::string> Get(absl::string_view key, absl::Duration timeout) override;
  absl::Status MultiSet(absl::Span<const std::pair<std::string, std::string>> key_values) override;
  absl::StatusOr<std::vector<std::string>> MultiGet(absl::Span<const std::string> keys,
                                                    absl::Duration timeout) override;

 private:
  std::string Full(absl::string_view key) const;

  RendezvousStore& base_;
  const std::string prefix_;
};

}  // namespace cohort::agent

#endif  // COHORT_AGENT_COMM_RENDEZVOUS_STORE_H_
