// A gtest fixture shared by the tests that run a real CoordinatorServer (loopback, port 0) with a
// pool of in-process Gloo agents: starting agents, counting their aborts, long-polling the pool's
// state, and a teardown that destroys the pool before the agents leave.
#ifndef COHORT_TESTS_INPROCESS_POOL_H_
#define COHORT_TESTS_INPROCESS_POOL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/agent.h"
#include "agent/coordinator_client.h"
#include "coordinator/server.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace cohort::testing {

class InProcessPoolTest : public ::testing::Test {
 protected:
  // The options the server starts with; a test overrides this to turn things on.
  virtual coordinator::ServerOptions ServerOptionsForTest() const { return {}; }

  void SetUp() override {
    auto server = coordinator::CoordinatorServer::Start(ServerOptionsForTest());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    client_ = std::make_unique<agent::CoordinatorClient>(channel_);
  }

  void TearDown() override {
    // Tear the pool down before the agents leave: an agent leaving a READY pool makes the
    // coordinator abort every other member, which then races that member's own Stop().
    if (!agents_.empty()) {
      v1::DestroyRequest destroy;
      destroy.set_pool("default");
      destroy.set_scope(v1::DESTROY_SCOPE_ALL);
      if (client_->Destroy(destroy).ok()) {
        EXPECT_TRUE(WaitFor([](const v1::PoolState& s) {
                      return s.phase() != v1::POOL_PHASE_DESTROYING;
                    }).ok());
      }
    }
    for (auto& a : agents_) {
      if (a != nullptr) a->Stop();
    }
    agents_.clear();
    if (server_ != nullptr) server_->Shutdown();
  }

  // Changes the options of agent-r before it starts (a test hook, a channel, timeouts).
  using Customize = std::function<void(int r, agent::AgentOptions& options)>;

  // Starts `n` agents, agent-r with rank hint r on Gloo, each counting its aborts.
  void StartAgents(int n, const Customize& customize = nullptr) {
    for (int r = 0; r < n; ++r) {
      absl::StatusOr<std::unique_ptr<agent::Agent>> started = StartAgent(r, customize);
      ASSERT_TRUE(started.ok()) << started.status();
      agents_.push_back(*std::move(started));
    }
  }

  // Starts agent-r (rank hint r, Gloo) counting its aborts, e.g. to bring back a stopped one.
  absl::StatusOr<std::unique_ptr<agent::Agent>> StartAgent(int r,
                                                           const Customize& customize = nullptr) {
    agent::AgentOptions options;
    options.coordinator_address = server_->address();
    options.identity = absl::StrCat("agent-", r);
    options.rank_hint = r;
    options.backends = {"gloo"};
    options.connect_timeout = absl::Seconds(10);
    options.allow_checks = true;  // no engine uses these communicators
    if (customize) customize(r, options);
    auto started = agent::Agent::Start(options);
    if (!started.ok()) return started.status();
    (*started)->OnAbort([this](const absl::Status&) {
      absl::MutexLock lock(&abort_mu_);
      ++aborts_;
    });
    return started;
  }

  // Waits (bounded) until `n` agents have aborted their communicators.
  bool AwaitAborts(int n, absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&abort_mu_);
    auto done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(abort_mu_) { return aborts_ >= n; };
    return abort_mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }

  // Long-polls the pool's state (bounded) until `done`.
  absl::StatusOr<v1::PoolState> WaitFor(const std::function<bool(const v1::PoolState&)>& done,
                                        absl::Duration timeout = absl::Seconds(15)) {
    const absl::Time deadline = absl::Now() + timeout;
    int64_t version = 0;
    v1::PoolState last;
    while (absl::Now() < deadline) {
      absl::StatusOr<v1::PoolState> state =
          client_->WaitForStateChange("default", version, deadline - absl::Now());
      if (!state.ok()) return state.status();
      last = *state;
      if (done(last)) return last;
      version = last.version();
    }
    return absl::DeadlineExceededError(
        absl::StrCat("pool state never matched; last phase ", v1::PoolPhase_Name(last.phase())));
  }

  std::unique_ptr<coordinator::CoordinatorServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<agent::CoordinatorClient> client_;
  std::vector<std::unique_ptr<agent::Agent>> agents_;
  absl::Mutex abort_mu_;
  int aborts_ ABSL_GUARDED_BY(abort_mu_) = 0;
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_INPROCESS_POOL_H_
