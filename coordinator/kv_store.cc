#include "coordinator/kv_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cohort::coordinator {

std::vector<std::string> KvStore::Keys(size_t limit) const {
  std::vector<std::string> out;
  for (const auto& [key, value] : values_) {
    if (out.size() == limit) break;
    out.push_back(key);
  }
  return out;
}

bool KvStore::HasAll(const std::vector<std::string>& keys) const {
  for (const std::string& k : keys) {
    if (!values_.count(k)) return false;
  }
  return true;
}

KvStore::Completion KvStore::Deliver(Waiter waiter) const {
  Values values;
  values.reserve(waiter.keys.size());
  for (const std::string& k : waiter.keys) values.push_back(values_.at(k));
  return [cb = std::move(waiter.callback), values = std::move(values)]() mutable {
    cb(std::move(values));
  };
}

absl::StatusOr<std::vector<KvStore::Completion>> KvStore::Set(
    const std::vector<std::pair<std::string, std::string>>& entries, bool set_once) {
  if (set_once) {
    for (const auto& [key, value] : entries) {
      if (values_.count(key)) {
        return absl::AlreadyExistsError(absl::StrCat(
            "key '", key, "' was already set in this generation; unique ids are single-use"));
      }
    }
  }
  int64_t keys = static_cast<int64_t>(values_.size());
  int64_t bytes = bytes_;
  for (const auto& [key, value] : entries) {
    auto it = values_.find(key);
    if (it == values_.end()) {
      ++keys;
      bytes += static_cast<int64_t>(key.size() + value.size());
    } else {
      bytes += static_cast<int64_t>(value.size()) - static_cast<int64_t>(it->second.size());
    }
  }
  if (keys > max_keys_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the rendezvous store of this generation would hold ", keys, " keys (limit ",
                     max_keys_, ": coordinator flag --max-store-keys)"));
  }
  if (bytes > max_bytes_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the rendezvous store of this generation would hold ", bytes, " bytes (limit ",
                     max_bytes_, ": coordinator flag --max-store-bytes)"));
  }
  for (const auto& [key, value] : entries) values_[key] = value;
  bytes_ = bytes;
  std::vector<Completion> done;
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (HasAll(it->second.keys)) {
      done.push_back(Deliver(std::move(it->second)));
      it = waiters_.erase(it);
    } else {
      ++it;
    }
  }
  return done;
}

KvStore::GetResult KvStore::Get(const std::vector<std::string>& keys, Callback callback) {
  GetResult result;
  if (HasAll(keys)) {
    result.immediate = Deliver(Waiter{keys, std::move(callback)});
    return result;
  }
  result.waiter_id = next_waiter_++;
  waiters_[result.waiter_id] = Waiter{keys, std::move(callback)};
  return result;
}

KvStore::Completion KvStore::Expire(uint64_t waiter_id) {
  auto it = waiters_.find(waiter_id);
  if (it == waiters_.end()) return nullptr;
  std::vector<std::string> missing;
  for (const std::string& k : it->second.keys) {
    if (!values_.count(k)) missing.push_back(k);
  }
  // A few keys name the problem; thousands would not fit in a status (gRPC metadata limits).
  constexpr size_t kNamed = 16;
  std::string named =
      absl::StrJoin(missing.begin(), missing.begin() + std::min(missing.size(), kNamed), ", ");
  if (missing.size() > kNamed) {
    absl::StrAppend(&named, " and ", missing.size() - kNamed, " more");
  }
  absl::Status status = absl::DeadlineExceededError(absl::StrCat(
      missing.size(), " rendezvous key", missing.size() == 1 ? "" : "s", " never set: ", named));
  Callback cb = std::move(it->second.callback);
  waiters_.erase(it);
  return [cb = std::move(cb), status]() { cb(status); };
}

std::vector<KvStore::Completion> KvStore::Reset(const absl::Status& status) {
  std::vector<Completion> done;
  for (auto& [id, waiter] : waiters_) {
    done.push_back([cb = std::move(waiter.callback), status]() { cb(status); });
  }
  waiters_.clear();
  values_.clear();
  bytes_ = 0;
  return done;
}

}  // namespace cohort::coordinator
