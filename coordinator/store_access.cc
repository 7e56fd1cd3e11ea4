#include "coordinator/store_access.h"

#include <algorithm>
#include <charconv>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace cohort::coordinator {
namespace {

constexpr char kScheme[] =
    "store keys are <kind>/<group index>/<group rank> (a Gloo member's addresses), "
    "<kind>/<group index>/nccl_id or world/nccl_id (NCCL ids), for a group kind of the pool's "
    "layout";

std::optional<int> ParseIndex(absl::string_view text) {
  int value = -1;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || value < 0) {
    return std::nullopt;
  }
  return value;
}

absl::Status Outside(absl::string_view key, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("store key '", key, "' ", why, "; ", kScheme));
}

}  // namespace

absl::StatusOr<KeyScope> ScopeOfKey(const Layout& layout, absl::string_view key) {
  std::vector<absl::string_view> parts = absl::StrSplit(key, '/');
  if (parts.size() == 2 && parts[0] == "world" && parts[1] == "nccl_id") {
    parts = {"world", "0", "nccl_id"};
  }
  if (parts.size() != 3) return Outside(key, "does not have three parts");
  std::optional<GroupKind> kind = ParseGroupKind(parts[0]);
  if (!kind.has_value() || !layout.has(*kind)) {
    return Outside(key, absl::StrCat("names no group kind of this layout ('", parts[0], "')"));
  }
  std::optional<int> index = ParseIndex(parts[1]);
  const RankGroups& groups = layout.groups(*kind);
  if (!index.has_value() || *index >= static_cast<int>(groups.size())) {
    return Outside(key,
                   absl::StrCat("names no ", parts[0], " group (there are ", groups.size(), ")"));
  }
  KeyScope scope;
  scope.kind = *kind;
  scope.group_index = *index;
  scope.group = groups[*index];
  int position = 0;
  if (parts[2] != "nccl_id") {
    std::optional<int> p = ParseIndex(parts[2]);
    if (!p.has_value() || *p >= static_cast<int>(scope.group.size())) {
      return Outside(key, absl::StrCat("names no member of ", parts[0], " group ", *index,
                                       " (size ", scope.group.size(), ")"));
    }
    position = *p;
  }
  scope.owner = scope.group[position];
  scope.owner_role = absl::StrCat("rank ", position, " of ", parts[0], " group ", *index);
  return scope;
}

absl::Status CheckStoreKeys(const Layout& layout, int rank, const std::vector<std::string>& keys,
                            bool write) {
  for (const std::string& key : keys) {
    absl::StatusOr<KeyScope> scope = ScopeOfKey(layout, key);
    if (!scope.ok()) return scope.status();
    if (write) {
      if (scope->owner != rank) {
        return absl::PermissionDeniedError(absl::StrCat("key '", key, "' belongs to global rank ",
                                                        scope->owner, " (", scope->owner_role,
                                                        "); you are rank ", rank));
      }
    } else if (std::find(scope->group.begin(), scope->group.end(), rank) == scope->group.end()) {
      return absl::PermissionDeniedError(
          absl::StrCat("key '", key, "' is of ", GroupKindName(scope->kind), " group ",
                       scope->group_index, " (ranks ", absl::StrJoin(scope->group, ", "),
                       "); you are rank ", rank, ", not a member"));
    }
  }
  return absl::OkStatus();
}

}  // namespace cohort::coordinator
