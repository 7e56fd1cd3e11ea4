#include "coordinator/authorizer.h"

namespace cohort::coordinator {

std::string_view ActionName(Action action) {
  switch (action) {
    case Action::kJoin:
      return "join";
    case Action::kStore:
      return "store";
    case Action::kInitialize:
      return "initialize";
    case Action::kDestroy:
      return "destroy";
    case Action::kCheck:
      return "check";
    case Action::kDeletePool:
      return "delete-pool";
    case Action::kRead:
      return "read";
  }
  return "unknown";
}

absl::string_view ActionTitle(Action action) {
  switch (action) {
    case Action::kJoin:
      return "Join";
    case Action::kStore:
      return "Store";
    case Action::kInitialize:
      return "Initialize";
    case Action::kDestroy:
      return "Destroy";
    case Action::kCheck:
      return "Check";
    case Action::kDeletePool:
      return "DeletePool";
    case Action::kRead:
      return "Read";
  }
  return "Unknown";
}

absl::string_view RoleNeeded(Action action) {
  switch (action) {
    case Action::kJoin:
    case Action::kStore:
      return "agent";
    case Action::kInitialize:
    case Action::kDestroy:
    case Action::kCheck:
    case Action::kDeletePool:
      return "operator";
    case Action::kRead:
      return "viewer";
  }
  return "operator";
}

}  // namespace cohort::coordinator
