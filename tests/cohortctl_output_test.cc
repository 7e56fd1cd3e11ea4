// cohortctl's output: yaml (the same data as json, quoted where YAML would misread it, and read
// back by a YAML parser), durations, colours and table widths, errors and help.
#include <algorithm>
#include <csignal>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/output.h"
#include "cli/table.h"
#include "common/cohort_config.h"
#include "common/duration_flag.h"
#include "google/protobuf/util/json_util.h"
#include "tests/cohortctl_inspect_fixture.h"
#include "tests/test_util.h"
#include "yaml-cpp/yaml.h"

namespace cohort {
namespace {

using ::cohort::testing::CohortctlInspectTest;
using ::cohort::testing::Field;
using ::cohort::testing::Ints;
using ::cohort::testing::kWorld;
using ::cohort::testing::Lines;
using ::cohort::testing::Num;
using ::cohort::testing::ParseJsonOrDie;
using ::cohort::testing::Result;
using ::google::protobuf::Value;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// ---- yaml, errors, help ---------------------------------------------------------------------

TEST_F(CohortctlInspectTest, Yaml_Members_SameDataAsJson) {
  FormPool();
  Result yaml = Ctl({"members", "-o", "yaml"});
  ASSERT_EQ(yaml.status, 0) << yaml.err;
  EXPECT_THAT(yaml.out, StartsWith("state:\n"));
  EXPECT_THAT(yaml.out, HasSubstr("\n  phase: POOL_PHASE_READY\n"));
  EXPECT_THAT(yaml.out, HasSubstr("\n  pool: default\n"));
  EXPECT_THAT(yaml.out, HasSubstr("\n  generation: \"1\"\n"));  // int64: a JSON string
  EXPECT_THAT(yaml.out, HasSubstr("\n  world_size: 4\n"));
  EXPECT_THAT(yaml.out, HasSubstr("\n  members:\n    - agent_version:"));
  for (int rank = 0; rank < kWorld; ++rank) {
    EXPECT_THAT(yaml.out, HasSubstr(absl::StrCat("\n      identity: agent-", rank, "\n")));
  }
  EXPECT_THAT(yaml.out, HasSubstr("\n      identity: agent-0\n"));
  EXPECT_THAT(yaml.out, HasSubstr("\n      rank: 0\n"));  // defaults are printed too
  // The world group: a list of scalars in flow style inside block sequences.
  EXPECT_THAT(yaml.out, HasSubstr("\n      - groups:\n          - ranks: [0, 1, 2, 3]\n"
                                  "        kind: GROUP_KIND_WORLD\n"));
}

TEST(CohortctlOutputTest, Yaml_QuotesWhatYamlWouldReadAsSomethingElse) {
  absl::StatusOr<std::string> yaml = cli::JsonToYaml(R"({
    "plain": "agent-0", "words": "plans sent", "bool": "true", "no": "NO", "num": "1.5",
    "addr": "127.0.0.1:7070", "colon": "a: b", "hash": "#x", "empty": "", "dash": "-x",
    "nl": "a\nb", "quote": "say \"hi\"", "utf8": "caf\u00e9", "int": 3, "real": 0.25,
    "t": true, "null": null, "list": [1, "x y", "[z]"], "none": [], "obj": {},
    "nested": [{"a": 1, "b": [{"c": null}]}, [1, 2], [[3], {"d": "e"}]]
  })");
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  EXPECT_EQ(*yaml,
            "addr: \"127.0.0.1:7070\"\n"
            "bool: \"true\"\n"
            "colon: \"a: b\"\n"
            "dash: \"-x\"\n"
            "empty: \"\"\n"
            "hash: \"#x\"\n"
            "int: 3\n"
            "list: [1, x y, \"[z]\"]\n"
            "nested:\n"
            "  - a: 1\n"
            "    b:\n"
            "      - c: null\n"
            "  - [1, 2]\n"
            // A block list directly inside a list starts on its own line (yaml-cpp's layout; no
            // cohortctl document has one: protobuf has no lists of lists).
            "  -\n"
            "    - [3]\n"
            "    - d: e\n"
            "nl: \"a\\nb\"\n"
            "\"no\": \"NO\"\n"
            "none: []\n"
            "\"null\": null\n"
            "num: \"1.5\"\n"
            "obj: {}\n"
            "plain: agent-0\n"
            "quote: \"say \\\"hi\\\"\"\n"
            "real: 0.25\n"
            "t: true\n"
            "utf8: \"caf\xc3\xa9\"\n"
            "words: plans sent\n");
  EXPECT_FALSE(cli::JsonToYaml("{not json").ok());
}

TEST(CohortctlOutputTest, ParseDurationFlag_UnitsAndPlainSeconds) {
  EXPECT_EQ(*ParseDurationFlag("60s"), absl::Seconds(60));
  EXPECT_EQ(*ParseDurationFlag("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseDurationFlag("2m"), absl::Minutes(2));
  EXPECT_EQ(*ParseDurationFlag("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseDurationFlag("0.3"), absl::Milliseconds(300));
  EXPECT_EQ(*ParseDurationFlag("0"), absl::ZeroDuration());
  EXPECT_FALSE(ParseDurationFlag("soon").ok());
  EXPECT_FALSE(ParseDurationFlag("-1s").ok());
  EXPECT_FALSE(ParseDurationFlag("inf").ok());
  EXPECT_FALSE(ParseDurationFlag("").ok());
}

TEST(CohortctlOutputTest, Colours_OnlyWhenAskedAndAlignedByVisibleWidth) {
  const cli::Style color(true);
  EXPECT_EQ(color.State("READY"), "\x1b[32mREADY\x1b[0m");
  EXPECT_EQ(cli::ColorOf("FAILED"), cli::Color::kRed);
  EXPECT_EQ(cli::ColorOf("MEMBER_LOST"), cli::Color::kRed);
  EXPECT_EQ(cli::ColorOf("INITIALIZING"), cli::Color::kYellow);
  EXPECT_EQ(cli::ColorOf("STANDBY"), cli::Color::kDim);
  EXPECT_EQ(cli::Style(false).State("READY"), "READY");
  // Output to anything but a terminal (here a string stream) is never coloured.
  cli::OutputFlags flags;
  std::ostringstream stream;
  EXPECT_FALSE(flags.StyleFor(stream).color());

  cli::Table table({"A", "B"});
  table.AddRow({color.State("READY"), "x"});
  table.AddRow({"FAILED!", "y"});
  std::ostringstream out;
  table.Print(out);
  EXPECT_EQ(out.str(), "A        B\n\x1b[32mREADY\x1b[0m    x\nFAILED!  y\n");
}

// A parser reads every -o yaml document back as the JSON value it came from: strings stay
// strings (quoted wherever YAML would read a number, boolean or null), numbers numbers.
void ExpectYamlMatchesJson(const YAML::Node& node, const Value& value, const std::string& path) {
  SCOPED_TRACE(path);
  switch (value.kind_case()) {
    case Value::kStructValue: {
      ASSERT_TRUE(node.IsMap());
      EXPECT_EQ(node.size(), static_cast<size_t>(value.struct_value().fields().size()));
      for (const auto& [key, field] : value.struct_value().fields()) {
        ASSERT_TRUE(node[key].IsDefined()) << key;
        ExpectYamlMatchesJson(node[key], field, path + "." + key);
      }
      return;
    }
    case Value::kListValue: {
      ASSERT_TRUE(node.IsSequence());
      ASSERT_EQ(node.size(), static_cast<size_t>(value.list_value().values_size()));
      for (int i = 0; i < value.list_value().values_size(); ++i) {
        ExpectYamlMatchesJson(node[i], value.list_value().values(i),
                              absl::StrCat(path, "[", i, "]"));
      }
      return;
    }
    case Value::kStringValue: {
      ASSERT_TRUE(node.IsScalar());
      EXPECT_EQ(node.as<std::string>(), value.string_value());
      if (node.Tag() == "?") {  // plain: it must not read as anything but a string
        double d;
        bool b;
        EXPECT_FALSE(YAML::convert<double>::decode(node, d)) << node.Scalar();
        EXPECT_FALSE(YAML::convert<bool>::decode(node, b)) << node.Scalar();
        EXPECT_NE(node.Scalar(), "null");
      }
      return;
    }
    case Value::kNumberValue:
      ASSERT_TRUE(node.IsScalar());
      EXPECT_EQ(node.Tag(), "?");
      EXPECT_EQ(node.as<double>(), value.number_value());
      return;
    case Value::kBoolValue:
      ASSERT_TRUE(node.IsScalar());
      EXPECT_EQ(node.as<bool>(), value.bool_value());
      return;
    default:
      EXPECT_TRUE(node.IsNull());
  }
}

TEST(CohortctlOutputTest, Yaml_ParsesBackToTheJsonValue) {
  const std::string json = R"({
    "plain": "agent-0", "bool": "true", "yes": "yes", "num": "1.5", "int_str": "42",
    "addr": "127.0.0.1:7070", "colon": "a: b", "hash": "#x", "empty": "", "dash": "-x",
    "nl": "a\nb", "ctl": "a\u0001b", "quote": "say \"hi\"", "utf8": "caf\u00e9", "int": 3,
    "real": 0.1, "neg": -7, "t": true, "f": false, "null": null, "list": [1, "x y", "[z]"],
    "none": [], "obj": {}, "nested": [{"a": 1, "b": [{"c": null}]}, [1, 2], [[3], {"d": "e"}]]
  })";
  Value value;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &value).ok());
  absl::StatusOr<std::string> yaml = cli::JsonToYaml(json);
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  ExpectYamlMatchesJson(YAML::Load(*yaml), value, "$");
}

TEST_F(CohortctlInspectTest, Yaml_StateDocument_ParsesBackToTheJsonDocument) {
  FormPool();
  // A real document (every field, zero values included) through the printer -o yaml uses; two
  // cohortctl calls would differ in heartbeat ages.
  Result json = Ctl({"state", "-o", "json"});
  ASSERT_EQ(json.status, 0) << json.err;
  absl::StatusOr<std::string> yaml = cli::JsonToYaml(json.out);
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  ExpectYamlMatchesJson(YAML::Load(*yaml), ParseJsonOrDie(json.out), "$");
}

// ---- version, bad flags ---------------------------------------------------------------------

TEST_F(CohortctlInspectTest, Version_PrintsClientAndCoordinatorVersions) {
  Result r = Ctl({"version"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrCat("cohortctl ", COHORT_VERSION, "\ncoordinator ", COHORT_VERSION,
                                " at ", server_->address(), "\n"));
  Result client = Ctl({"version", "--client"});
  ASSERT_EQ(client.status, 0) << client.err;
  EXPECT_EQ(client.out, absl::StrCat("cohortctl ", COHORT_VERSION, "\n"));
}

TEST(CohortctlVersionTest, Version_UnreachableCoordinator_ClientVersionAndANote) {
  std::vector<const char*> argv = {"cohortctl", "version", "--coordinator", "127.0.0.1:1",
                                   "--insecure"};
  std::ostringstream out, err;
  EXPECT_EQ(cli::RunCohortctl(static_cast<int>(argv.size()), argv.data(), out, err), 0);
  EXPECT_EQ(out.str(), absl::StrCat("cohortctl ", COHORT_VERSION, "\n"));
  EXPECT_THAT(err.str(), HasSubstr("note: no coordinator version: 127.0.0.1:1 did not answer"));
}

TEST(CohortctlVersionTest, VersionFlag_PrintsTheVersionAndExits0) {
  std::vector<const char*> argv = {"cohortctl", "--version"};
  std::ostringstream out, err;
  EXPECT_EQ(cli::RunCohortctl(static_cast<int>(argv.size()), argv.data(), out, err), 0);
  EXPECT_EQ(out.str(), absl::StrCat("cohortctl ", COHORT_VERSION, "\n"));
}

TEST(CohortctlVersionTest, BadFlagsAndBadDurations_Exit2WithOneErrorLine) {
  for (std::vector<const char*> argv : {std::vector<const char*>{"cohortctl", "--no-such-flag"},
                                        {"cohortctl", "status", "--no-such-flag"},
                                        {"cohortctl", "wait", "--timeout", "soon"},
                                        {"cohortctl", "version", "--timeout", "-1s"}}) {
    SCOPED_TRACE(absl::StrJoin(argv, " "));
    std::ostringstream out, err;
    EXPECT_EQ(cli::RunCohortctl(static_cast<int>(argv.size()), argv.data(), out, err), 2);
    EXPECT_THAT(err.str(), StartsWith("error: "));
    EXPECT_EQ(out.str(), "");
  }
}

TEST_F(CohortctlInspectTest, Unreachable_Exit4) {
  std::vector<const char*> argv = {"cohortctl", "members", "--coordinator", "127.0.0.1:1",
                                   "--insecure"};
  std::ostringstream out, err;
  EXPECT_EQ(cli::RunCohortctl(static_cast<int>(argv.size()), argv.data(), out, err), 4);
  EXPECT_THAT(err.str(), HasSubstr("cannot reach the coordinator at 127.0.0.1:1"));
}

TEST_F(CohortctlInspectTest, Help_EveryCommandShowsAnExample) {
  for (std::vector<std::string> command : {std::vector<std::string>{"status"},
                                           {"members"},
                                           {"groups"},
                                           {"events"},
                                           {"watch"},
                                           {"wait"},
                                           {"describe"},
                                           {"describe", "rank"},
                                           {"describe", "group"}}) {
    SCOPED_TRACE(command[0]);
    command.push_back("--help");
    Result r = Ctl(command);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("cohortctl " + command[0]));
    EXPECT_THAT(r.out, HasSubstr("Example"));
  }
  Result rank = Ctl({"describe", "rank", "--help"});
  EXPECT_THAT(rank.out, HasSubstr("RANK"));
}

}  // namespace
}  // namespace cohort
