#include "coordinator/kv_store.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cohort::coordinator {

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
  for (const auto& [key, value] : entries) values_[key] = value;
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
  absl::Status status = absl::DeadlineExceededError(
      absl::StrCat("rendezvous keys never set: ", absl::StrJoin(missing, ", ")));
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
  return done;
}

}  // namespace cohort::coordinator
