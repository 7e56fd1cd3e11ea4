// KvStore: the rendezvous key-value store of one pool generation. Agents exchange NCCL unique ids
// and Gloo addresses through it. Gets wait for missing keys without holding a thread: a waiter
// is a callback, completed by the Set that supplies its last key, by its deadline, or by Reset.
//
// Not thread-safe on its own: the Coordinator calls it under its mutex and runs the returned
// completions after unlocking.
#ifndef COHORT_COORDINATOR_KV_STORE_H_
#define COHORT_COORDINATOR_KV_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cohort::coordinator {

class KvStore {
 public:
  using Values = std::vector<std::string>;
  using Callback = std::function<void(absl::StatusOr<Values>)>;
  // A completion to run after the caller releases its lock.
  using Completion = std::function<void()>;

  // At most `max_keys` keys and `max_bytes` bytes of keys and values are stored; a Set past
  // either is refused whole (RESOURCE_EXHAUSTED naming the limit and its coordinator flag).
  KvStore(int64_t max_keys = int64_t{1} << 20, int64_t max_bytes = int64_t{64} << 20)
      : max_keys_(max_keys), max_bytes_(max_bytes) {}

  // Stores entries. With set_once, refuses (ALREADY_EXISTS, naming the key, storing nothing)
  // if any key already exists. Returns the completions of waiters it satisfied.
  absl::StatusOr<std::vector<Completion>> Set(
      const std::vector<std::pair<std::string, std::string>>& entries, bool set_once);

  // If every key exists, returns a completion delivering the values now. Otherwise registers a
  // waiter and returns its id (> 0); the caller schedules Expire(id) at the deadline.
  struct GetResult {
    uint64_t waiter_id = 0;  // 0 when answered at once
    Completion immediate;    // set when answered at once
  };
  GetResult Get(const std::vector<std::string>& keys, Callback callback);

  // Fails a waiter with DEADLINE_EXCEEDED naming the keys still missing (the first few and a
  // count). No-op if it finished.
  Completion Expire(uint64_t waiter_id);
  // Drops a waiter whose caller went away, without calling it.
  void Cancel(uint64_t waiter_id) { waiters_.erase(waiter_id); }

  // Drops every key and fails every waiter with `status` (generation change).
  std::vector<Completion> Reset(const absl::Status& status);

  size_t size() const { return values_.size(); }
  // The first `limit` key names, sorted (never the values).
  std::vector<std::string> Keys(size_t limit) const;
  int64_t bytes() const { return bytes_; }
  size_t waiters() const { return waiters_.size(); }

 private:
  struct Waiter {
    std::vector<std::string> keys;
    Callback callback;
  };
  bool HasAll(const std::vector<std::string>& keys) const;
  Completion Deliver(Waiter waiter) const;

  int64_t max_keys_;
  int64_t max_bytes_;
  int64_t bytes_ = 0;
  std::map<std::string, std::string> values_;
  std::map<uint64_t, Waiter> waiters_;
  uint64_t next_waiter_ = 1;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_KV_STORE_H_
