// Limits: every quantity a client's input can grow inside the coordinator has a bound here, with
// a default and the coordinator flag that changes it. Past a limit a request is refused with
// RESOURCE_EXHAUSTED (or INVALID_ARGUMENT for malformed values) naming the limit and its flag,
// and the refusal is counted (`cohort_coordinator_limit_refusals_total{limit}`).
//
// The checks of names (identity, incarnation, pool) live here too: they are the door every
// string from the wire that ends up in logs, events and tables goes through.
#ifndef COHORT_COORDINATOR_LIMITS_H_
#define COHORT_COORDINATOR_LIMITS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace cohort::coordinator {

struct Limits {
  // Pools on one coordinator (--max-pools).
  int max_pools = 64;
  // Members plus standbys of one pool (--max-members-per-pool).
  int max_members_per_pool = 20000;
  // World size of one pool (--max-world-size); also bounds rank hints and held states.
  int64_t max_world_size = 65536;
  // Bytes of an identity or incarnation (--max-identity-length) and of a pool name
  // (--max-pool-name-length).
  size_t max_identity_length = 253;
  size_t max_pool_name_length = 63;
  // The rendezvous store of one pool generation: total key + value bytes (--max-store-bytes)
  // and keys (--max-store-keys).
  int64_t max_store_bytes = 64 << 20;
  int64_t max_store_keys = 1 << 20;
  // Waiting requests: GetState long-polls per pool (--max-state-waiters), KvGet waiters per
  // pool (--max-kv-waiters), Watch streams in all (--max-watchers).
  int max_state_waiters = 1024;
  int max_kv_waiters = 65536;
  int max_watchers = 64;
  // The event log of one pool, in bytes (--max-event-log-bytes; the count limit is
  // CoordinatorOptions::event_log_size). One event's message is cut at kMaxEventMessage.
  size_t max_event_log_bytes = 1 << 20;
  // Bytes queued for one session or watch stream that is not reading (--max-queue-bytes): a
  // session past it is closed, a watcher dropped. Watchers that stop reading can hold at most
  // max_watchers x max_queue_bytes (512 MiB with the defaults); a session's messages are small.
  size_t max_queue_bytes = 8 << 20;
  // The longest wait or deadline a request may ask for: a generation's deadline, a KvGet's or a
  // long-poll's timeout (--max-wait).
  absl::Duration max_wait = absl::Hours(24);
};

// One event message, in bytes; longer ones are cut (with "...").
inline constexpr size_t kMaxEventMessage = 1024;
// Store key names a PoolState lists (store_keys); store_key_count has them all.
inline constexpr size_t kMaxStoreKeysShown = 1024;
// Free-form strings from agents (errors, phases, versions, hosts) are cut to this many bytes.
inline constexpr size_t kMaxFreeText = 4096;
// Keys of one KvGet/KvSet request, and the bytes of one key.
inline constexpr int kMaxKeysPerRequest = 65536;
inline constexpr size_t kMaxKeyLength = 1024;

// INVALID_ARGUMENT unless `value` is 1..max_length bytes of [A-Za-z0-9._:-] (DNS-1123
// characters plus ':', '_' and upper case). `what` names the field ("identity"), `flag` the
// coordinator flag of the length limit.
absl::Status CheckName(absl::string_view what, absl::string_view value, size_t max_length,
                       absl::string_view flag);

// The message of a refusal past a limit: "<what> (limit <limit>: coordinator flag --<flag>)".
absl::Status LimitExceeded(absl::string_view what, int64_t limit, absl::string_view flag);

// `text` cut to `max` bytes, with "..." when cut, and with every byte outside printable ASCII
// written as \xNN (nothing from the wire reaches a log line or a terminal raw).
std::string Printable(absl::string_view text, size_t max = kMaxFreeText);

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_LIMITS_H_
