#include "coordinator/heartbeat_monitor.h"

#include <algorithm>

namespace cohort::coordinator {

HeartbeatMonitor::HeartbeatMonitor(absl::Duration interval, int misses)
    : interval_(interval), misses_(misses) {}

bool HeartbeatMonitor::StartSweep(absl::Time now, absl::Duration late) {
  if (late <= interval_) return false;
  stalled_until_ = now;
  return true;
}

bool HeartbeatMonitor::Overdue(absl::Time last_heard, absl::Time now) const {
  return now - std::max(last_heard, stalled_until_) > window();
}

}  // namespace cohort::coordinator
