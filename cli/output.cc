#include "cli/output.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/layout.h"
#include "common/layout_proto.h"
#include "google/protobuf/util/json_util.h"

namespace cohort::cli {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

std::string StripPrefix(const std::string& name, const std::string& prefix) {
  return name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
}

// ---- YAML -----------------------------------------------------------------------------------

bool IsScalar(const Value& v) {
  return v.kind_case() != Value::kStructValue && v.kind_case() != Value::kListValue;
}

bool IsReservedWord(const std::string& s) {
  // YAML 1.1 booleans and nulls (PyYAML and many others still read them), and YAML 1.2's.
  static const char* const kWords[] = {"y",   "n",    "yes",   "no",   "on",
                                       "off", "true", "false", "null", "~"};
  const std::string lower = absl::AsciiStrToLower(s);
  for (const char* w : kWords) {
    if (lower == w) return true;
  }
  return false;
}

// A plain (unquoted) scalar is safe when it starts with a letter, '_' or '/', holds only
// letters, digits, '_', '.', '/', '-' and inner single spaces, and is no reserved word. Every
// character that means something to YAML in block or flow context (: # , [ ] { } & * ! | > ' "
// % @ `) forces quotes, and so does anything that could read as a number.
bool IsPlainSafe(const std::string& s) {
  if (s.empty() || IsReservedWord(s)) return false;
  const unsigned char first = static_cast<unsigned char>(s.front());
  if (!(std::isalpha(first) || first == '_' || first == '/')) return false;
  if (s.back() == ' ') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (std::isalnum(c) || c == '_' || c == '.' || c == '/' || c == '-') continue;
    if (c == ' ' && s[i + 1] != ' ') continue;  // s.back() != ' ', so s[i + 1] exists
    return false;
  }
  return true;
}

std::string QuoteString(const std::string& s) {
  std::string out = "\"";
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          absl::StrAppendFormat(&out, "\\x%02x", c);
        } else {
          out += ch;  // UTF-8 passes through: double-quoted YAML scalars are Unicode
        }
    }
  }
  return out + "\"";
}

std::string StringScalar(const std::string& s) { return IsPlainSafe(s) ? s : QuoteString(s); }

std::string NumberScalar(double d) {
  if (std::isnan(d)) return ".nan";
  if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
  if (d == std::floor(d) && std::fabs(d) < 9007199254740992.0) {
    return absl::StrFormat("%d", static_cast<int64_t>(d));
  }
  return absl::StrFormat("%.17g", d);
}

std::string Scalar(const Value& v) {
  switch (v.kind_case()) {
    case Value::kBoolValue:
      return v.bool_value() ? "true" : "false";
    case Value::kNumberValue:
      return NumberScalar(v.number_value());
    case Value::kStringValue:
      return StringScalar(v.string_value());
    default:
      return "null";
  }
}

void EmitMapping(const Struct& s, int indent, const std::string& first_prefix, std::string* out);
void EmitSequence(const ListValue& l, int indent, const std::string& first_prefix,
                  std::string* out);

// What follows "key:" or "- " on the same line: a scalar, an empty or flow collection, or
// nothing (a block collection follows on the next lines, or inline for sequence items).
bool InlineForm(const Value& v, std::string* text) {
  if (IsScalar(v)) {
    *text = Scalar(v);
    return true;
  }
  if (v.kind_case() == Value::kStructValue && v.struct_value().fields().empty()) {
    *text = "{}";
    return true;
  }
  if (v.kind_case() == Value::kListValue) {
    const ListValue& l = v.list_value();
    if (std::all_of(l.values().begin(), l.values().end(), IsScalar)) {
      std::vector<std::string> items;
      for (const Value& item : l.values()) items.push_back(Scalar(item));
      *text = absl::StrCat("[", absl::StrJoin(items, ", "), "]");
      return true;
    }
  }
  return false;
}

void EmitMapping(const Struct& s, int indent, const std::string& first_prefix, std::string* out) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : s.fields()) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  bool first = true;
  for (const std::string& key : keys) {
    const Value& v = s.fields().at(key);
    *out += first ? first_prefix : std::string(indent, ' ');
    first = false;
    *out += StringScalar(key);
    *out += ":";
    std::string text;
    if (InlineForm(v, &text)) {
      absl::StrAppend(out, " ", text, "\n");
    } else if (v.kind_case() == Value::kStructValue) {
      *out += "\n";
      EmitMapping(v.struct_value(), indent + 2, std::string(indent + 2, ' '), out);
    } else {
      *out += "\n";
      EmitSequence(v.list_value(), indent + 2, std::string(indent + 2, ' '), out);
    }
  }
}

void EmitSequence(const ListValue& l, int indent, const std::string& first_prefix,
                  std::string* out) {
  bool first = true;
  for (const Value& v : l.values()) {
    const std::string prefix = (first ? first_prefix : std::string(indent, ' ')) + "- ";
    first = false;
    std::string text;
    if (InlineForm(v, &text)) {
      absl::StrAppend(out, prefix, text, "\n");
    } else if (v.kind_case() == Value::kStructValue) {
      // "- key: value" with the mapping's other keys under the first one.
      EmitMapping(v.struct_value(), indent + 2, prefix, out);
    } else {
      EmitSequence(v.list_value(), indent + 2, prefix, out);
    }
  }
}

}  // namespace

// ---- Style ----------------------------------------------------------------------------------

std::string Style::Paint(const std::string& text, Color color) const {
  if (!color_ || color == Color::kNone || text.empty()) return text;
  const char* code = "";
  switch (color) {
    case Color::kGreen:
      code = "\x1b[32m";
      break;
    case Color::kYellow:
      code = "\x1b[33m";
      break;
    case Color::kRed:
      code = "\x1b[31m";
      break;
    case Color::kDim:
      code = "\x1b[2m";
      break;
    case Color::kNone:
      break;
  }
  return absl::StrCat(code, text, "\x1b[0m");
}

std::string Style::State(const std::string& text) const { return Paint(text, ColorOf(text)); }

Color ColorOf(const std::string& state) {
  std::string word = absl::AsciiStrToLower(state.substr(0, state.find_first_of(" ,(")));
  if (word == "ready" || word == "member_ready" || word == "ok") return Color::kGreen;
  for (const char* w : {"initializing", "waiting", "joined", "creating", "destroying", "destroy",
                        "plan", "configured", "pending", "recovering"}) {
    if (word == w) return Color::kYellow;
  }
  for (const char* w : {"failed", "error", "lost", "member_lost", "missing", "aborted", "abort",
                        "disconnected", "refused", "degraded"}) {
    if (word == w) return Color::kRed;
  }
  for (const char* w : {"standby", "left", "destroyed"}) {
    if (word == w) return Color::kDim;
  }
  return Color::kNone;
}

// ---- OutputFlags ----------------------------------------------------------------------------

void OutputFlags::Register(CLI::App* app) {
  app->add_option("--output,-o", output,
                  "table, wide (more columns), json (protobuf JSON of the response) or yaml")
      ->check(CLI::IsMember({"table", "wide", "json", "yaml"}))
      ->capture_default_str();
  app->add_flag("--no-color", no_color,
                "No colours (they are only used on a terminal, and never when NO_COLOR is set)");
}

OutputFormat OutputFlags::format() const {
  if (output == "wide") return OutputFormat::kWide;
  if (output == "json") return OutputFormat::kJson;
  if (output == "yaml") return OutputFormat::kYaml;
  return OutputFormat::kTable;
}

Style OutputFlags::StyleFor(const std::ostream& out) const {
  if (no_color || &out != &std::cout || !isatty(STDOUT_FILENO)) return Style(false);
  const char* no_color_env = std::getenv("NO_COLOR");
  return Style(no_color_env == nullptr || *no_color_env == '\0');
}

// ---- Documents ------------------------------------------------------------------------------

std::string JsonDocument(const google::protobuf::Message& message, bool print_defaults) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = print_defaults;
  std::string json;
  // Printing a valid message cannot fail; an empty document would show if it ever did.
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

void PrintDocument(const google::protobuf::Message& message, OutputFormat format,
                   std::ostream& out) {
  const std::string json = JsonDocument(message);
  if (format != OutputFormat::kYaml) {
    out << json << "\n";
    return;
  }
  absl::StatusOr<std::string> yaml = JsonToYaml(json);
  // The printer's own JSON always parses; show it as is if that ever changed.
  out << (yaml.ok() ? *yaml : json + "\n");
}

std::string ToYaml(const Value& value) {
  std::string out;
  std::string text;
  if (InlineForm(value, &text)) {
    out = text + "\n";
  } else if (value.kind_case() == Value::kStructValue) {
    EmitMapping(value.struct_value(), 0, "", &out);
  } else {
    EmitSequence(value.list_value(), 0, "", &out);
  }
  return out;
}

absl::StatusOr<std::string> JsonToYaml(const std::string& json) {
  Value value;
  auto status = google::protobuf::util::JsonStringToMessage(json, &value);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("not JSON: ", status.ToString()));
  }
  return ToYaml(value);
}

// ---- Formatters -----------------------------------------------------------------------------

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

std::string FormatAge(int64_t ms) {
  if (ms < 0) ms = 0;
  if (ms < 1000) return absl::StrCat(ms, "ms");
  if (ms < 60 * 1000) return absl::StrFormat("%.1fs", ms / 1000.0);
  const int64_t s = ms / 1000;
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  if (s < 86400) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  return absl::StrFormat("%dd%02dh", s / 86400, (s % 86400) / 3600);
}

std::string FormatMillis(int64_t us) {
  return us == 0 ? "-" : absl::StrFormat("%.1f", us / 1000.0);
}

std::string FormatUnixMillis(int64_t unix_ms) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3S%Ez", absl::FromUnixMillis(unix_ms),
                          absl::LocalTimeZone());
}

std::string PhaseName(v1::PoolPhase phase) {
  return StripPrefix(v1::PoolPhase_Name(phase), "POOL_PHASE_");
}

std::string MemberPhaseName(v1::MemberPhase phase) {
  return StripPrefix(v1::MemberPhase_Name(phase), "MEMBER_PHASE_");
}

std::string EventKindName(v1::EventKind kind) {
  return StripPrefix(v1::EventKind_Name(kind), "EVENT_KIND_");
}

std::string CommStateName(v1::CommState state) {
  return absl::AsciiStrToLower(StripPrefix(v1::CommState_Name(state), "COMM_STATE_"));
}

std::string KindName(v1::GroupKind kind) {
  absl::StatusOr<GroupKind> k = FromProto(kind);
  return k.ok() ? std::string(GroupKindName(*k)) : "?";
}

}  // namespace cohort::cli
