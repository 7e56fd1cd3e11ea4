// The audit log: one line per refused request and per operator command's outcome (Initialize,
// Destroy, Check, DeletePool, allowed or refused), written to the named spdlog logger
// "cohort.audit" as key=value pairs:
//
//   who=alice role=operator action=Destroy pool=default result=OK
//   who="ipv4:10.0.0.9:1234" role=none action=Initialize pool=p result=UNAUTHENTICATED
//
// `who` is the policy's principal name ("agents/agent-3" when its certificate pattern ends in
// '*'), or the peer address when no principal matched; `role` the principal's role or "none".
// Values are quoted when they hold spaces, quotes, '=' or are empty. Never a token, a session id,
// an incarnation or a store value.
#ifndef COHORT_COORDINATOR_AUDIT_H_
#define COHORT_COORDINATOR_AUDIT_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "spdlog/logger.h"

namespace cohort::coordinator {

inline constexpr char kAuditLoggerName[] = "cohort.audit";

// The audit logger from spdlog's registry; when none is registered, the first call creates one
// over the default logger's sinks (the normal log). Thread-safe; never null.
std::shared_ptr<spdlog::logger> AuditLog();

// Registers the audit logger writing to `path` (appended, flushed every line) instead of the
// normal log (coordinator flag --audit-log). Errors: UNAVAILABLE naming the file when it cannot
// be opened.
absl::Status SetAuditLogFile(const std::string& path);

// One audit line (without the logger's prefix).
std::string AuditLine(absl::string_view who, absl::string_view role, absl::string_view action,
                      absl::string_view pool, absl::string_view result);

// A value as it appears in an audit line: bare, or quoted with '"' and '\' escaped.
std::string AuditValue(absl::string_view value);

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_AUDIT_H_
