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

}  // namespace cohort::coordinator
