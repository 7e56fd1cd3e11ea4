// Failure and recovery times with real processes on loopback (Gloo, worlds of 8 and 16, default
// heartbeats of 1 s x 3):
//   * kill -9 of an agent -> the member declared lost, and every survivor aborted;
//   * SIGSTOP of an agent (a frozen process, caught only by heartbeats) -> every survivor aborted;
//   * the replacement's join -> the next generation READY.
// Times come from the coordinator's event log (same machine clock as the kill).
//
// Usage: fault_bench BIN_DIR [--repeat K] [--world N]   (default: world 8, then world 16)
#include <algorithm>
#include <cstdio>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/coordinator_client.h"
#include "cohort/v1/admin.grpc.pb.h"
#include "common/layout_proto.h"
#include "tests/process.h"

namespace cohort {
namespace {

using testing::ChildProcess;

class Pool {
 public:
  Pool(const std::string& bin, int world) : bin_(bin) {
    auto c = ChildProcess::Spawn({bin + "/cohort-coordinator", "--insecure", "--listen",
                                  "127.0.0.1:0", "--log-level", "warn"},
                                 "/dev/null");
    coordinator_ = std::make_unique<ChildProcess>(std::move(*c));
    std::optional<std::string> line = coordinator_->ReadLine(absl::Seconds(20));
    address_ = line->substr(line->rfind(' ') + 1);
    client_ = std::make_unique<agent::CoordinatorClient>(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
    admin_ = v1::AdminService::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
    for (int r = 0; r < world; ++r) StartAgent(r);
  }
  ~Pool() {
    for (auto& [r, a] : agents_) a->Signal(SIGKILL);
  }

  void StartAgent(int r) {
    auto a = ChildProcess::Spawn(
        {bin_ + "/cohort-agent", "--insecure", "--coordinator", address_, "--identity",
         absl::StrCat("bench-", r), "--rank-hint", absl::StrCat(r), "--log-level", "warn"},
        "/dev/null");
    agents_[r] = std::make_unique<ChildProcess>(std::move(*a));
  }
  ChildProcess& agent(int r) { return *agents_.at(r); }
  agent::CoordinatorClient& client() { return *client_; }

  // Waits (long-polling) until `done`; false at the deadline.
  bool WaitFor(const std::function<bool(const v1::PoolState&)>& done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    absl::StatusOr<v1::PoolState> s = client_->GetState("default");
    while (absl::Now() < deadline) {
      if (s.ok() && done(*s)) return true;
      s = s.ok() ? client_->WaitForStateChange("default", s->version(), deadline - absl::Now())
                 : client_->GetState("default");
    }
    return false;
  }

  std::vector<v1::Event> Events() {
    grpc::ClientContext context;
    v1::GetEventsRequest request;
    v1::GetEventsResponse response;
    (void)admin_->GetEvents(&context, request, &response);
    return {response.events().begin(), response.events().end()};
  }

 private:
  std::string bin_, address_;
  std::unique_ptr<ChildProcess> coordinator_;
  std::map<int, std::unique_ptr<ChildProcess>> agents_;
  std::unique_ptr<agent::CoordinatorClient> client_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

struct Times {
  double lost_ms = -1, all_aborted_ms = -1, join_to_ready_ms = -1;
};

// One failure of rank 3 (by `signal`), then the restarted agent's way back to READY.
Times FailAndRecover(Pool& pool, int world, int signal) {
  absl::StatusOr<v1::PoolState> before = pool.client().GetState("default");
  const int64_t generation = before->generation();
  const int64_t t_fail = absl::ToUnixMillis(absl::Now());
  pool.agent(3).Signal(signal);
  const std::string needle = absl::StrCat("aborted its communicators of generation ", generation);
  Times t;
  pool.WaitFor([&](const v1::PoolState&) {
    int aborted = 0;
    for (const v1::Event& e : pool.Events()) {
      if (e.kind() == v1::EVENT_KIND_MEMBER_LOST && e.generation() == generation) {
        t.lost_ms = static_cast<double>(e.unix_ms() - t_fail);
      }
      if (e.kind() == v1::EVENT_KIND_ABORT && absl::StrContains(e.message(), needle)) {
        ++aborted;
        t.all_aborted_ms = std::max(t.all_aborted_ms, static_cast<double>(e.unix_ms() - t_fail));
      }
    }
    return aborted == world - 1;
  });
  pool.agent(3).Signal(SIGKILL);
  pool.agent(3).WaitExit(absl::Seconds(10));
  pool.StartAgent(3);
  pool.WaitFor([&](const v1::PoolState& s) {
    return s.generation() > generation && s.phase() == v1::POOL_PHASE_READY;
  });
  int64_t joined = 0, ready = 0;
  for (const v1::Event& e : pool.Events()) {
    if (e.unix_ms() < t_fail) continue;
    if (e.kind() == v1::EVENT_KIND_JOINED && e.identity() == "bench-3") joined = e.unix_ms();
    if (e.kind() == v1::EVENT_KIND_READY) ready = e.unix_ms();
  }
  t.join_to_ready_ms = static_cast<double>(ready - joined);
  return t;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace
}  // namespace cohort

namespace cohort {
namespace {

ParallelConfig ConfigFor(int world) {
  ParallelConfig c{
      .world_size = world, .data_parallel_size = 2, .cfg_parallel_size = 2, .ulysses_degree = 2};
  if (world == 16) c.tensor_parallel_size = 2;
  return c;
}

int RunWorld(const std::string& bin, int world, int repeat) {
  Pool pool(bin, world);
  v1::InitializeRequest init;
  *init.mutable_config() = ToProto(ConfigFor(world));
  if (!pool.WaitFor([world](const v1::PoolState& s) { return s.members_size() == world; }) ||
      !pool.client().Initialize(init).ok() ||
      !pool.WaitFor([](const v1::PoolState& s) { return s.phase() == v1::POOL_PHASE_READY; })) {
    std::fprintf(stderr, "error: the pool of %d did not become READY\n", world);
    return 1;
  }
  std::vector<double> lost, aborted, back;
  for (int i = 0; i < repeat; ++i) {
    Times t = FailAndRecover(pool, world, SIGKILL);
    lost.push_back(t.lost_ms);
    aborted.push_back(t.all_aborted_ms);
    back.push_back(t.join_to_ready_ms);
  }
  Times frozen = FailAndRecover(pool, world, SIGSTOP);
  const ParallelConfig c = ConfigFor(world);
  std::printf("world %d (dp%d x cfg%d x ulysses%d x tp%d, Gloo), median of %d kills:\n", world,
              static_cast<int>(c.data_parallel_size), static_cast<int>(c.cfg_parallel_size),
              static_cast<int>(c.ulysses_degree), static_cast<int>(c.tensor_parallel_size), repeat);
  std::printf("  kill -9 -> member lost (session closed)      %7.1f ms\n", Median(lost));
  std::printf("  kill -9 -> every survivor aborted            %7.1f ms\n", Median(aborted));
  std::printf("  replacement joined -> next generation READY  %7.1f ms\n", Median(back));
  std::printf("SIGSTOP (heartbeats 1 s x 3 misses):\n");
  std::printf("  SIGSTOP -> member lost                       %7.1f ms\n", frozen.lost_ms);
  std::printf("  SIGSTOP -> every survivor aborted            %7.1f ms\n", frozen.all_aborted_ms);
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace cohort

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: fault_bench BIN_DIR [--repeat K] [--world N]\n");
    return 2;
  }
  int repeat = 5;
  std::vector<int> worlds = {8, 16};
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--repeat") {
      repeat = std::atoi(argv[i + 1]);
    } else if (flag == "--world") {
      worlds = {std::atoi(argv[i + 1])};
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  for (int world : worlds) {
    if (world != 8 && world != 16) {
      std::fprintf(stderr, "--world: 8 or 16\n");
      return 2;
    }
    if (int rc = cohort::RunWorld(argv[1], world, repeat); rc != 0) return rc;
  }
  return 0;
}
