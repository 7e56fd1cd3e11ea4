#include "cli/output.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/layout.h"
#include "common/layout_proto.h"
#include "google/protobuf/util/json_util.h"
#include "yaml-cpp/yaml.h"

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

// Strings that are not plain-safe are double-quoted (yaml-cpp escapes them); the rest plain.
void EmitString(const std::string& s, YAML::Emitter* out) {
  if (IsPlainSafe(s)) {
    *out << s;
  } else {
    *out << YAML::DoubleQuoted << s;
  }
}

void EmitNumber(double d, YAML::Emitter* out) {
  if (d == std::floor(d) && std::fabs(d) < 9007199254740992.0) {
    *out << static_cast<int64_t>(d);  // whole numbers without a fraction or exponent
  } else {
    *out << d;  // yaml-cpp writes .nan, .inf and -.inf, and enough digits to read d back
  }
}

void EmitValue(const Value& v, YAML::Emitter* out) {
  switch (v.kind_case()) {
    case Value::kStructValue: {
      const Struct& s = v.struct_value();
      if (s.fields().empty()) *out << YAML::Flow;  // {}
      std::vector<std::string> keys;
      for (const auto& [key, value] : s.fields()) keys.push_back(key);
      std::sort(keys.begin(), keys.end());
      *out << YAML::BeginMap;
      for (const std::string& key : keys) {
        *out << YAML::Key;
        EmitString(key, out);
        *out << YAML::Value;
        EmitValue(s.fields().at(key), out);
      }
      *out << YAML::EndMap;
      return;
    }
    case Value::kListValue: {
      const ListValue& l = v.list_value();
      // Lists of scalars (rank lists) read best on one line: [0, 1, 2, 3].
      if (std::all_of(l.values().begin(), l.values().end(), IsScalar)) *out << YAML::Flow;
      *out << YAML::BeginSeq;
      for (const Value& item : l.values()) EmitValue(item, out);
      *out << YAML::EndSeq;
      return;
    }
    case Value::kBoolValue:
      *out << v.bool_value();
      return;
    case Value::kNumberValue:
      EmitNumber(v.number_value(), out);
      return;
    case Value::kStringValue:
      EmitString(v.string_value(), out);
      return;
    default:
      *out << YAML::Null;
      return;
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
  YAML::Emitter out;
  out.SetNullFormat(YAML::LowerNull);
  out.SetDoublePrecision(17);
  EmitValue(value, &out);
  return absl::StrCat(out.c_str(), "\n");
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
