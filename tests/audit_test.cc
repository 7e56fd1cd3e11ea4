// The audit line's format: key=value pairs, values quoted when they hold spaces, quotes, '=',
// control characters or nothing; and --audit-log's file.
#include "coordinator/audit.h"

#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spdlog/spdlog.h"
#include "tests/scratch_dir.h"

namespace cohort::coordinator {
namespace {

TEST(AuditLine, KeyValuePairs_QuotedWhenNeeded) {
  EXPECT_EQ(AuditLine("alice", "operator", "Destroy", "default", "OK"),
            "who=alice role=operator action=Destroy pool=default result=OK");
  EXPECT_EQ(AuditLine("ipv4:10.0.0.1:5", "none", "Read", "", "UNAUTHENTICATED"),
            "who=ipv4:10.0.0.1:5 role=none action=Read pool=\"\" result=UNAUTHENTICATED");
  EXPECT_EQ(AuditValue("a b"), "\"a b\"");
  EXPECT_EQ(AuditValue("a=b"), "\"a=b\"");
  EXPECT_EQ(AuditValue("say \"hi\"\\"), "\"say \\\"hi\\\"\\\\\"");
  EXPECT_EQ(AuditValue("line\nbreak"), "\"line?break\"");
}

TEST(AuditLog, File_AppendsOneLinePerCall) {
  cohort::testing::ScratchDir dir;
  const std::string path = dir / "audit.log";
  ASSERT_TRUE(SetAuditLogFile(path).ok());
  AuditLog()->info(AuditLine("alice", "operator", "Check", "p", "OK"));
  AuditLog()->info(AuditLine("bob", "viewer", "Check", "p", "PERMISSION_DENIED"));
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0], ::testing::EndsWith(" audit who=alice role=operator action=Check pool=p "
                                            "result=OK"));
  EXPECT_THAT(lines[1], ::testing::HasSubstr("who=bob role=viewer"));
  spdlog::drop(kAuditLoggerName);
}

TEST(AuditLog, File_Unopenable_NamesTheFlag) {
  // Under a regular file: no directory can be made there, whoever runs the test.
  cohort::testing::ScratchDir dir;
  std::ofstream(dir / "file") << "x";
  absl::Status s = SetAuditLogFile(dir / "file/audit.log");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), ::testing::HasSubstr("--audit-log"));
}

}  // namespace
}  // namespace cohort::coordinator
