// The command-line pieces the three binaries share (common/command_line.h, duration_flag.h):
// parse errors exit 2 with one `error:` line, --version, the duration syntax and the deprecated
// -ms aliases.
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/cohort_config.h"
#include "common/command_line.h"
#include "common/duration_flag.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohort {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

struct Parsed {
  std::optional<int> exit_status;
  std::string out, err;
};

// An app like the daemons': --interval (a duration, default 1s) with its alias --interval-ms,
// and --timeout bounded to [1ms, 1h].
class FlagsTest : public ::testing::Test {
 protected:
  FlagsTest() {
    app_.name("prog");
    AddVersionFlag(&app_);
    AddDurationOption(&app_, "--interval", &interval_, "Interval");
    AddMillisecondsAlias(&app_, "--interval-ms", &interval_, "--interval");
    AddDurationOption(&app_, "--timeout", &timeout_, "Timeout")
        ->check(DurationRange(absl::Milliseconds(1), absl::Hours(1)));
    AddMillisecondsAlias(&app_, "--timeout-ms", &timeout_, "--timeout")
        ->check(DurationRange(absl::Milliseconds(1), absl::Hours(1), /*milliseconds=*/true));
  }

  Parsed Parse(std::vector<const char*> args) {
    args.insert(args.begin(), "prog");
    std::ostringstream out, err;
    std::optional<int> status =
        ParseCommandLine(&app_, static_cast<int>(args.size()), args.data(), out, err);
    return {status, out.str(), err.str()};
  }

  CLI::App app_{"test program"};
  absl::Duration interval_ = absl::Seconds(1);
  absl::Duration timeout_ = absl::Seconds(30);
};

TEST_F(FlagsTest, Durations_EveryUnitAndPlainSeconds) {
  for (const auto& [text, want] :
       std::vector<std::pair<const char*, absl::Duration>>{{"500ms", absl::Milliseconds(500)},
                                                           {"60s", absl::Seconds(60)},
                                                           {"2m", absl::Minutes(2)},
                                                           {"1h30m", absl::Minutes(90)},
                                                           {"0.25", absl::Milliseconds(250)}}) {
    SCOPED_TRACE(text);
    Parsed p = Parse({"--interval", text});
    EXPECT_EQ(p.exit_status, std::nullopt) << p.err;
    EXPECT_EQ(interval_, want);
  }
}

TEST_F(FlagsTest, MillisecondsAlias_SetsTheSameDuration) {
  Parsed p = Parse({"--interval-ms", "250"});
  EXPECT_EQ(p.exit_status, std::nullopt) << p.err;
  EXPECT_EQ(interval_, absl::Milliseconds(250));
}

TEST_F(FlagsTest, MillisecondsAlias_ListedAsDeprecatedAfterTheDurationFlag) {
  const std::string help = app_.help();
  const size_t duration = help.find("--interval ");
  const size_t deprecated = help.find("Deprecated:");
  const size_t alias = help.find("--interval-ms");
  ASSERT_NE(duration, std::string::npos) << help;
  ASSERT_NE(deprecated, std::string::npos) << help;
  ASSERT_NE(alias, std::string::npos) << help;
  EXPECT_LT(duration, deprecated);
  EXPECT_LT(deprecated, alias);
  EXPECT_THAT(help, HasSubstr("use --interval (e.g. 500ms)"));
}

TEST_F(FlagsTest, MillisecondsAlias_UnitsAreRefusedNamingTheDurationFlag) {
  Parsed p = Parse({"--interval-ms", "250ms"});
  EXPECT_EQ(p.exit_status, kExitBadFlags);
  EXPECT_THAT(p.err, StartsWith("error: --interval-ms: bad number of milliseconds '250ms'"));
  EXPECT_THAT(p.err, HasSubstr("or --interval with a unit"));
}

TEST_F(FlagsTest, BadDuration_Exit2NamingTheFlagAndTheForms) {
  Parsed p = Parse({"--interval", "soon"});
  EXPECT_EQ(p.exit_status, kExitBadFlags);
  EXPECT_THAT(p.err, StartsWith("error: --interval: bad duration 'soon': use e.g. 60s, 500ms"));
  EXPECT_THAT(p.err, HasSubstr("(run 'prog --help')"));
  EXPECT_EQ(p.out, "");
}

TEST_F(FlagsTest, DurationRange_BoundsBothSpellings) {
  EXPECT_EQ(Parse({"--timeout", "0s"}).exit_status, kExitBadFlags);
  EXPECT_EQ(Parse({"--timeout", "2h"}).exit_status, kExitBadFlags);
  EXPECT_EQ(Parse({"--timeout-ms", "0"}).exit_status, kExitBadFlags);
  Parsed p = Parse({"--timeout-ms", "7200000"});
  EXPECT_EQ(p.exit_status, kExitBadFlags);
  EXPECT_THAT(p.err, HasSubstr("must be between 1ms and 1h"));
  EXPECT_EQ(Parse({"--timeout", "1ms"}).exit_status, std::nullopt);
  EXPECT_EQ(timeout_, absl::Milliseconds(1));
  EXPECT_EQ(Parse({"--timeout-ms", "3600000"}).exit_status, std::nullopt);
  EXPECT_EQ(timeout_, absl::Hours(1));
}

TEST_F(FlagsTest, UnknownFlagAndMissingValue_Exit2) {
  Parsed unknown = Parse({"--no-such-flag"});
  EXPECT_EQ(unknown.exit_status, kExitBadFlags);
  EXPECT_THAT(unknown.err, StartsWith("error: "));
  EXPECT_THAT(unknown.err, HasSubstr("--no-such-flag"));
  EXPECT_EQ(Parse({"--interval"}).exit_status, kExitBadFlags);
}

TEST_F(FlagsTest, Version_PrintsNameAndProjectVersionAndExits0) {
  Parsed p = Parse({"--version"});
  EXPECT_EQ(p.exit_status, 0);
  EXPECT_EQ(p.out, std::string("prog ") + COHORT_VERSION + "\n");
  EXPECT_EQ(CohortVersion(), COHORT_VERSION);
}

TEST_F(FlagsTest, Help_Exits0OnStdout) {
  Parsed p = Parse({"--help"});
  EXPECT_EQ(p.exit_status, 0);
  EXPECT_THAT(p.out, HasSubstr("--interval"));
  EXPECT_EQ(p.err, "");
}

TEST(ParseDurationFlagTest, RefusesNegativeInfiniteAndEmpty) {
  EXPECT_FALSE(ParseDurationFlag("-1s").ok());
  EXPECT_FALSE(ParseDurationFlag("inf").ok());
  EXPECT_FALSE(ParseDurationFlag("nan").ok());
  EXPECT_FALSE(ParseDurationFlag("1e999").ok());
  EXPECT_FALSE(ParseDurationFlag("").ok());
}

}  // namespace
}  // namespace cohort
