// Minimal absl::Status matchers for the comm tests (Abseil 20220623 ships none publicly).
#ifndef COHORT_TESTS_COMM_STATUS_MATCHERS_H_
#define COHORT_TESTS_COMM_STATUS_MATCHERS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace cohort::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  if (!s.ok()) *result_listener << s.ToString();
  return s.ok();
}

MATCHER_P(StatusIs, code, "has code " + absl::StatusCodeToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << s.ToString();
  return s.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher, "has code " + absl::StatusCodeToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << s.ToString();
  return s.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(s.message()), result_listener);
}

}  // namespace cohort::testing

#define COHORT_ASSERT_OK_AND_ASSIGN(lhs, expr)               \
  auto COHORT_CONCAT_(_so_, __LINE__) = (expr);              \
  ASSERT_TRUE(COHORT_CONCAT_(_so_, __LINE__).ok())           \
      << COHORT_CONCAT_(_so_, __LINE__).status().ToString(); \
  lhs = *std::move(COHORT_CONCAT_(_so_, __LINE__))
#define COHORT_CONCAT_(a, b) COHORT_CONCAT_INNER_(a, b)
#define COHORT_CONCAT_INNER_(a, b) a##b

#endif  // COHORT_TESTS_COMM_STATUS_MATCHERS_H_
