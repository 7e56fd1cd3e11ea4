// Reconnects, with real processes on loopback: a restarted coordinator is rejoined by agents
// that only their own join loop can bring back, and a slow handshake does not make an agent's
// connection attempts time out over and over. Every wait has a deadline; none bounds how fast.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "tests/cluster.h"

namespace cohort::testing {
namespace {

constexpr absl::Duration kDeadline = absl::Seconds(30);
const ParallelConfig kConfig{.world_size = 4, .data_parallel_size = 2, .ulysses_degree = 2};
// Heartbeats every 250 ms; a 10 s window that no busy machine misses.
const std::vector<std::string> kHeartbeats = {"--heartbeat-interval-ms", "250",
                                              "--heartbeat-misses", "40"};

// gRPC's backup poller (every 5 s by default) moves a channel's reconnect attempts on when no
// thread of the process polls it. At 600 s it never runs within a test: an agent that does not
// drive its own reconnect stays disconnected.
const char kNoBackupPoller[] = "GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS=600000";

// cohort-agent number `r` (identity agent-<r>, rank hint r) against `address`, started through
// env(1) with `env` added to its environment.
std::unique_ptr<ChildProcess> StartAgent(const Cluster& cluster, const std::string& address, int r,
                                         const std::vector<std::string>& env) {
  std::vector<std::string> argv = {"/usr/bin/env"};
  argv.insert(argv.end(), env.begin(), env.end());
  argv.insert(argv.end(), {std::string(COHORT_BIN_DIR) + "/cohort-agent", "--insecure",
                           "--coordinator", address, "--identity", absl::StrCat("agent-", r),
                           "--rank-hint", absl::StrCat(r), "--log-level", "info"});
  auto child = ChildProcess::Spawn(argv, absl::StrCat(cluster.log_dir(), "/agent-", r, ".log"));
  if (!child.has_value()) return nullptr;
  return std::make_unique<ChildProcess>(std::move(*child));
}

std::function<bool(const v1::PoolState&)> AllConnected(int n) {
  return [n](const v1::PoolState& s) {
    int connected = 0;
    for (const v1::MemberState& m : s.members()) connected += m.connected();
    return connected == n;
  };
}

// Twice in a row: the second restart meets agents that joined a coordinator which did not know
// the world yet when it answered them (no state file); they still report the world they hold.
TEST(Reconnect, KillCoordinatorOfReadyPoolTwice_AgentsWithoutBackupPoller_RestoredSameGeneration) {
  Cluster cluster(kHeartbeats);
  ASSERT_TRUE(cluster.ok());
  std::vector<std::unique_ptr<ChildProcess>> agents;
  for (int r = 0; r < kConfig.world_size; ++r) {
    agents.push_back(StartAgent(cluster, cluster.address(), r, {kNoBackupPoller}));
    ASSERT_NE(agents.back(), nullptr);
  }
  absl::StatusOr<v1::InitializeResponse> init = cluster.Initialize(kConfig);
  ASSERT_TRUE(init.ok()) << init.status();
  absl::StatusOr<v1::PoolState> ready =
      cluster.WaitForPhase(v1::POOL_PHASE_READY, 1, absl::Seconds(60));
  ASSERT_TRUE(ready.ok()) << ready.status();
  ASSERT_EQ(ready->phase(), v1::POOL_PHASE_READY) << ready->error();

  for (int restart = 1; restart <= 2; ++restart) {
    cluster.KillCoordinator();
    cluster.RestartCoordinator();
    // Only the agents' join loops can reconnect them now, well before any backup poll.
    absl::StatusOr<v1::PoolState> restored = cluster.WaitFor(
        [](const v1::PoolState& s) {
          return s.phase() == v1::POOL_PHASE_READY && AllConnected(kConfig.world_size)(s);
        },
        kDeadline);
    ASSERT_TRUE(restored.ok()) << "restart " << restart << ": " << restored.status()
                               << " (agent logs in " << cluster.log_dir() << ")";
    EXPECT_EQ(restored->generation(), 1);
    ExpectReportsMatchLayout(*restored, *Layout::Build(kConfig));
    for (const v1::Event& e : cluster.Events()) {
      EXPECT_NE(e.kind(), v1::EVENT_KIND_ABORT) << e.message();
      EXPECT_NE(e.kind(), v1::EVENT_KIND_PLAN) << e.message();
    }
    for (auto& agent : agents) EXPECT_FALSE(agent->WaitExit(absl::ZeroDuration()).has_value());
  }
}

// A TCP proxy on 127.0.0.1:0 in front of `upstream` (host:port) that passes what the client
// sends at once but holds what the server answers until `delay` after the connection was
// accepted: every handshake (up to the server's HTTP/2 SETTINGS frame) takes at least `delay`,
// as on a loaded machine. Counts the connections it accepted.
class SlowHandshakeProxy {
 public:
  SlowHandshakeProxy(const std::string& upstream, absl::Duration delay) : delay_(delay) {
    upstream_port_ = std::stoi(upstream.substr(upstream.rfind(':') + 1));
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        listen(listen_fd_, 64) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
        pipe2(wake_, O_CLOEXEC) != 0) {
      return;
    }
    address_ = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
    thread_ = std::thread([this] { Run(); });
  }
  ~SlowHandshakeProxy() {
    if (thread_.joinable()) {
      (void)!write(wake_[1], "x", 1);
      thread_.join();
    }
    for (Connection& c : connections_) Close(c);
    if (listen_fd_ >= 0) close(listen_fd_);
    if (wake_[0] >= 0) close(wake_[0]);
    if (wake_[1] >= 0) close(wake_[1]);
  }

  // Empty if the proxy could not start.
  const std::string& address() const { return address_; }
  int accepted() const { return accepted_.load(); }

 private:
  struct Connection {
    int client = -1;
    int server = -1;
    absl::Time release;
    std::string to_client;  // held until `release`
  };

  static bool WriteAll(int fd, const char* data, size_t n) {
    while (n > 0) {
      const ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
      if (w <= 0) return false;
      data += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }
  static void Close(Connection& c) {
    if (c.client >= 0) close(c.client);
    if (c.server >= 0) close(c.server);
    c.client = c.server = -1;
  }

  void Accept() {
    Connection c;
    c.client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c.client < 0) return;
    ++accepted_;
    c.release = absl::Now() + delay_;
    c.server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(upstream_port_));
    if (connect(c.server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      Close(c);
      return;
    }
    connections_.push_back(c);
  }

  void Run() {
    while (true) {
      std::vector<pollfd> fds = {{wake_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
      absl::Duration timeout = absl::Seconds(1);
      const absl::Time now = absl::Now();
      for (Connection& c : connections_) {
        fds.push_back({c.client, POLLIN, 0});
        fds.push_back({c.server, POLLIN, 0});
        if (!c.to_client.empty()) timeout = std::min(timeout, c.release - now);
      }
      const int ms =
          static_cast<int>(absl::ToInt64Milliseconds(std::max(timeout, absl::ZeroDuration())) + 1);
      if (poll(fds.data(), fds.size(), ms) < 0) return;
      if (fds[0].revents != 0) return;
      for (size_t i = 0; i < connections_.size(); ++i) {
        Connection& c = connections_[i];
        char buf[16384];
        if (fds[2 + 2 * i].revents != 0) {  // client -> server: at once
          const ssize_t n = recv(c.client, buf, sizeof(buf), 0);
          if (n <= 0 || !WriteAll(c.server, buf, static_cast<size_t>(n))) Close(c);
        }
        if (c.server >= 0 && fds[3 + 2 * i].revents != 0) {  // server -> client: held
          const ssize_t n = recv(c.server, buf, sizeof(buf), 0);
          if (n <= 0) {
            Close(c);
          } else {
            c.to_client.append(buf, static_cast<size_t>(n));
          }
        }
        if (c.client >= 0 && !c.to_client.empty() && absl::Now() >= c.release) {
          if (!WriteAll(c.client, c.to_client.data(), c.to_client.size())) Close(c);
          c.to_client.clear();
        }
      }
      connections_.erase(std::remove_if(connections_.begin(), connections_.end(),
                                        [](const Connection& c) { return c.client < 0; }),
                         connections_.end());
      if (fds[1].revents != 0) Accept();
    }
  }

  const absl::Duration delay_;
  int upstream_port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::string address_;
  std::atomic<int> accepted_{0};
  std::vector<Connection> connections_;  // the proxy thread's
  std::thread thread_;
};

// gRPC 1.51 uses GRPC_ARG_MIN_RECONNECT_BACKOFF_MS as the minimum connect timeout: were it
// 100 ms, attempts with deadlines of 100, 160, 256, 410 ms (+-20%) would all time out before the
// delayed SETTINGS frame, and the agent would need at least five connections.
TEST(Reconnect, SlowHandshake_AgentJoinsOverItsFirstConnection) {
  Cluster cluster;
  ASSERT_TRUE(cluster.ok());
  SlowHandshakeProxy proxy(cluster.address(), absl::Milliseconds(500));
  ASSERT_FALSE(proxy.address().empty());
  std::unique_ptr<ChildProcess> agent = StartAgent(cluster, proxy.address(), 0, {});
  ASSERT_NE(agent, nullptr);
  absl::StatusOr<v1::PoolState> joined = cluster.WaitFor(AllConnected(1), kDeadline);
  ASSERT_TRUE(joined.ok()) << joined.status();
  // One connection; a second only if a loaded machine stretched a handshake past the
  // connect timeout.
  EXPECT_LE(proxy.accepted(), 2);
}

}  // namespace
}  // namespace cohort::testing
