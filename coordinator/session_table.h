// SessionTable: every live session id and whose it is (pool, identity, and the principal whose
// credential opened it: Attach and the store check it). Join opens a session and hands its id
// to the agent; the id is 128 bits from OpenSSL's CSPRNG (RAND_bytes), a secret only the joining
// process learns, which is why naming it (JoinRequest.previous_session_id) proves that a rejoin
// comes from the process that holds the session. A session is closed when it is superseded,
// detached, lost, never attached, or its pool is deleted. Members still carry their own session_id:
// the Coordinator checks both (a stale id that still names a member is superseded, not live).
//
// Thread safety: none; the Coordinator guards it with its lock.
#ifndef COHORT_COORDINATOR_SESSION_TABLE_H_
#define COHORT_COORDINATOR_SESSION_TABLE_H_

#include <cstddef>
#include <string>

#include "absl/container/flat_hash_map.h"

namespace cohort::coordinator {

class SessionTable {
 public:
  struct Owner {
    std::string pool;
    std::string identity;
    // Authorizer::Identify(caller).subject of the Join ("" without a policy).
    std::string principal;
  };

  // Opens a new session of `identity` in `pool`, joined by `principal`, and returns its id (32
  // hex digits).
  std::string Open(const std::string& pool, const std::string& identity,
                   const std::string& principal = "");
  // Whose session `id` is; null when it is unknown or closed. Valid until the next Open or Close.
  // Every agent message looks its session up: a hash lookup, not an ordered map's dozen string
  // compares (half the coordinator's cost per heartbeat at 4,096 members, perf).
  const Owner* Find(const std::string& id) const;
  // Closes session `id`; an unknown or already closed id is ignored.
  void Close(const std::string& id) { sessions_.erase(id); }
  // Open sessions.
  size_t size() const { return sessions_.size(); }

 private:
  absl::flat_hash_map<std::string, Owner> sessions_;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_SESSION_TABLE_H_
