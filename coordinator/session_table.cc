#include "coordinator/session_table.h"

#include <cstdint>

#include "absl/strings/str_format.h"

namespace cohort::coordinator {

std::string SessionTable::Open(const std::string& pool, const std::string& identity) {
  const std::string id =
      absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(gen_), absl::Uniform<uint64_t>(gen_));
  sessions_[id] = Owner{pool, identity};
  return id;
}

const SessionTable::Owner* SessionTable::Find(const std::string& id) const {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : &it->second;
}

}  // namespace cohort::coordinator
