// A real cluster on loopback for integration tests: one cohort-coordinator process and N
// cohort-agent processes (Gloo), driven through the admin API. Every wait has a deadline.
#ifndef COHORT_TESTS_CLUSTER_H_
#define COHORT_TESTS_CLUSTER_H_

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/coordinator_client.h"
#include "common/grpc_status.h"
#include "common/layout.h"
#include "common/layout_proto.h"
#include "common/transport_security.h"
#include "gtest/gtest.h"
#include "tests/process.h"

namespace cohort::testing {

// How a cluster's processes and the test's own client talk: plaintext unless a test says
// otherwise (tests/security_test.cc runs one with mutual TLS and a policy).
struct ClusterSecurity {
  // The coordinator's transport flags.
  std::vector<std::string> coordinator = {"--insecure"};
  // Agent process number r's transport flags.
  std::function<std::vector<std::string>(int r)> agent = [](int) {
    return std::vector<std::string>{"--insecure"};
  };
  // The test's client (client(), WaitFor, Events): insecure by default.
  TransportSecurityOptions client;
};

class Cluster {
 public:
  // Starts the coordinator on `listen` (127.0.0.1:0 unless a test needs another loopback
  // address) and reads its port back from its first stdout line.
  explicit Cluster(std::vector<std::string> coordinator_flags = {},
                   ClusterSecurity security = ClusterSecurity(),
                   const std::string& listen = "127.0.0.1:0")
      : coordinator_flags_(std::move(coordinator_flags)), security_(std::move(security)) {
    // A directory of its own: tests run in parallel and their logs must not mix.
    std::string dir = ::testing::TempDir() + "/cohort-cluster-XXXXXX";
    log_dir_ = mkdtemp(dir.data()) != nullptr ? dir : ::testing::TempDir();
    StartCoordinator(listen);
  }

  // A new channel to the coordinator, secured as the test's client.
  std::shared_ptr<grpc::Channel> Channel() const {
    return CreateChannel(address_, security_.client);
  }

  // kill -9 of the coordinator, and a new one on the same address (same flags).
  void KillCoordinator() {
    coordinator_->Signal(SIGKILL);
    ASSERT_TRUE(coordinator_->WaitExit(absl::Seconds(10)).has_value());
  }
  void RestartCoordinator() { StartCoordinator(address_); }
  // A new coordinator (same flags) on another address, e.g. the same port on another loopback
  // address: a coordinator pod rescheduled to a new IP. The test's client follows it; agents
  // follow it only through a name (set_agent_target).
  void RestartCoordinatorAt(const std::string& listen) { StartCoordinator(listen); }
  // What agents started from now on get as --coordinator (a dns:// target, say); empty: the
  // coordinator's address.
  void set_agent_target(std::string target) { agent_target_ = std::move(target); }
  ChildProcess& coordinator() { return *coordinator_; }

  const std::string& address() const { return address_; }
  agent::CoordinatorClient& client() { return *client_; }
  bool ok() const { return client_ != nullptr; }

  // The pod variables cohort-agent reads (agent/identity.h), removed from every agent's
  // environment unless a test sets them: a test run inside a pod must not hand them on.
  static std::vector<std::string> NoPodEnv() {
    return {"POD_NAME", "POD_NAMESPACE", "POD_INDEX", "COHORT_POD_INDEX", "LWS_WORKER_INDEX"};
  }

  // Starts agent process number r as a pod would: no --identity and no --rank-hint (unless
  // `extra` has them), the pod variables only as `env` sets them ("NAME=VALUE").
  void StartPodAgent(int r, const std::vector<std::string>& env,
                     const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {std::string(COHORT_BIN_DIR) + "/cohort-agent", "--coordinator",
                                     AgentTarget(), "--log-level", "info"};
    const std::vector<std::string> transport = security_.agent(r);
    argv.insert(argv.end(), transport.begin(), transport.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    std::vector<std::string> environment = AgentEnv(r);
    environment.insert(environment.end(), env.begin(), env.end());
    agent_logs_[r] = absl::StrCat(log_dir_, "/agent-", r, "-", agent_starts_++, ".log");
    auto child = ChildProcess::Spawn(argv, agent_logs_[r], environment);
    ASSERT_TRUE(child.has_value());
    agents_[r] = std::make_unique<ChildProcess>(std::move(*child));
  }

  // Starts agent process number r with identity agent-<r> (unless `extra` names another) and
  // rank hint `hint` (none when < 0).
  void StartAgent(int r, int hint, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {std::string(COHORT_BIN_DIR) + "/cohort-agent", "--coordinator",
                                     AgentTarget(), "--log-level", "warn"};
    const std::vector<std::string> transport = security_.agent(r);
    argv.insert(argv.end(), transport.begin(), transport.end());
    if (std::find(extra.begin(), extra.end(), "--identity") == extra.end()) {
      argv.push_back("--identity");
      argv.push_back(absl::StrCat("agent-", r));
    }
    if (hint >= 0) {
      argv.push_back("--rank-hint");
      argv.push_back(absl::StrCat(hint));
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto child =
        ChildProcess::Spawn(argv, absl::StrCat(log_dir_, "/agent-", r, ".log"), AgentEnv(r));
    ASSERT_TRUE(child.has_value());
    agents_[r] = std::make_unique<ChildProcess>(std::move(*child));
  }
  void StartAgents(int n) {
    for (int r = 0; r < n; ++r) StartAgent(r, r);
  }
  // Environment changes for agent process number r, applied to every agent started from now on
  // after NoPodEnv() (e.g. the NCCL double's library path and control files).
  void set_agent_env(std::function<std::vector<std::string>(int r)> env) {
    agent_env_ = std::move(env);
  }
  ChildProcess& agent(int r) { return *agents_.at(r); }
  // The stderr (log) file of the latest StartPodAgent(r, ...).
  std::string pod_agent_log(int r) const { return agent_logs_.at(r); }

  absl::StatusOr<v1::InitializeResponse> Initialize(const ParallelConfig& config,
                                                    const std::string& backend = "gloo",
                                                    int64_t deadline_ms = 60000,
                                                    const std::string& pool = "") {
    v1::InitializeRequest request;
    request.set_pool(pool);
    *request.mutable_config() = ToProto(config);
    request.mutable_options()->set_backend(backend);
    request.mutable_options()->set_deadline_ms(deadline_ms);
    return client_->Initialize(request);
  }

  absl::Status Destroy(v1::DestroyScope scope) {
    v1::DestroyRequest request;
    request.set_scope(scope);
    return client_->Destroy(request).status();
  }

  // Long-polls GetState until `done(state)` or the deadline; returns the last state seen.
  absl::StatusOr<v1::PoolState> WaitFor(const std::function<bool(const v1::PoolState&)>& done,
                                        absl::Duration timeout, const std::string& pool = "") {
    auto stub = v1::AdminService::NewStub(Channel());
    const absl::Time deadline = absl::Now() + timeout;
    int64_t version = -1;
    v1::PoolState last;
    while (absl::Now() < deadline) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(deadline + absl::Seconds(2)));
      // Across a coordinator restart the channel reconnects; wait for it rather than fail.
      context.set_wait_for_ready(true);
      v1::GetStateRequest request;
      request.set_pool(pool);
      if (version >= 0) {
        request.mutable_wait()->set_after_version(version);
        request.mutable_wait()->set_timeout_ms(
            std::max<int64_t>(1, absl::ToInt64Milliseconds(deadline - absl::Now())));
      }
      v1::GetStateResponse response;
      absl::Status s = FromGrpcStatus(stub->GetState(&context, request, &response));
      if (s.code() == absl::StatusCode::kUnavailable) continue;  // restarting: try again
      if (!s.ok() && s.code() != absl::StatusCode::kNotFound) return s;
      last = response.state();
      version = last.version();
      if (s.ok() && done(last)) return last;
    }
    return absl::DeadlineExceededError(
        absl::StrCat("pool state never matched; last: ", v1::PoolPhase_Name(last.phase()),
                     " generation ", last.generation(), " ", last.members_ready(), "/",
                     last.world_size(), " ready, error: ", last.error()));
  }

  absl::StatusOr<v1::PoolState> WaitForPhase(v1::PoolPhase phase, int64_t generation,
                                             absl::Duration timeout) {
    return WaitFor(
        [&](const v1::PoolState& s) {
          return s.generation() >= generation &&
                 (s.phase() == phase || s.phase() == v1::POOL_PHASE_FAILED);
        },
        timeout);
  }

  std::string log_dir() const { return log_dir_; }

  // The coordinator binary every Cluster starts: ${COHORT_BIN_DIR}/cohort-coordinator, unless
  // the environment variable COHORT_TEST_COORDINATOR_BIN names another one (e.g. an older build,
  // to show that a test fails against the code before a fix:
  //   COHORT_TEST_COORDINATOR_BIN=/work/wt-old/build/bin/cohort-coordinator ctest -R Hostile).
  static std::string CoordinatorBinary() {
    const char* bin = std::getenv("COHORT_TEST_COORDINATOR_BIN");
    if (bin != nullptr && *bin != '\0') return bin;
    return std::string(COHORT_BIN_DIR) + "/cohort-coordinator";
  }

  // Events of the default pool (oldest first).
  std::vector<v1::Event> Events() {
    auto stub = v1::AdminService::NewStub(Channel());
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::GetEventsRequest request;
    v1::GetEventsResponse response;
    grpc::Status status = stub->GetEvents(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return std::vector<v1::Event>(response.events().begin(), response.events().end());
  }

 private:
  void StartCoordinator(const std::string& listen) {
    std::vector<std::string> argv = {CoordinatorBinary(), "--listen", listen, "--log-level",
                                     "info"};
    argv.insert(argv.end(), security_.coordinator.begin(), security_.coordinator.end());
    argv.insert(argv.end(), coordinator_flags_.begin(), coordinator_flags_.end());
    auto child = ChildProcess::Spawn(
        argv, absl::StrCat(log_dir_, "/coordinator-", coordinator_starts_++, ".log"));
    EXPECT_TRUE(child.has_value()) << "cannot start the coordinator";
    if (!child.has_value()) return;
    coordinator_ = std::make_unique<ChildProcess>(std::move(*child));
    std::optional<std::string> line = coordinator_->ReadLine(absl::Seconds(20));
    EXPECT_TRUE(line.has_value()) << "the coordinator printed no address";
    if (!line.has_value()) return;
    const std::string previous = address_;
    address_ = line->substr(line->rfind(' ') + 1);
    // A restart on the same address keeps the client (its channel reconnects).
    if (client_ == nullptr || address_ != previous) {
      client_ = std::make_unique<agent::CoordinatorClient>(Channel(), absl::Seconds(10));
    }
  }

  std::vector<std::string> AgentEnv(int r) const {
    std::vector<std::string> environment = NoPodEnv();
    if (agent_env_) {
      const std::vector<std::string> extra = agent_env_(r);
      environment.insert(environment.end(), extra.begin(), extra.end());
    }
    return environment;
  }

  const std::string& AgentTarget() const {
    return agent_target_.empty() ? address_ : agent_target_;
  }

  std::vector<std::string> coordinator_flags_;
  ClusterSecurity security_;
  int coordinator_starts_ = 0;
  int agent_starts_ = 0;
  std::string log_dir_;
  std::unique_ptr<ChildProcess> coordinator_;
  std::map<int, std::unique_ptr<ChildProcess>> agents_;
  std::map<int, std::string> agent_logs_;
  std::string address_;
  std::string agent_target_;
  std::function<std::vector<std::string>(int r)> agent_env_;
  std::unique_ptr<agent::CoordinatorClient> client_;
};

// Checks every member's report against the layout: each rank holds exactly the layout's group
// of every kind, at the right index and position, and the verification sum matches.
inline void ExpectReportsMatchLayout(const v1::PoolState& state, const Layout& layout) {
  ASSERT_EQ(state.members_ready(), layout.world_size());
  for (const v1::MemberState& m : state.members()) {
    if (m.rank() < 0) continue;
    SCOPED_TRACE(absl::StrCat("rank ", m.rank()));
    EXPECT_EQ(m.phase(), v1::MEMBER_PHASE_READY);
    ASSERT_EQ(m.groups_size(), static_cast<int>(layout.kinds().size()));
    for (const v1::GroupReport& g : m.groups()) {
      absl::StatusOr<GroupKind> kind = FromProto(g.kind());
      ASSERT_TRUE(kind.ok());
      SCOPED_TRACE(std::string(GroupKindName(*kind)));
      const RankList& group = layout.GroupOf(*kind, m.rank());
      EXPECT_EQ(g.index(), layout.GroupIndexOf(*kind, m.rank()));
      EXPECT_EQ(g.rank_in_group(), layout.RankInGroup(*kind, m.rank()));
      EXPECT_EQ(g.size(), static_cast<int>(group.size()));
      EXPECT_EQ(g.state(), v1::COMM_STATE_READY);
      EXPECT_EQ(g.verify_sum(), std::accumulate(group.begin(), group.end(), int64_t{0}));
    }
  }
}

}  // namespace cohort::testing

#endif  // COHORT_TESTS_CLUSTER_H_
