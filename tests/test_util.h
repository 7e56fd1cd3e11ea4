// Helpers shared by the tests.
#ifndef COHORT_TESTS_TEST_UTIL_H_
#define COHORT_TESTS_TEST_UTIL_H_

#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace cohort::testing {

inline std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Parses any JSON document into a protobuf Value (objects become Structs).
inline google::protobuf::Value ParseJsonOrDie(const std::string& json) {
  google::protobuf::Value value;
  auto status = google::protobuf::util::JsonStringToMessage(json, &value);
  EXPECT_TRUE(status.ok()) << status.ToString() << " in " << json.substr(0, 200);
  return value;
}

inline const google::protobuf::Value& Field(const google::protobuf::Value& object,
                                            const std::string& key) {
  static const google::protobuf::Value kNull;
  const auto& fields = object.struct_value().fields();
  auto it = fields.find(key);
  return it == fields.end() ? kNull : it->second;
}

#define COHORT_ASSERT_OK(expr)                          \
  do {                                                  \
    const auto& _cohort_status = (expr);                \
    ASSERT_TRUE(_cohort_status.ok()) << _cohort_status; \
  } while (0)

}  // namespace cohort::testing

#endif  // COHORT_TESTS_TEST_UTIL_H_
