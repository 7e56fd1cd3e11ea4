// The agent's health: AgentHealth's decisions from observations and times the tests choose, and
// AgentHealthServer on 127.0.0.1:0 with an observe function the test controls (a FakeClock
// decides when an outstanding observation counts as wedged).
#include "agent/agent_health.h"

#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "agent/agent_health_server.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/raw_grpc.h"

namespace cohort::agent {
namespace {

using ::cohort::testing::raw_grpc::Check;
using ::cohort::testing::raw_grpc::kNotServing;
using ::cohort::testing::raw_grpc::kServing;
using ::cohort::testing::raw_grpc::WaitForHealth;
using ::testing::HasSubstr;

constexpr absl::Duration kWedge = absl::Seconds(30);
constexpr absl::Duration kDeadline = absl::Seconds(30);
const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

AgentObservation Seen(SessionState session, int rank = -1, int64_t ready_generation = 0) {
  AgentObservation seen;
  seen.session = session;
  seen.rank = rank;
  seen.ready_generation = ready_generation;
  return seen;
}

// The statuses after one observation of `session` that took no time.
HealthVerdict After(SessionState session, int rank = -1, int64_t ready_generation = 0) {
  AgentHealth health(kWedge);
  health.ObservationStarted(kT0);
  health.ObservationFinished(kT0, Seen(session, rank, ready_generation));
  return health.Evaluate(kT0 + absl::Seconds(1));
}

TEST(AgentHealth, BeforeAnyObservation_LiveNotReady) {
  AgentHealth health(kWedge);
  const HealthVerdict v = health.Evaluate(kT0);
  EXPECT_TRUE(v.live);
  EXPECT_FALSE(v.ready);
  EXPECT_EQ(v.reason, "joining");
}

TEST(AgentHealth, Attached_StandbyOrRankOrReady_LiveAndReady) {
  for (const HealthVerdict& v :
       {After(SessionState::kAttached, -1), After(SessionState::kAttached, 3, 0),
        After(SessionState::kAttached, 3, 7)}) {
    EXPECT_TRUE(v.live) << v.reason;
    EXPECT_TRUE(v.ready) << v.reason;
  }
  EXPECT_THAT(After(SessionState::kAttached, -1).reason, HasSubstr("standby"));
  EXPECT_THAT(After(SessionState::kAttached, 3, 7).reason, HasSubstr("generation 7 READY"));
}

TEST(AgentHealth, JoiningRejoiningLeavingStopping_LiveNotReady) {
  for (SessionState s : {SessionState::kJoining, SessionState::kRejoining, SessionState::kLeaving,
                         SessionState::kStopping}) {
    const HealthVerdict v = After(s, 2, 1);
    EXPECT_TRUE(v.live) << ToString(s) << ": waiting or ending in order is not broken";
    EXPECT_FALSE(v.ready) << ToString(s);
    EXPECT_EQ(v.reason, ToString(s));
  }
}

TEST(AgentHealth, SessionLost_NotLive) {
  const HealthVerdict v = After(SessionState::kLost, 2, 1);
  EXPECT_FALSE(v.live);
  EXPECT_FALSE(v.ready);
  EXPECT_THAT(v.reason, HasSubstr("lost for good"));
}

TEST(AgentHealth, MarkBroken_NotLive_Final) {
  AgentHealth health(kWedge);
  health.MarkBroken("could not join");
  health.ObservationStarted(kT0);
  health.ObservationFinished(kT0, Seen(SessionState::kAttached, 0, 1));
  const HealthVerdict v = health.Evaluate(kT0);
  EXPECT_FALSE(v.live);
  EXPECT_FALSE(v.ready);
  EXPECT_EQ(v.reason, "could not join");
}

TEST(AgentHealth, OutstandingObservation_WedgedOnlyFromTheWedgeTimeout) {
  AgentHealth health(kWedge);
  health.ObservationStarted(kT0);
  health.ObservationFinished(kT0, Seen(SessionState::kAttached, 0, 1));
  health.ObservationStarted(kT0 + absl::Seconds(1));

  EXPECT_TRUE(health.Evaluate(kT0 + absl::Seconds(1) + kWedge - absl::Milliseconds(1)).live)
      << "a slow answer short of the wedge timeout keeps the last observation";
  const HealthVerdict wedged = health.Evaluate(kT0 + absl::Seconds(1) + kWedge);
  EXPECT_FALSE(wedged.live);
  EXPECT_FALSE(wedged.ready);
  EXPECT_THAT(wedged.reason, HasSubstr("wedged"));

  // The answer comes after all: live again.
  health.ObservationFinished(kT0 + absl::Minutes(5), Seen(SessionState::kAttached, 0, 1));
  EXPECT_TRUE(health.Evaluate(kT0 + absl::Minutes(5)).live);
}

TEST(AgentHealth, SlowObservationOfAWaitingAgent_NotWedgedBeforeTheTimeout) {
  // A long wait (a rejoin, a build) is not an outstanding observation: Observe returns at once.
  AgentHealth health(kWedge);
  health.ObservationStarted(kT0);
  health.ObservationFinished(kT0, Seen(SessionState::kRejoining, 0, 1));
  EXPECT_TRUE(health.Evaluate(kT0 + absl::Hours(1)).live);
}

// AgentHealthServer on a real socket, observing a function the test controls.
class AgentHealthServerTest : public ::testing::Test {
 protected:
  void StartServer() {
    AgentHealthServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.probe_interval = absl::Milliseconds(20);
    options.wedge_timeout = kWedge;
    options.clock = &clock_;
    auto server = AgentHealthServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_NE(server_->port(), 0);
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
  }
  void Set(AgentObservation seen) {
    absl::MutexLock lock(&mu_);
    seen_ = seen;
  }
  // What the observe function hands the server; blocks while `block_` is set.
  AgentObservation Observe() {
    absl::MutexLock lock(&mu_);
    if (block_) {
      blocked_ = true;
      auto unblocked = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !block_; };
      mu_.Await(absl::Condition(&unblocked));
      blocked_ = false;
    }
    return seen_;
  }
  bool Wait(const std::string& service, int want) {
    return WaitForHealth(channel_.get(), service, want, kDeadline);
  }

  FakeClock clock_;
  absl::Mutex mu_;
  AgentObservation seen_ ABSL_GUARDED_BY(mu_);
  bool block_ ABSL_GUARDED_BY(mu_) = false;
  bool blocked_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<AgentHealthServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(AgentHealthServerTest, BeforeAttach_LiveNotReady) {
  StartServer();
  EXPECT_EQ(Check(channel_.get(), "").value_or(-1), kServing);
  EXPECT_EQ(Check(channel_.get(), AgentHealth::kReadyService).value_or(-1), kNotServing);
}

TEST_F(AgentHealthServerTest, OnlyHealth_OtherMethodsUnimplemented) {
  StartServer();
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kDeadline));
  const grpc::internal::RpcMethod method("/cohort.v1.Coordinator/Join",
                                         grpc::internal::RpcMethod::NORMAL_RPC);
  grpc::ByteBuffer response;
  const grpc::Status status = grpc::internal::BlockingUnaryCall(
      channel_.get(), method, &context, cohort::testing::raw_grpc::HealthRequest(""), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(AgentHealthServerTest, FollowsTheObservedSession) {
  StartServer();
  Set(Seen(SessionState::kAttached, -1));
  server_->Attach([this] { return Observe(); });
  EXPECT_TRUE(Wait(AgentHealth::kReadyService, kServing));
  EXPECT_EQ(Check(channel_.get(), "").value_or(-1), kServing);

  Set(Seen(SessionState::kRejoining, 0, 1));
  EXPECT_TRUE(Wait(AgentHealth::kReadyService, kNotServing));
  EXPECT_EQ(Check(channel_.get(), "").value_or(-1), kServing) << "rejoining is not broken";

  Set(Seen(SessionState::kAttached, 0, 1));
  EXPECT_TRUE(Wait(AgentHealth::kReadyService, kServing));

  Set(Seen(SessionState::kLost, 0, 1));
  EXPECT_TRUE(Wait("", kNotServing));
  EXPECT_EQ(Check(channel_.get(), AgentHealth::kReadyService).value_or(-1), kNotServing);
}

TEST_F(AgentHealthServerTest, MarkBroken_NotServingWhenItReturns) {
  StartServer();
  server_->MarkBroken("could not join");
  EXPECT_EQ(Check(channel_.get(), "").value_or(-1), kNotServing);
  EXPECT_EQ(Check(channel_.get(), AgentHealth::kReadyService).value_or(-1), kNotServing);
}

TEST_F(AgentHealthServerTest, ObservationThatDoesNotReturn_NotServingOnceWedged_BackWhenItReturns) {
  StartServer();
  Set(Seen(SessionState::kAttached, 0, 1));
  server_->Attach([this] { return Observe(); });
  ASSERT_TRUE(Wait(AgentHealth::kReadyService, kServing));
  {
    absl::MutexLock lock(&mu_);
    block_ = true;
    // The next observation is stuck (as on a lock the agent never releases).
    auto stuck = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return blocked_; };
    ASSERT_TRUE(mu_.AwaitWithTimeout(absl::Condition(&stuck), kDeadline));
  }
  EXPECT_EQ(Check(channel_.get(), "").value_or(-1), kServing)
      << "not wedged before the wedge timeout on the clock";

  clock_.Advance(kWedge);
  EXPECT_TRUE(Wait("", kNotServing));
  EXPECT_EQ(Check(channel_.get(), AgentHealth::kReadyService).value_or(-1), kNotServing);

  {
    absl::MutexLock lock(&mu_);
    block_ = false;
  }
  EXPECT_TRUE(Wait("", kServing));
  EXPECT_TRUE(Wait(AgentHealth::kReadyService, kServing));
}

TEST_F(AgentHealthServerTest, AddressInUse_Unavailable) {
  StartServer();
  AgentHealthServerOptions options;
  options.listen_address = server_->address();
  auto second = AgentHealthServer::Start(options);
  EXPECT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace cohort::agent
