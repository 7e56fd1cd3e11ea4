// SessionTable: every live session id and whose it is (pool and identity). Join opens a session
// and hands its id to the agent; the id is 128 random bits, a secret only the joining process
// learns, which is why naming it (JoinRequest.previous_session_id) proves that a rejoin comes
// from the process that holds the session. A session is closed when it is superseded, detached,
// lost, never attached, or its pool is deleted. Members still carry their own session_id: the
// Coordinator checks both (a stale id that still names a member is superseded, not live).
//
// Thread safety: none; the Coordinator guards it with its lock.
#ifndef COHORT_COORDINATOR_SESSION_TABLE_H_
#define COHORT_COORDINATOR_SESSION_TABLE_H_

#include <cstddef>
#include <map>
#include <string>

#include "absl/random/random.h"

namespace cohort::coordinator {

class SessionTable {
 public:
  struct Owner {
    std::string pool;
    std::string identity;
  };

  // Opens a new session of `identity` in `pool` and returns its id (32 hex digits).
  std::string Open(const std::string& pool, const std::string& identity);
  // Whose session `id` is; null when it is unknown or closed. Valid until the next Open or Close.
  const Owner* Find(const std::string& id) const;
  // Closes session `id`; an unknown or already closed id is ignored.
  void Close(const std::string& id) { sessions_.erase(id); }
  // Open sessions.
  size_t size() const { return sessions_.size(); }

 private:
  std::map<std::string, Owner> sessions_;
  absl::BitGen gen_;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_SESSION_TABLE_H_
