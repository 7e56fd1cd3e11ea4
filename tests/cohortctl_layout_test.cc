// `cohortctl layout`: JSON documents against the golden data, tables, errors, help; both
// in-process and through the real binary (exit status and streams).
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "cli/cohortctl.h"
#include "google/protobuf/util/message_differencer.h"
#include "tests/test_util.h"

namespace cohort {
namespace {

using ::cohort::testing::Field;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct Result {
  int status;
  std::string out, err;
};

Result RunCtl(std::vector<std::string> args) {
  args.insert(args.begin(), "cohortctl");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  int status = cli::RunCohortctl(static_cast<int>(argv.size()), argv.data(), out, err);
  return {status, out.str(), err.str()};
}

google::protobuf::Value GoldenCase(const std::string& name) {
  auto root = testing::ParseJsonOrDie(
      testing::ReadFileOrDie(std::string(COHORT_TEST_DATA_DIR) + "/golden_public.json"));
  for (const auto& c : Field(root, "cases").list_value().values()) {
    if (Field(c, "name").string_value() == name) return c;
  }
  ADD_FAILURE() << "no golden case " << name;
  return {};
}

// Structs print in map order, so documents are compared as messages, not strings.
bool SameJson(const google::protobuf::Value& a, const google::protobuf::Value& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

std::string Compact(const google::protobuf::Value& v) {
  std::string s;
  (void)google::protobuf::util::MessageToJsonString(v, &s);
  return s;
}

TEST(CohortctlLayout, Json_MatchesGoldenGroupsAndKeyOrder) {
  // tp2 x ulysses2 x ring2 x pp2 (world 16).
  Result r = RunCtl({"layout", "--world-size", "16", "--tp", "2", "--ulysses", "2", "--ring", "2",
                     "--pp", "2", "-o", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  auto doc = testing::ParseJsonOrDie(r.out);
  EXPECT_TRUE(Field(doc, "valid").bool_value());
  auto golden = GoldenCase("tp2_u2_r2_pp2");
  EXPECT_TRUE(SameJson(Field(doc, "groups"), Field(golden, "groups"))) << r.out;
  // Key order of the printed document is the golden creation order.
  size_t last = 0;
  for (const char* key : {"\"world\"", "\"dp\"", "\"cfg\"", "\"pp\"", "\"ulysses\"", "\"ring\"",
                          "\"sp\"", "\"tp\"", "\"fs\"", "\"dit\""}) {
    size_t at = r.out.find(key);
    ASSERT_NE(at, std::string::npos) << key;
    EXPECT_GT(at, last) << key;
    last = at;
  }
  EXPECT_EQ(r.out.find("\"ep\""), std::string::npos);
  EXPECT_EQ(r.out.find("per_rank"), std::string::npos);
}

TEST(CohortctlLayout, JsonWithRank_HasGoldenPerRankRecord) {
  Result r = RunCtl({"layout", "-n", "4", "--pp", "2", "--cfg", "2", "--ep", "--moe", "--rank", "3",
                     "-o", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto doc = testing::ParseJsonOrDie(r.out);
  auto golden = GoldenCase("ep_pp2_cfg2");
  EXPECT_TRUE(SameJson(Field(doc, "groups"), Field(golden, "groups"))) << r.out;
  EXPECT_TRUE(SameJson(Field(doc, "per_rank"), Field(golden, "per_rank").list_value().values(3)))
      << r.out;
}

TEST(CohortctlLayout, MaskedEpLayout) {
  Result r = RunCtl({"layout", "-n", "4", "--pp", "2", "--cfg", "2", "--ep", "--moe", "--ep-layout",
                     "masked", "-o", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto doc = testing::ParseJsonOrDie(r.out);
  EXPECT_EQ(Compact(Field(Field(doc, "groups"), "ep")), "[[0,2],[1,3]]");
}

TEST(CohortctlLayout, Table_ListsEveryKind) {
  Result r = RunCtl({"layout", "-n", "8", "--dp", "2", "--cfg", "2", "--ulysses", "2"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("dp2 x cfg2 x ulysses2 (world 8)"));
  EXPECT_THAT(r.out, HasSubstr("[0,4] [1,5] [2,6] [3,7]"));
  for (const char* kind :
       {"world", "dp", "cfg", "pp", "ulysses", "ring", "sp", "tp", "fs", "dit"}) {
    EXPECT_THAT(r.out, HasSubstr(std::string("\n") + kind + " ")) << kind;
  }
}

TEST(CohortctlLayout, TableWithRank_ShowsThatRanksGroups) {
  Result r = RunCtl({"layout", "-n", "8", "--dp", "2", "--cfg", "2", "--ulysses", "2", "-r", "5"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("rank 5 of 8"));
  EXPECT_THAT(r.out, HasSubstr("[1,5]"));  // dp
  EXPECT_THAT(r.out, HasSubstr("[5,7]"));  // cfg
  EXPECT_THAT(r.out, HasSubstr("is_dp_last_group"));
}

TEST(CohortctlLayout, InvalidConfig_Exit2_OneErrorLine_NoStdout) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"layout", "-n", "6", "--ulysses", "2"},
        {"layout", "-n", "4", "--ulysses", "2", "--sp", "4"},
        {"layout", "-n", "4", "--tp", "0"},
        {"layout", "-n", "4", "--ulysses", "4", "--ep"},
        {"layout", "-n", "4", "--ulysses", "4", "--fs", "3"},
        {"layout", "-n", "4", "--ep-layout", "diagonal"},
        {"layout", "-n", "4", "--dp", "4", "--rank", "4"}}) {
    Result r = RunCtl(args);
    EXPECT_EQ(r.status, 2) << args[2];
    EXPECT_EQ(r.out, "");
    EXPECT_THAT(r.err, StartsWith("error: "));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

TEST(CohortctlLayout, UsageErrors_Exit2) {
  Result missing = RunCtl({"layout", "--dp", "2"});
  EXPECT_EQ(missing.status, 2);
  EXPECT_THAT(missing.err, HasSubstr("--world-size"));
  EXPECT_EQ(RunCtl({"layout", "-n", "4", "-o", "xml"}).status, 2);
  EXPECT_EQ(RunCtl({"no-such-command"}).status, 2);
}

TEST(CohortctlLayout, Help_ExplainsWithAnExample) {
  Result r = RunCtl({"layout", "--help"});
  EXPECT_EQ(r.status, 0);
  EXPECT_THAT(r.out, HasSubstr("--world-size"));
  EXPECT_THAT(r.out, HasSubstr("Examples:"));
  EXPECT_THAT(r.out, HasSubstr("cohortctl layout --world-size 8"));
}

// The real binary: exit status and which stream gets what.
TEST(CohortctlBinary, InvalidConfig_ExitStatus2_StderrOnly) {
  const std::string dir = ::testing::TempDir();
  const std::string cmd = std::string(COHORT_BIN_DIR) + "/cohortctl layout -n 6 --ulysses 2 >" +
                          dir + "/out.txt 2>" + dir + "/err.txt";
  const int raw = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(raw));
  EXPECT_EQ(WEXITSTATUS(raw), 2);
  EXPECT_EQ(testing::ReadFileOrDie(dir + "/out.txt"), "");
  EXPECT_THAT(testing::ReadFileOrDie(dir + "/err.txt"), StartsWith("error: world_size (6)"));
}

TEST(CohortctlBinary, ValidConfig_PrintsJson) {
  const std::string dir = ::testing::TempDir();
  const std::string cmd =
      std::string(COHORT_BIN_DIR) + "/cohortctl layout -n 2 --ring 2 -o json >" + dir + "/out2.txt";
  const int raw = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(raw));
  EXPECT_EQ(WEXITSTATUS(raw), 0);
  auto doc = testing::ParseJsonOrDie(testing::ReadFileOrDie(dir + "/out2.txt"));
  EXPECT_EQ(Compact(Field(Field(doc, "groups"), "ring")), "[[0,1]]");
}

}  // namespace
}  // namespace cohort
