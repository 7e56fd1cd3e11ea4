#include "agent/comm/rendezvous_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cohort::agent {

absl::Status RendezvousStore::MultiSet(
    absl::Span<const std::pair<std::string, std::string>> key_values) {
  for (const auto& [key, value] : key_values) {
    if (absl::Status s = Set(key, value); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> RendezvousStore::MultiGet(
    absl::Span<const std::string> keys, absl::Duration timeout) {
  // One deadline for the whole batch: the caller asked for "all keys within `timeout`".
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<std::string> values;
  values.reserve(keys.size());
  for (const std::string& key : keys) {
    absl::StatusOr<std::string> value =
        Get(key, std::max(deadline - absl::Now(), absl::ZeroDuration()));
    if (!value.ok()) return value.status();
    values.push_back(*std::move(value));
  }
  return values;
}

// --- InMemoryRendezvousStore -------------------------------------------------------------------

absl::Status InMemoryRendezvousStore::Set(absl::string_view key, absl::string_view value) {
  absl::MutexLock lock(&mu_);
  values_[key] = std::string(value);
  return absl::OkStatus();
}

absl::Status InMemoryRendezvousStore::MultiSet(
    absl::Span<const std::pair<std::string, std::string>> key_values) {
  absl::MutexLock lock(&mu_);
  for (const auto& [key, value] : key_values) values_[key] = value;
  return absl::OkStatus();
}

absl::StatusOr<std::string> InMemoryRendezvousStore::Get(absl::string_view key,
                                                         absl::Duration timeout) {
  absl::StatusOr<std::vector<std::string>> values =
      MultiGet(std::vector<std::string>{std::string(key)}, timeout);
  if (!values.ok()) return values.status();
  return std::move((*values)[0]);
}

absl::StatusOr<std::vector<std::string>> InMemoryRendezvousStore::MultiGet(
    absl::Span<const std::string> keys, absl::Duration timeout) {
  auto all_present = [this, keys]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::all_of(keys.begin(), keys.end(),
                       [this](const std::string& k) { return values_.contains(k); });
  };
  // Mutex::AwaitWithTimeout re-evaluates the condition on every unlock of mu_ (i.e. every Set),
  // so waiters wake as soon as the last key lands, with no polling interval.
  absl::MutexLock lock(&mu_);
  if (!mu_.AwaitWithTimeout(absl::Condition(&all_present),
                            std::max(timeout, absl::ZeroDuration()))) {
    std::vector<absl::string_view> missing;
    for (const std::string& k : keys) {
      if (!values_.contains(k)) missing.push_back(k);
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "rendezvous: key", missing.size() == 1 ? " '" : "s '", absl::StrJoin(missing, "', '"),
        "' not set within ", absl::FormatDuration(timeout)));
  }
  std::vector<std::string> values;
  values.reserve(keys.size());
  for (const std::string& k : keys) values.push_back(values_.at(k));
  return values;
}

size_t InMemoryRendezvousStore::size() const {
  absl::MutexLock lock(&mu_);
  return values_.size();
}

bool InMemoryRendezvousStore::Contains(absl::string_view key) const {
  absl::MutexLock lock(&mu_);
  return values_.contains(key);
}

// --- PrefixedRendezvousStore -------------------------------------------------------------------

std::string PrefixedRendezvousStore::Full(absl::string_view key) const {
  return absl::StrCat(prefix_, key);
}

absl::Status PrefixedRendezvousStore::Set(absl::string_view key, absl::string_view value) {
  return base_.Set(Full(key), value);
}

absl::StatusOr<std::string> PrefixedRendezvousStore::Get(absl::string_view key,
                                                         absl::Duration timeout) {
  return base_.Get(Full(key), timeout);
}

absl::Status PrefixedRendezvousStore::MultiSet(
    absl::Span<const std::pair<std::string, std::string>> key_values) {
  std::vector<std::pair<std::string, std::string>> full;
  full.reserve(key_values.size());
  for (const auto& [key, value] : key_values) full.emplace_back(Full(key), value);
  return base_.MultiSet(full);
}

absl::StatusOr<std::vector<std::string>> PrefixedRendezvousStore::MultiGet(
    absl::Span<const std::string> keys, absl::Duration timeout) {
  std::vector<std::string> full;
  full.reserve(keys.size());
  for (const std::string& key : keys) full.push_back(Full(key));
  return base_.MultiGet(full, timeout);
}

}  // namespace cohort::agent
