#include "agent/session.h"

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"

namespace cohort::agent {
namespace {

// How long a join waits for the connection before it looks at the agent's state again.
constexpr absl::Duration kConnectWaitSlice = absl::Milliseconds(250);
// Backoff between join attempts after a refusal or a connection lost during the join: doubling
// from the first to the cap, each pause a random part of it (full jitter).
constexpr absl::Duration kFirstBackoff = absl::Milliseconds(50);
constexpr absl::Duration kMaxBackoff = absl::Seconds(2);
// The coordinator may not ask for heartbeats more often than this.
constexpr absl::Duration kMinHeartbeatInterval = absl::Milliseconds(50);

}  // namespace

Session::Session(SessionOptions options, CoordinatorClient* client, SessionListener* listener,
                 Clock* clock, TimerQueue* timers)
    : options_(std::move(options)),
      client_(client),
      listener_(listener),
      clock_(clock),
      timers_(timers) {}

Session::~Session() { Stop(); }

absl::Status Session::Join() { return JoinWithRetry(clock_->Now() + options_.connect_timeout); }

absl::Status Session::JoinWithRetry(absl::Time deadline) {
  v1::JoinRequest request = options_.join;
  absl::BitGen gen;
  absl::Duration backoff = kFirstBackoff;
  absl::Status last;
  while (true) {
    // Wait for the connection, driving gRPC's reconnect attempts, so that the join goes out as
    // soon as a (restarted) coordinator listens. In slices: what the agent holds is read again
    // right before each join, and Stop() is noticed.
    const absl::Duration left = std::max(deadline - clock_->Now(), absl::ZeroDuration());
    const bool connected =
        client_->WaitForConnected(absl::Now() + std::min(left, kConnectWaitSlice));
    *request.mutable_held() = listener_->Held();
    {
      absl::MutexLock lock(&mu_);
      if (stopping_ || leaving_) return absl::CancelledError("agent stopping");
      // Proves this is the process whose session may still look alive to the coordinator.
      request.set_previous_session_id(session_id_);
    }
    // Not connected: the join fails at once with the transport's reason (or, while a connection
    // attempt is under way, waits for it).
    absl::StatusOr<v1::JoinResponse> joined = client_->Join(request);
    absl::StatusOr<std::unique_ptr<CoordinatorClient::Session>> stream =
        joined.ok() ? client_->OpenSession(joined->session_id())
                    : absl::StatusOr<std::unique_ptr<CoordinatorClient::Session>>(joined.status());
    if (stream.ok()) {
      {
        absl::MutexLock lock(&mu_);
        session_id_ = joined->session_id();
        attached_ = true;
        stream_ = std::shared_ptr<CoordinatorClient::Session>(*std::move(stream));
        heartbeat_interval_ =
            std::max(kMinHeartbeatInterval, absl::Milliseconds(joined->heartbeat_interval_ms()));
      }
      listener_->OnJoined(*joined);
      Log()->info("{} joined pool {} as {}", identity(), joined->pool(),
                  joined->rank() >= 0 ? absl::StrCat("rank ", joined->rank()) : "standby");
      return absl::OkStatus();
    }
    last = stream.status();
    // A refusal by the coordinator is final, except a live duplicate that may be our own
    // previous incarnation about to be declared dead, and a join cancelled by a coordinator
    // that is shutting down (SIGTERM: its successor is about to listen).
    if (!IsTransportFailure(last) && last.code() != absl::StatusCode::kAlreadyExists &&
        last.code() != absl::StatusCode::kCancelled) {
      return last;
    }
    if (clock_->Now() + (connected ? backoff : absl::ZeroDuration()) >= deadline) {
      // A coordinator that went away mid-join (CANCELLED) was, in the end, unreachable.
      const absl::StatusCode code = last.code() == absl::StatusCode::kCancelled
                                        ? absl::StatusCode::kUnavailable
                                        : last.code();
      return absl::Status(
          code, absl::StrCat("could not join the coordinator at ", options_.coordinator_address,
                             " within ", absl::FormatDuration(options_.connect_timeout), ": ",
                             last.message()));
    }
    // Still unreachable: the next wait for the connection is the pause.
    if (!connected) continue;
    // A refusal, or a connection lost during the join. Full jitter: pause a random part of the
    // backoff so restarted agents do not stampede.
    const absl::Duration pause = backoff * absl::Uniform(gen, 0.0, 1.0);
    absl::MutexLock lock(&mu_);
    auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    mu_.AwaitWithTimeout(absl::Condition(&stopping), pause);
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

void Session::Start() {
  {
    absl::MutexLock lock(&mu_);
    ScheduleHeartbeatLocked();
  }
  thread_ = std::thread([this] { Loop(); });
}

void Session::Send(const v1::AgentMessage& message) {
  std::shared_ptr<CoordinatorClient::Session> stream;
  {
    absl::MutexLock lock(&mu_);
    stream = stream_;
  }
  // A failed write means the stream is gone; the session thread notices and rejoins.
  if (stream != nullptr) stream->Write(message);
}

void Session::Loop() {
  absl::Status ended;
  while (true) {
    std::shared_ptr<CoordinatorClient::Session> stream;
    {
      absl::MutexLock lock(&mu_);
      stream = stream_;
    }
    v1::CoordinatorMessage message;
    while (stream->Read(&message)) listener_->OnMessage(message);
    absl::Status why = stream->Finish();
    {
      absl::MutexLock lock(&mu_);
      attached_ = false;
      if (leaving_) {
        // The coordinator's answer to a Leave (OK), or the stream broke meanwhile.
        left_ = why;
        break;
      }
      if (stopping_) break;
    }
    // Communicators do not need the coordinator: keep them and join again, telling the
    // coordinator what this agent holds. A restarted coordinator restores the pool from these
    // reports; one that declared this agent lost tells it to abort.
    Log()->warn("{}: session lost ({}); keeping communicators and joining again", identity(),
                why.ToString());
    absl::Status rejoined = JoinWithRetry(clock_->Now() + options_.connect_timeout);
    // Stop() came during the rejoin: the agent tears the communicators down in order (no abort
    // here), and a stream opened meanwhile ends unread.
    std::shared_ptr<CoordinatorClient::Session> opened;
    {
      absl::MutexLock lock(&mu_);
      // A leave announced meanwhile found no stream: nothing to rejoin for either.
      const bool ending = stopping_ || leaving_;
      if (ending && rejoined.ok()) opened = stream_;
      if (ending && opened == nullptr) break;
    }
    if (opened != nullptr) {
      opened->Cancel();
      (void)opened->Finish();
      break;
    }
    if (!rejoined.ok()) {
      Log()->error("{}: {}; aborting communicators", identity(), rejoined.ToString());
      {
        absl::MutexLock lock(&mu_);
        lost_ = true;
      }
      listener_->OnSessionLost(rejoined);
      ended = rejoined;
      break;
    }
  }
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    // No more heartbeats: the one scheduled is dropped (one being sent finishes).
    if (heartbeat_timer_ != 0 && timers_->Cancel(heartbeat_timer_)) --heartbeats_pending_;
    heartbeat_timer_ = 0;
  }
  // Before Wait() returns: whoever waits on the agent sees the end everywhere at once.
  listener_->OnSessionOver(ended);
  absl::MutexLock lock(&mu_);
  over_ = true;
  ended_ = ended;
}

void Session::ScheduleHeartbeatLocked() {
  ++heartbeats_pending_;
  heartbeat_timer_ =
      timers_->Schedule(clock_->Now() + heartbeat_interval_, [this] { Heartbeat(); });
}

void Session::Heartbeat() {
  {
    absl::MutexLock lock(&mu_);
    heartbeat_timer_ = 0;
    if (stopping_) {
      --heartbeats_pending_;
      return;
    }
  }
  v1::AgentMessage heartbeat;
  heartbeat.mutable_heartbeat()->set_generation(listener_->HeartbeatGeneration());
  Send(heartbeat);
  listener_->AfterHeartbeat();
  absl::MutexLock lock(&mu_);
  --heartbeats_pending_;
  if (!stopping_) ScheduleHeartbeatLocked();
}

absl::Status Session::Leave(const std::string& reason, absl::Duration timeout) {
  std::shared_ptr<CoordinatorClient::Session> stream;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || over_ || leaving_) {
      return absl::FailedPreconditionError("the session is already over or leaving");
    }
    leaving_ = true;
    // No heartbeats after the leave (one being sent finishes).
    if (heartbeat_timer_ != 0 && timers_->Cancel(heartbeat_timer_)) --heartbeats_pending_;
    heartbeat_timer_ = 0;
    stream = stream_;
  }
  // A rejoin in progress ends now: there is nothing to leave on.
  client_->CancelJoins();
  v1::AgentMessage leave;
  leave.mutable_leave()->set_reason(reason);
  if (stream == nullptr || !stream->Write(leave)) {
    return absl::UnavailableError(
        "no session stream to announce the leave on; the coordinator will count this agent lost "
        "when it notices");
  }
  absl::MutexLock lock(&mu_);
  auto answered = [this]()
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return left_.has_value() || over_; };
  if (!mu_.AwaitWithTimeout(absl::Condition(&answered), timeout)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "the coordinator did not answer the leave within ", absl::FormatDuration(timeout)));
  }
  if (!left_.has_value() || !left_->ok()) {
    return absl::UnavailableError(
        absl::StrCat("the session ended before the coordinator answered the leave: ",
                     left_.has_value() ? left_->ToString() : "session over"));
  }
  return absl::OkStatus();
}

void Session::Interrupt() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    // End the stream first: no message from the coordinator may race the agent's teardown.
    if (stream_ != nullptr) stream_->Cancel();
    if (heartbeat_timer_ != 0 && timers_->Cancel(heartbeat_timer_)) --heartbeats_pending_;
    heartbeat_timer_ = 0;
  }
  // A rejoin waiting for the coordinator ends now.
  client_->CancelJoins();
}

void Session::Stop() {
  Interrupt();
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  // A heartbeat being sent finishes (its write fails at once on the cancelled stream).
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return heartbeats_pending_ == 0; };
  mu_.Await(absl::Condition(&idle));
  over_ = true;  // also when the session never started
}

absl::Status Session::Wait() {
  absl::MutexLock lock(&mu_);
  auto over = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return over_; };
  mu_.Await(absl::Condition(&over));
  return ended_;
}

SessionState Session::state() const {
  absl::MutexLock lock(&mu_);
  if (lost_ || (over_ && !ended_.ok())) return SessionState::kLost;
  if (stopping_ || over_) return SessionState::kStopping;
  if (leaving_) return SessionState::kLeaving;
  if (attached_) return SessionState::kAttached;
  // Never joined yet (Join() in progress), or joined before and the stream ended since.
  return session_id_.empty() ? SessionState::kJoining : SessionState::kRejoining;
}

std::string Session::session_id() const {
  absl::MutexLock lock(&mu_);
  return session_id_;
}

absl::Duration Session::heartbeat_interval() const {
  absl::MutexLock lock(&mu_);
  return heartbeat_interval_;
}

}  // namespace cohort::agent
