// Session against an in-process coordinator, with a FakeClock and a TimerQueue without a thread:
// heartbeats follow the injected clock, refusals end a join at once, an unreachable coordinator
// ends a join (and a rejoin after a lost session) at connect_timeout on the clock, and Stop ends
// the session.
#include "agent/session.h"

#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "agent/coordinator_client.h"
#include "common/clock.h"
#include "common/timer_queue.h"
#include "coordinator/server.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/comm/status_matchers.h"

namespace cohort::agent {
namespace {

using ::cohort::testing::IsOk;
using ::cohort::testing::StatusIs;
using ::testing::HasSubstr;

// Counts what the session tells the agent.
class RecordingListener : public SessionListener {
 public:
  v1::HeldState Held() override { return {}; }
  void OnJoined(const v1::JoinResponse& response) override {
    absl::MutexLock lock(&mu_);
    ++joins_;
    rank_ = response.rank();
  }
  void OnMessage(const v1::CoordinatorMessage&) override {}
  int64_t HeartbeatGeneration() override {
    absl::MutexLock lock(&mu_);
    ++heartbeats_;
    return 0;
  }
  void AfterHeartbeat() override {}
  void OnSessionLost(const absl::Status&) override {
    absl::MutexLock lock(&mu_);
    ++lost_;
  }
  void OnSessionOver(const absl::Status& why) override {
    absl::MutexLock lock(&mu_);
    ++over_;
    over_status_ = why;
  }

  int joins() const {
    absl::MutexLock lock(&mu_);
    return joins_;
  }
  int heartbeats() const {
    absl::MutexLock lock(&mu_);
    return heartbeats_;
  }
  int lost() const {
    absl::MutexLock lock(&mu_);
    return lost_;
  }
  int over() const {
    absl::MutexLock lock(&mu_);
    return over_;
  }
  absl::Status over_status() const {
    absl::MutexLock lock(&mu_);
    return over_status_;
  }

 private:
  mutable absl::Mutex mu_;
  int joins_ ABSL_GUARDED_BY(mu_) = 0;
  int rank_ ABSL_GUARDED_BY(mu_) = -1;
  int heartbeats_ ABSL_GUARDED_BY(mu_) = 0;
  int lost_ ABSL_GUARDED_BY(mu_) = 0;
  int over_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status over_status_ ABSL_GUARDED_BY(mu_);
};

SessionOptions Options(const std::string& identity) {
  SessionOptions options;
  options.join.set_pool("default");
  options.join.set_identity(identity);
  options.join.set_incarnation("incarnation-1");
  options.join.add_backends("none");
  options.coordinator_address = "in-process";
  options.connect_timeout = absl::Seconds(30);
  return options;
}

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = coordinator::CoordinatorServer::Start({});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client_ = std::make_unique<CoordinatorClient>(server_->InProcessChannel());
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  std::unique_ptr<coordinator::CoordinatorServer> server_;
  std::unique_ptr<CoordinatorClient> client_;
  FakeClock clock_;
  TimerQueue timers_{&clock_};  // never started: heartbeats run in FireDue
  RecordingListener listener_;
};

TEST_F(SessionTest, Heartbeats_FollowTheInjectedClock) {
  Session session(Options("agent-0"), client_.get(), &listener_, &clock_, &timers_);
  ASSERT_THAT(session.Join(), IsOk());
  EXPECT_EQ(listener_.joins(), 1);
  session.Start();
  const absl::Duration interval = session.heartbeat_interval();
  ASSERT_GT(interval, absl::ZeroDuration());

  EXPECT_EQ(timers_.FireDue(), 0);
  clock_.Advance(interval - absl::Milliseconds(1));
  EXPECT_EQ(timers_.FireDue(), 0);
  EXPECT_EQ(listener_.heartbeats(), 0);
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_EQ(timers_.FireDue(), 1);
  EXPECT_EQ(listener_.heartbeats(), 1);
  clock_.Advance(interval);
  EXPECT_EQ(timers_.FireDue(), 1);
  EXPECT_EQ(listener_.heartbeats(), 2);

  session.Stop();
  EXPECT_EQ(timers_.pending(), 0u) << "no heartbeat outlives the session";
  clock_.Advance(interval);
  EXPECT_EQ(timers_.FireDue(), 0);
  EXPECT_EQ(listener_.heartbeats(), 2);
}

TEST_F(SessionTest, Stop_EndsTheSession_WaitIsOk) {
  Session session(Options("agent-0"), client_.get(), &listener_, &clock_, &timers_);
  EXPECT_EQ(session.state(), SessionState::kJoining);
  ASSERT_THAT(session.Join(), IsOk());
  EXPECT_EQ(session.state(), SessionState::kAttached);
  session.Start();

  session.Stop();
  EXPECT_EQ(session.state(), SessionState::kStopping);

  EXPECT_THAT(session.Wait(), IsOk());
  EXPECT_EQ(listener_.over(), 1);
  EXPECT_THAT(listener_.over_status(), IsOk());
  EXPECT_EQ(listener_.lost(), 0);
  session.Stop();  // idempotent
  EXPECT_EQ(listener_.over(), 1);
}

TEST_F(SessionTest, Join_Refused_ReturnsTheRefusalAtOnce) {
  Session session(Options(""), client_.get(), &listener_, &clock_, &timers_);

  EXPECT_THAT(session.Join(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("identity")));
  EXPECT_EQ(listener_.joins(), 0);
}

TEST_F(SessionTest, Join_Unreachable_GivesUpAtConnectTimeoutOnTheClock) {
  const std::string address = server_->address();
  server_->Shutdown();
  server_.reset();
  CoordinatorClient client(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  SessionOptions options = Options("agent-0");
  options.coordinator_address = address;
  // The fake clock never moves: a zero timeout allows exactly one attempt.
  options.connect_timeout = absl::ZeroDuration();
  Session session(options, &client, &listener_, &clock_, &timers_);

  EXPECT_THAT(session.Join(), StatusIs(absl::StatusCode::kUnavailable,
                                       HasSubstr("could not join the coordinator at")));
  EXPECT_EQ(listener_.joins(), 0);
}

TEST_F(SessionTest, Lost_RejoinFailsWithinConnectTimeout_TellsTheListenerAndEnds) {
  SessionOptions options = Options("agent-0");
  // The fake clock never moves: a zero timeout allows one attempt per join (the first succeeds).
  options.connect_timeout = absl::ZeroDuration();
  options.coordinator_address = server_->address();
  // Over a socket: once the server is gone, a connection attempt is refused at once.
  CoordinatorClient client(
      grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  Session session(options, &client, &listener_, &clock_, &timers_);
  ASSERT_THAT(session.Join(), IsOk());
  session.Start();

  server_->Shutdown();  // the stream ends; the one rejoin attempt finds nobody

  EXPECT_THAT(session.Wait(), StatusIs(absl::StatusCode::kUnavailable,
                                       HasSubstr("could not join the coordinator")));
  EXPECT_EQ(session.state(), SessionState::kLost);
  EXPECT_EQ(listener_.lost(), 1);
  EXPECT_EQ(listener_.over(), 1);
  EXPECT_THAT(listener_.over_status(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(timers_.pending(), 0u) << "no heartbeats after the session ended";
  session.Stop();
  EXPECT_EQ(session.state(), SessionState::kLost) << "Stop() after the loss does not hide it";
  server_.reset();
}

TEST_F(SessionTest, Stop_BeforeJoin_MakesJoinReturnCancelled) {
  Session session(Options("agent-0"), client_.get(), &listener_, &clock_, &timers_);
  session.Stop();

  EXPECT_THAT(session.Join(), StatusIs(absl::StatusCode::kCancelled));
  EXPECT_THAT(session.Wait(), IsOk());
}

TEST_F(SessionTest, Leave_CoordinatorAnswers_RecordedAsLeft_NoRejoinNoLoss) {
  Session session(Options("agent-0"), client_.get(), &listener_, &clock_, &timers_);
  ASSERT_THAT(session.Join(), IsOk());
  session.Start();

  EXPECT_THAT(session.Leave("SIGTERM (test)", absl::Seconds(30)), IsOk());
  session.Stop();

  EXPECT_THAT(session.Wait(), IsOk());
  EXPECT_EQ(listener_.joins(), 1) << "a leave is not followed by a rejoin";
  EXPECT_EQ(listener_.lost(), 0);
  EXPECT_EQ(timers_.pending(), 0u) << "no heartbeats after the leave";
  absl::StatusOr<v1::PoolState> state = server_->coordinator().GetState("default");
  ASSERT_THAT(state.status(), IsOk());
  ASSERT_EQ(state->members_size(), 1);
  EXPECT_EQ(state->members(0).phase(), v1::MEMBER_PHASE_LEFT) << state->DebugString();
  EXPECT_FALSE(state->members(0).connected());
  absl::StatusOr<std::vector<v1::Event>> events =
      server_->coordinator().GetEvents("default", 0, 100);
  ASSERT_THAT(events.status(), IsOk());
  bool left = false;
  for (const v1::Event& e : *events) {
    EXPECT_NE(e.kind(), v1::EVENT_KIND_MEMBER_LOST) << e.message();
    if (e.kind() == v1::EVENT_KIND_LEFT) {
      left = true;
      EXPECT_THAT(e.message(), HasSubstr("planned leave: SIGTERM (test)"));
    }
  }
  EXPECT_TRUE(left);
}

TEST_F(SessionTest, Leave_AfterStop_FailedPrecondition) {
  Session session(Options("agent-0"), client_.get(), &listener_, &clock_, &timers_);
  ASSERT_THAT(session.Join(), IsOk());
  session.Start();
  session.Stop();

  EXPECT_THAT(session.Leave("late", absl::Seconds(30)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(SessionTest, Leave_CoordinatorGone_UnavailableAtOnce_NoAbort) {
  SessionOptions options = Options("agent-0");
  options.coordinator_address = server_->address();
  CoordinatorClient client(
      grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  Session session(options, &client, &listener_, &clock_, &timers_);
  ASSERT_THAT(session.Join(), IsOk());
  session.Start();
  server_->Shutdown();  // the stream ends; the session starts rejoining (the clock never moves)

  // Nobody to tell: the leave says so instead of waiting, and the rejoin ends without an abort.
  EXPECT_THAT(session.Leave("SIGTERM (test)", absl::Hours(1)),
              StatusIs(absl::StatusCode::kUnavailable));
  session.Stop();
  EXPECT_THAT(session.Wait(), IsOk());
  EXPECT_EQ(listener_.lost(), 0);
  server_.reset();
}

}  // namespace
}  // namespace cohort::agent
