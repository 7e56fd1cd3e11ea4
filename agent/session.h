// Session: the agent's control-plane half. It joins the pool (retrying transport failures with
// backoff and full jitter, stopping on a refusal), reads the session stream and hands every
// coordinator message to its listener, sends heartbeats, and, when the stream breaks, joins again
// telling the coordinator what the agent holds. It owns nothing of the data plane: the listener
// (the Agent) says what is held and acts on messages.
//
//   Join() --ok--> Start() --> [reading] --stream ends--> rejoin (connect_timeout) --ok-->
//   [reading]
//     |                           |                          |
//     refusal / unreachable       Stop()                     unreachable / refused
//     v                           v                          v
//   (returned)                 over: Wait() is OK         OnSessionLost, then over: Wait() is why
//
// Time: heartbeats are timers of the injected TimerQueue, one interval (from the JoinResponse) of
// the injected Clock apart; join deadlines (connect_timeout) are measured on the same clock. Tests
// pass a FakeClock and a TimerQueue without a thread and fire heartbeats by moving the clock. The
// waits themselves (a connection, the pause between attempts) are real-time waits with deadlines,
// cut short by Stop().
//
// Threads: one session thread (Start) reads and rejoins; heartbeats run on the TimerQueue's
// thread (or in FireDue); Send may be called from any thread.
#ifndef COHORT_AGENT_SESSION_H_
#define COHORT_AGENT_SESSION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/coordinator_client.h"
#include "agent/session_state.h"
#include "cohort/v1/agent.pb.h"
#include "common/clock.h"
#include "common/timer_queue.h"

namespace cohort::agent {

// What the session needs from the agent. Called from the session thread (OnJoined also from
// Join's caller, HeartbeatGeneration and AfterHeartbeat from the timer thread); must not call
// Session::Stop.
class SessionListener {
 public:
  virtual ~SessionListener() = default;
  // What the agent holds, sent with every join (read right before each attempt).
  virtual v1::HeldState Held() = 0;
  // A join succeeded: the coordinator's answer (rank, world size).
  virtual void OnJoined(const v1::JoinResponse& response) = 0;
  // One message from the coordinator, in stream order.
  virtual void OnMessage(const v1::CoordinatorMessage& message) = 0;
  // The generation the next heartbeat reports, and what to do right after it is sent.
  virtual int64_t HeartbeatGeneration() = 0;
  virtual void AfterHeartbeat() = 0;
  // The stream broke and no rejoin succeeded within connect_timeout (or the coordinator refused
  // it): the agent is on its own. Called once, before the session is over.
  virtual void OnSessionLost(const absl::Status& why) = 0;
  // The session is over (after Stop(), or after OnSessionLost): `why` is OK after Stop().
  virtual void OnSessionOver(const absl::Status& why) = 0;
};

struct SessionOptions {
  // Every join sends this request, with `held` and `previous_session_id` filled in per attempt.
  v1::JoinRequest join;
  // For messages: where the coordinator is.
  std::string coordinator_address;
  // How long a join (the first one, and each rejoin) keeps retrying an unreachable coordinator.
  absl::Duration connect_timeout = absl::Seconds(60);
};

class Session {
 public:
  // `client`, `listener`, `clock` and `timers` must outlive the session, and `timers` must keep
  // running its timers (its thread, or FireDue calls) until Stop() returned: Stop waits for a
  // heartbeat that is due to finish.
  Session(SessionOptions options, CoordinatorClient* client, SessionListener* listener,
          Clock* clock, TimerQueue* timers);
  // Stop().
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Joins the pool, retrying transport failures (and ALREADY_EXISTS: a previous incarnation about
  // to be declared dead) with backoff and jitter until connect_timeout on the clock.
  // Errors: the coordinator's refusal (INVALID_ARGUMENT, ...); the last transport error, with
  //         "could not join ... within", once connect_timeout passed; CANCELLED after Stop().
  absl::Status Join();
  // Starts reading the stream (the session thread) and the heartbeats. Call once, after Join()
  // succeeded.
  void Start();
  // Writes `message` on the current stream. Dropped when there is none or it broke: the session
  // thread notices and rejoins.
  void Send(const v1::AgentMessage& message);
  // A planned leave: stops the heartbeats, tells the coordinator (a Leave message with
  // `reason`) and waits until it has answered by ending the stream, at most `timeout`; the
  // session does not join again. Stop() must still follow (it ends the session thread).
  // Errors: UNAVAILABLE when there was no stream to write on (the coordinator will count this
  // agent lost, not left); DEADLINE_EXCEEDED when no answer came within `timeout`;
  // FAILED_PRECONDITION once the session is over or stopping. Not from a listener callback.
  absl::Status Leave(const std::string& reason, absl::Duration timeout);
  // The first half of Stop(): cancels the stream and a join in progress and drops the scheduled
  // heartbeat, at once, without waiting for anything. From here on nothing the agent sends
  // reaches the coordinator. Idempotent; any thread.
  void Interrupt();
  // Ends the session: Interrupt(), then waits for a heartbeat being sent and joins the session
  // thread. Idempotent. Not from a listener callback.
  void Stop();
  // Blocks until the session is over; returns why: OK after Stop(), the last join error after
  // the session was lost for good.
  absl::Status Wait();

  // Where the session stands (session_state.h): for the agent's health. Takes the session's
  // lock, never waits for anything else.
  SessionState state() const;

  // The heartbeat interval the coordinator asked for in the last join.
  absl::Duration heartbeat_interval() const;
  // The id of the current session (the last successful Join's); the rendezvous store sends it.
  std::string session_id() const;
  const std::string& identity() const { return options_.join.identity(); }

 private:
  absl::Status JoinWithRetry(absl::Time deadline);
  void Loop();
  // A heartbeat timer fired: sends one and schedules the next.
  void Heartbeat();
  void ScheduleHeartbeatLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SessionOptions options_;
  CoordinatorClient* const client_;
  SessionListener* const listener_;
  Clock* const clock_;
  TimerQueue* const timers_;

  mutable absl::Mutex mu_;
  std::string session_id_ ABSL_GUARDED_BY(mu_);
  // Shared: Send() may write while the session thread replaces a broken stream.
  std::shared_ptr<CoordinatorClient::Session> stream_ ABSL_GUARDED_BY(mu_);
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_) = absl::Seconds(1);
  // The scheduled heartbeat timer (0: none), and heartbeats scheduled or being sent: Stop waits
  // for them to end, so that no timer callback outlives the session.
  TimerQueue::TimerId heartbeat_timer_ ABSL_GUARDED_BY(mu_) = 0;
  int heartbeats_pending_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Leave() was called: a stream that ends is not rejoined; `left_` once it has ended, and how.
  bool leaving_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Status> left_ ABSL_GUARDED_BY(mu_);
  // A stream is open (a join succeeded and its stream has not ended yet).
  bool attached_ ABSL_GUARDED_BY(mu_) = false;
  // No rejoin succeeded: set before OnSessionLost, so that state() says kLost while the agent
  // tears its communicators down.
  bool lost_ ABSL_GUARDED_BY(mu_) = false;
  bool over_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status ended_ ABSL_GUARDED_BY(mu_);

  std::thread thread_;
};

}  // namespace cohort::agent

#endif  // COHORT_AGENT_SESSION_H_
