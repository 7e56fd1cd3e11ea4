#include "common/duration_flag.h"

#include <cmath>
#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace cohort {

absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& text) {
  const std::string t(absl::StripAsciiWhitespace(text));
  absl::Duration d;
  double seconds = 0;
  bool ok;
  if (absl::SimpleAtod(t, &seconds)) {
    ok = std::isfinite(seconds);  // "nan", "inf" and "1e999" parse as numbers
    if (ok) d = absl::Seconds(seconds);
  } else {
    ok = absl::ParseDuration(t, &d);
  }
  // absl::ParseDuration reads "inf"; a huge number of seconds saturates to infinity.
  ok = ok && d != absl::InfiniteDuration() && d != -absl::InfiniteDuration();
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad duration '", text, "': use e.g. 60s, 500ms, 2m, 1h30m or a number of seconds"));
  }
  if (d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad duration '", text, "': it must not be negative"));
  }
  return d;
}

CLI::Option* AddDurationOption(CLI::App* app, const std::string& name, absl::Duration* target,
                               const std::string& description) {
  CLI::Option* option = app->add_option_function<std::string>(
      name,
      // The check below ran first: the text parses.
      [target](const std::string& text) { *target = *ParseDurationFlag(text); },
      description + " (e.g. 60s, 500ms, 2m, or a number of seconds)");
  // A check's message becomes a ValidationError naming the flag: "--timeout: bad duration ...".
  option->check(CLI::Validator(
      [](std::string& text) -> std::string {
        absl::StatusOr<absl::Duration> d = ParseDurationFlag(text);
        return d.ok() ? std::string() : std::string(d.status().message());
      },
      ""));
  option->type_name("DURATION");
  option->default_str(absl::FormatDuration(*target));
  return option;
}

CLI::Option* AddMillisecondsAlias(CLI::App* app, const std::string& name, absl::Duration* target,
                                  const std::string& duration_flag) {
  CLI::Option* option = app->add_option_function<int64_t>(
      name, [target](int64_t ms) { *target = absl::Milliseconds(ms); },
      absl::StrCat("Deprecated: milliseconds; use ", duration_flag, " (e.g. 500ms)"));
  option->check(CLI::Validator(
      [duration_flag](std::string& text) -> std::string {
        int64_t ms = 0;
        if (absl::SimpleAtoi(text, &ms) && ms >= 0) return std::string();
        return absl::StrCat("bad number of milliseconds '", text, "': use a whole number >= 0, ",
                            "or ", duration_flag, " with a unit (e.g. 500ms, 60s)");
      },
      ""));
  // Listed apart in --help, so that scripts (and tests that read --help) still find it.
  option->group("Deprecated");
  return option;
}

CLI::Validator DurationRange(absl::Duration min, absl::Duration max, bool milliseconds) {
  return CLI::Validator(
      [min, max, milliseconds](std::string& text) -> std::string {
        absl::Duration d;
        if (milliseconds) {
          int64_t ms = 0;
          if (!absl::SimpleAtoi(text, &ms)) return "";  // the alias's own check names it
          d = absl::Milliseconds(ms);
        } else {
          absl::StatusOr<absl::Duration> parsed = ParseDurationFlag(text);
          if (!parsed.ok()) return std::string(parsed.status().message());
          d = *parsed;
        }
        if (d >= min && d <= max) return std::string();
        return absl::StrCat("'", text, "' is out of range: it must be between ",
                            absl::FormatDuration(min), " and ", absl::FormatDuration(max));
      },
      "");
}

}  // namespace cohort
