#include "coordinator/teardown.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace cohort::coordinator {

void Teardown::Start(v1::DestroyScope scope, bool from_ready, std::string reason) {
  scope_ = scope;
  from_ready_ = from_ready;
  ok_ = true;
  reason_ = std::move(reason);
}

std::string Teardown::Fail(const std::string& pool_error, const std::string& failure) {
  const std::string error = ok_ ? failure : absl::StrCat(pool_error, "; ", failure);
  ok_ = false;
  return error;
}

bool Teardown::KeepsWorld() const {
  return ok_ && from_ready_ && scope_ == v1::DESTROY_SCOPE_MODEL_PARALLEL;
}

const char* Teardown::What() const {
  return scope_ == v1::DESTROY_SCOPE_ALL ? "everything" : "model-parallel groups";
}

}  // namespace cohort::coordinator
