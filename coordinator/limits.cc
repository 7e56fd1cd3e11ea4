#include "coordinator/limits.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cohort::coordinator {
namespace {

bool NameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

}  // namespace

absl::Status CheckName(absl::string_view what, absl::string_view value, size_t max_length,
                       absl::string_view flag) {
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  }
  if (value.size() > max_length) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is ", value.size(),
                                                   " bytes long (limit ", max_length,
                                                   ": coordinator flag --", flag, ")"));
  }
  for (size_t i = 0; i < value.size(); ++i) {
    if (!NameChar(value[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " '", Printable(value.substr(0, 64)), "' has the character ",
                       Printable(value.substr(i, 1)), " at byte ", i,
                       "; use letters, digits and . _ : - (e.g. a pod name or host:gpu)"));
    }
  }
  return absl::OkStatus();
}

absl::Status LimitExceeded(absl::string_view what, int64_t limit, absl::string_view flag) {
  return absl::ResourceExhaustedError(
      absl::StrCat(what, " (limit ", limit, ": coordinator flag --", flag, ")"));
}

std::string Printable(absl::string_view text, size_t max) {
  const bool cut = text.size() > max;
  if (cut) text = text.substr(0, max);
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out.push_back(c);
    } else {
      absl::StrAppendFormat(&out, "\\x%02x", u);
    }
  }
  if (cut) out += "...";
  return out;
}

}  // namespace cohort::coordinator
