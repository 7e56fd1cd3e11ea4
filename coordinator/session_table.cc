#include "coordinator/session_table.h"

#include <openssl/rand.h>

#include <array>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/escaping.h"
#include "spdlog/spdlog.h"

namespace cohort::coordinator {
namespace {

// 128 bits from the CSPRNG, as 32 hex digits.
std::string NewSessionId() {
  std::array<unsigned char, 16> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    // Without a working CSPRNG session ids would be guessable: better stop than hand them out.
    spdlog::critical("RAND_bytes failed: no random session ids can be made");
    std::abort();
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace

std::string SessionTable::Open(const std::string& pool, const std::string& identity,
                               const std::string& principal) {
  std::string id = NewSessionId();
  while (sessions_.count(id) != 0) id = NewSessionId();
  sessions_[id] = Owner{pool, identity, principal};
  return id;
}

const SessionTable::Owner* SessionTable::Find(const std::string& id) const {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : &it->second;
}

}  // namespace cohort::coordinator
