#include "agent/identity.h"

#include <unistd.h>

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
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

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

namespace {

// A pod index: only digits (no sign, no spaces), fitting an int.
std::optional<int> ParseIndex(std::string_view text) {
  if (text.empty() || text.size() > 9) return std::nullopt;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  int value = 0;
  if (!absl::SimpleAtoi(absl::string_view(text.data(), text.size()), &value) || value < 0)
    return std::nullopt;
  return value;
}

std::optional<std::string> NonEmpty(const EnvLookup& env, const std::string& name) {
  std::optional<std::string> value = env(name);
  if (value.has_value() && value->empty()) return std::nullopt;
  return value;
}

}  // namespace

std::optional<int> PodOrdinal(std::string_view pod_name) {
  const size_t dash = pod_name.rfind('-');
  if (dash == std::string_view::npos) return std::nullopt;
  return ParseIndex(pod_name.substr(dash + 1));
}

absl::StatusOr<PodIdentity> ResolvePodIdentity(const PodIdentityFlags& flags,
                                               const EnvLookup& env) {
  PodIdentity out;
  const std::optional<std::string> pod_name = NonEmpty(env, "POD_NAME");
  if (flags.identity.has_value() && !flags.identity->empty()) {
    out.identity = *flags.identity;
    out.identity_source = "flag --identity";
  } else if (pod_name.has_value()) {
    out.identity = *pod_name;
    out.identity_source = "env POD_NAME";
  } else {
    out.identity_source = "default";
  }
  out.pod_namespace = NonEmpty(env, "POD_NAMESPACE").value_or("");

  if (flags.rank_hint.has_value()) {
    if (*flags.rank_hint >= 0) out.rank_hint = *flags.rank_hint;
    out.rank_hint_source = "flag --rank-hint";
    return out;
  }
  for (const char* name : {"COHORT_POD_INDEX", "POD_INDEX", "LWS_WORKER_INDEX"}) {
    const std::optional<std::string> value = NonEmpty(env, name);
    if (!value.has_value()) continue;
    const std::optional<int> index = ParseIndex(*value);
    if (!index.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "$", name, "=\"", absl::CEscape(*value),
          "\" is not a pod index (a non-negative integer); set it to the pod's ordinal, unset "
          "it, or pass --rank-hint N (--rank-hint -1: no hint)"));
    }
    out.rank_hint = *index;
    out.rank_hint_source = absl::StrCat("env ", name);
    return out;
  }
  if (pod_name.has_value()) {
    if (std::optional<int> ordinal = PodOrdinal(*pod_name); ordinal.has_value()) {
      out.rank_hint = *ordinal;
      out.rank_hint_source = "POD_NAME's ordinal suffix";
      return out;
    }
  }
  out.rank_hint_source = "none";
  return out;
}

}  // namespace cohort::agent
