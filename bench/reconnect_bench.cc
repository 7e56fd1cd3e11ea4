// Reconnect times with real processes on loopback:
//   * restore: kill -9 of the coordinator of a READY pool (Gloo, world 8), a new coordinator on
//     the same port -> the pool READY again (same generation), timed from the moment the new
//     coordinator printed its address (it listens) to its RECOVERED event;
//   * join storm: N agents (backend none, default 256) started at once against a fresh
//     coordinator -> every one joined: each agent from its spawn to its JOINED event, and the
//     whole storm from the first spawn to the last JOINED event.
// Times come from the coordinator's event log (same machine clock).
//
// Usage: reconnect_bench BIN_DIR [--repeat K] [--agents N] [--outage-ms MS]
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "agent/coordinator_client.h"
#include "cohort/v1/admin.grpc.pb.h"
#include "common/layout_proto.h"
#include "tests/process.h"

namespace cohort {
namespace {

using testing::ChildProcess;

class Coordinator {
 public:
  Coordinator(const std::string& bin, const std::string& listen) {
    auto c = ChildProcess::Spawn(
        {bin + "/cohort-coordinator", "--insecure", "--listen", listen, "--log-level", "warn"},
        "/dev/null");
    if (!c.has_value()) return;
    process_ = std::make_unique<ChildProcess>(std::move(*c));
    std::optional<std::string> line = process_->ReadLine(absl::Seconds(30));
    listening_ms_ = absl::ToUnixMillis(absl::Now());
    if (line.has_value()) address_ = line->substr(line->rfind(' ') + 1);
  }
  ~Coordinator() {
    if (process_ != nullptr) Kill();
  }
  void Kill() {
    process_->Signal(SIGKILL);
    process_->WaitExit(absl::Seconds(10));
  }
  bool ok() const { return !address_.empty(); }
  const std::string& address() const { return address_; }
  int64_t listening_ms() const { return listening_ms_; }

  // Long-polls (the channel waits for the coordinator) until `done`; false at the deadline.
  bool WaitFor(const std::function<bool(const v1::PoolState&)>& done,
               absl::Duration timeout = absl::Seconds(120)) {
    auto stub = v1::AdminService::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
    const absl::Time deadline = absl::Now() + timeout;
    int64_t version = -1;
    while (absl::Now() < deadline) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(deadline));
      context.set_wait_for_ready(true);
      v1::GetStateRequest request;
      if (version >= 0) {
        request.mutable_wait()->set_after_version(version);
        request.mutable_wait()->set_timeout_ms(
            std::max<int64_t>(1, absl::ToInt64Milliseconds(deadline - absl::Now())));
      }
      v1::GetStateResponse response;
      grpc::Status s = stub->GetState(&context, request, &response);
      if (!s.ok()) continue;
      version = response.state().version();
      if (done(response.state())) return true;
    }
    return false;
  }

  std::vector<v1::Event> Events() {
    auto stub = v1::AdminService::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    v1::GetEventsRequest request;
    v1::GetEventsResponse response;
    (void)stub->GetEvents(&context, request, &response);
    return {response.events().begin(), response.events().end()};
  }

  agent::CoordinatorClient client() {
    return agent::CoordinatorClient(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }

 private:
  std::unique_ptr<ChildProcess> process_;
  std::string address_;
  int64_t listening_ms_ = 0;
};

std::unique_ptr<ChildProcess> StartAgent(const std::string& bin, const std::string& address, int r,
                                         const std::string& backends) {
  std::vector<std::string> argv = {
      bin + "/cohort-agent",     "--insecure",  "--coordinator", address,       "--identity",
      absl::StrCat("bench-", r), "--rank-hint", absl::StrCat(r), "--log-level", "warn"};
  if (!backends.empty()) argv.insert(argv.end(), {"--backends", backends});
  auto a = ChildProcess::Spawn(argv, "/dev/null");
  if (!a.has_value()) return nullptr;
  return std::make_unique<ChildProcess>(std::move(*a));
}

bool AllConnected(const v1::PoolState& s, int n) {
  int connected = 0;
  for (const v1::MemberState& m : s.members()) connected += m.connected();
  return connected == n;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// kill -9 of the coordinator of a READY world-8 pool, `repeat` times, each followed by `outage`
// before the new coordinator starts; the restore times (ms).
std::vector<double> RestoreTimes(const std::string& bin, int repeat, absl::Duration outage) {
  std::vector<double> times;
  auto coordinator = std::make_unique<Coordinator>(bin, "127.0.0.1:0");
  if (!coordinator->ok()) return times;
  const std::string address = coordinator->address();
  std::vector<std::unique_ptr<ChildProcess>> agents;
  for (int r = 0; r < 8; ++r) agents.push_back(StartAgent(bin, address, r, ""));
  v1::InitializeRequest init;
  *init.mutable_config() = ToProto(ParallelConfig{
      .world_size = 8, .data_parallel_size = 2, .cfg_parallel_size = 2, .ulysses_degree = 2});
  if (!coordinator->WaitFor([](const v1::PoolState& s) { return AllConnected(s, 8); }) ||
      !coordinator->client().Initialize(init).ok() ||
      !coordinator->WaitFor(
          [](const v1::PoolState& s) { return s.phase() == v1::POOL_PHASE_READY; })) {
    std::fprintf(stderr, "error: the pool did not become READY\n");
    return times;
  }
  for (int i = 0; i < repeat; ++i) {
    coordinator->Kill();
    absl::SleepFor(outage);  // the coordinator stays down (a benchmark, not synchronisation)
    coordinator = std::make_unique<Coordinator>(bin, address);
    if (!coordinator->ok() || !coordinator->WaitFor([](const v1::PoolState& s) {
          return s.phase() == v1::POOL_PHASE_READY && AllConnected(s, 8);
        })) {
      std::fprintf(stderr, "error: the pool was not restored\n");
      return times;
    }
    int64_t ready = 0;
    for (const v1::Event& e : coordinator->Events()) {
      if (e.kind() == v1::EVENT_KIND_RECOVERED && ready == 0) ready = e.unix_ms();
    }
    times.push_back(static_cast<double>(ready - coordinator->listening_ms()));
  }
  return times;
}

struct Storm {
  double last_join_ms = -1;                   // first spawn -> last join
  double spawn_ms = 0;                        // first spawn -> last spawn
  double p50_ms = 0, p90_ms = 0, max_ms = 0;  // one agent's spawn -> its join
};

// `n` agents (backend none) started at once against a fresh coordinator.
Storm JoinStorm(const std::string& bin, int n) {
  Storm storm;
  Coordinator coordinator(bin, "127.0.0.1:0");
  if (!coordinator.ok()) return storm;
  std::vector<std::unique_ptr<ChildProcess>> agents;
  std::map<std::string, int64_t> spawned;
  const int64_t start = absl::ToUnixMillis(absl::Now());
  for (int r = 0; r < n; ++r) {
    agents.push_back(StartAgent(bin, coordinator.address(), r, "none"));
    spawned[absl::StrCat("bench-", r)] = absl::ToUnixMillis(absl::Now());
  }
  storm.spawn_ms = static_cast<double>(absl::ToUnixMillis(absl::Now()) - start);
  if (!coordinator.WaitFor([n](const v1::PoolState& s) { return AllConnected(s, n); })) {
    std::fprintf(stderr, "error: not every agent joined within 120 s\n");
    return storm;
  }
  int64_t last = 0;
  std::vector<double> latency;
  for (const v1::Event& e : coordinator.Events()) {
    if (e.kind() != v1::EVENT_KIND_JOINED) continue;
    last = std::max(last, e.unix_ms());
    latency.push_back(static_cast<double>(e.unix_ms() - spawned[e.identity()]));
  }
  std::sort(latency.begin(), latency.end());
  storm.last_join_ms = static_cast<double>(last - start);
  storm.p50_ms = latency[latency.size() / 2];
  storm.p90_ms = latency[latency.size() * 9 / 10];
  storm.max_ms = latency.back();
  for (auto& a : agents) a->Signal(SIGKILL);
  for (auto& a : agents) a->WaitExit(absl::Seconds(10));
  return storm;
}

}  // namespace
}  // namespace cohort

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: reconnect_bench BIN_DIR [--repeat K] [--agents N] [--outage-ms MS]\n");
    return 2;
  }
  int repeat = 5;
  int agents = 256;
  int outage_ms = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--repeat") repeat = std::atoi(argv[i + 1]);
    if (std::string(argv[i]) == "--agents") agents = std::atoi(argv[i + 1]);
    if (std::string(argv[i]) == "--outage-ms") outage_ms = std::atoi(argv[i + 1]);
  }
  std::vector<double> restore =
      cohort::RestoreTimes(argv[1], repeat, absl::Milliseconds(outage_ms));
  if (restore.empty()) return 1;
  std::printf(
      "coordinator kill -9, %d ms down, restart on the same port, world 8 (Gloo), "
      "%d restarts:\n",
      outage_ms, repeat);
  std::printf("  new coordinator listening -> pool READY again   median %7.1f ms, max %7.1f ms\n",
              cohort::Median(restore), *std::max_element(restore.begin(), restore.end()));
  const cohort::Storm storm = cohort::JoinStorm(argv[1], agents);
  if (storm.last_join_ms < 0) return 1;
  std::printf("%d agents (backend none) started at once (spawning them took %.0f ms):\n", agents,
              storm.spawn_ms);
  std::printf(
      "  one agent's start -> joined                      p50 %7.1f ms, p90 %7.1f ms, "
      "max %7.1f ms\n",
      storm.p50_ms, storm.p90_ms, storm.max_ms);
  std::printf("  first spawn -> every agent joined                %7.1f ms\n", storm.last_join_ms);
  return 0;
}
