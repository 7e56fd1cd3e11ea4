#include "coordinator/audit.h"

#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "spdlog/sinks/basic_file_sink.h"
#include "spdlog/spdlog.h"

namespace cohort::coordinator {
namespace {

absl::Mutex audit_logger_mu(absl::kConstInit);

std::shared_ptr<spdlog::logger> Register(std::vector<spdlog::sink_ptr> sinks)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(audit_logger_mu) {
  spdlog::drop(kAuditLoggerName);
  auto logger = std::make_shared<spdlog::logger>(kAuditLoggerName, sinks.begin(), sinks.end());
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e audit %v");
  logger->set_level(spdlog::level::info);
  logger->flush_on(spdlog::level::info);
  spdlog::register_logger(logger);
  return logger;
}

}  // namespace

std::shared_ptr<spdlog::logger> AuditLog() {
  if (std::shared_ptr<spdlog::logger> logger = spdlog::get(kAuditLoggerName)) return logger;
  absl::MutexLock lock(&audit_logger_mu);
  if (std::shared_ptr<spdlog::logger> logger = spdlog::get(kAuditLoggerName)) return logger;
  return Register(spdlog::default_logger()->sinks());
}

absl::Status SetAuditLogFile(const std::string& path) {
  spdlog::sink_ptr sink;
  try {
    sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
  } catch (const spdlog::spdlog_ex& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot open the audit log '", path, "' (--audit-log): ", e.what()));
  }
  absl::MutexLock lock(&audit_logger_mu);
  Register({std::move(sink)});
  return absl::OkStatus();
}

std::string AuditValue(absl::string_view value) {
  bool quote = value.empty();
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20 ||
        c == 0x7f) {
      quote = true;
    }
  }
  if (!quote) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += '?';
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

std::string AuditLine(absl::string_view who, absl::string_view role, absl::string_view action,
                      absl::string_view pool, absl::string_view result) {
  return absl::StrCat("who=", AuditValue(who), " role=", AuditValue(role),
                      " action=", AuditValue(action), " pool=", AuditValue(pool),
                      " result=", AuditValue(result));
}

}  // namespace cohort::coordinator
