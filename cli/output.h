// Output of the inspection commands: the -o formats (table, wide, json, yaml), colours for
// phases and states, and the small formatters every table shares (ages, times, durations).
#ifndef COHORT_CLI_OUTPUT_H_
#define COHORT_CLI_OUTPUT_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cohort/v1/admin.pb.h"
#include "common/duration_flag.h"  // AddDurationOption: every timeout flag of cohortctl
#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"

namespace cohort::cli {

enum class OutputFormat { kTable, kWide, kJson, kYaml };

// Colours, painted only when enabled (see OutputFlags::Style).
enum class Color { kNone, kGreen, kYellow, kRed, kDim };

class Style {
 public:
  explicit Style(bool color) : color_(color) {}
  bool color() const { return color_; }
  // `text` wrapped in the colour's ANSI sequence when colours are on; unchanged otherwise.
  std::string Paint(const std::string& text, Color color) const;
  // Paint(text, ColorOf(text)): phases and states carry their own colour.
  std::string State(const std::string& text) const;

 private:
  bool color_;
};

// The colour of a phase or state word, case-insensitive, judged by its first word: green for
// ready/ok; yellow for initializing, waiting, joined, creating, destroying, recovering; red for
// failed, error, lost, missing, aborted, disconnected, refused, degraded; dim for standby, left,
// destroyed.
Color ColorOf(const std::string& state);

// `-o` and `--no-color`, shared by every inspection command.
struct OutputFlags {
  std::string output = "table";
  bool no_color = false;
  void Register(CLI::App* app);
  OutputFormat format() const;
  bool structured() const {
    return format() == OutputFormat::kJson || format() == OutputFormat::kYaml;
  }
  // Colours only for a person: `out` is std::cout on a terminal, NO_COLOR is unset and
  // --no-color was not given.
  Style StyleFor(const std::ostream& out) const;
};

// `message` as one line of JSON with proto field names. With `print_defaults` (what every
// cohortctl document uses) every scalar and repeated field is printed even at its default:
// rank 0, index 0 and "generation": "0" are facts a script selects on, not absent keys. Only
// `layout -o json` passes false, because its golden format has no key for an absent kind.
std::string JsonDocument(const google::protobuf::Message& message, bool print_defaults = true);

// Prints `message` as one document: json (JsonDocument, then a newline) or yaml (the same data).
// Only for the structured formats.
void PrintDocument(const google::protobuf::Message& message, OutputFormat format,
                   std::ostream& out);

// A YAML rendering of a JSON value, emitted by yaml-cpp: block mappings with keys sorted (a
// protobuf Struct keeps no order), flow lists for lists of scalars, strings double-quoted
// wherever YAML 1.1 or 1.2 would read them as something else (numbers, booleans, nulls, YAML
// syntax). Loading the result gives back `value`.
std::string ToYaml(const google::protobuf::Value& value);
// The same for a JSON document. Errors: INVALID_ARGUMENT if `json` does not parse.
absl::StatusOr<std::string> JsonToYaml(const std::string& json);

// "850ms", "4.2s", "3m05s", "2h03m", "3d04h".
std::string FormatAge(int64_t ms);
// Microseconds as milliseconds with one decimal ("12.3"); "-" for 0.
std::string FormatMillis(int64_t us);
// "2025-01-31T03:04:05.678+01:00": ISO 8601 in the local time zone, with milliseconds.
std::string FormatUnixMillis(int64_t unix_ms);

// Enum names without their prefixes: "READY", "MEMBER_READY", "tp", "READY".
std::string PhaseName(v1::PoolPhase phase);
std::string MemberPhaseName(v1::MemberPhase phase);
std::string EventKindName(v1::EventKind kind);
std::string CommStateName(v1::CommState state);
std::string KindName(v1::GroupKind kind);

}  // namespace cohort::cli

#endif  // COHORT_CLI_OUTPUT_H_
