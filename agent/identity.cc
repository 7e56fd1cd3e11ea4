#include "agent/identity.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace cohort::agent {

std::string LocalHostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

absl::StatusOr<std::string> HostnameDeviceIdentity::Identity() {
  return absl::StrCat(LocalHostname(), ":", device_ < 0 ? 0 : device_);
}

}  // namespace cohort::agent
