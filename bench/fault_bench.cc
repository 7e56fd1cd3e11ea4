// Failure and recovery times with real processes on loopback (Gloo, world 8, default
// heartbeats of 1 s x 3):
//   * kill -9 of an agent -> the member declared lost, and every survivor aborted;
//   * SIGSTOP of an agent (a frozen process, caught only by heartbeats) -> every survivor aborted;
//   * the replacement's join -> the next generation READY.
// Times come from the coordinator's event log (same machine clock as the kill).
//
// Usage: fault_bench BIN_DIR [--repeat K]
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
  explicit Pool(const std::string& bin) : bin_(bin) {
    auto c = ChildProcess::Spawn({bin + "/cohort-coordinator", "--listen", "127.0.0.1:0",
                                  "--log-level", "warn"},
                                 "/dev/null");
    coordinator_ = std::make_unique<ChildProcess>(std::move(*c));
    std::optional<std::string> line = coordinator_->ReadLine(absl::Seconds(20));
    address_ = line->substr(line->rfind(' ') + 1);
    client_ = std::make_unique<agent::CoordinatorClient>(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
    admin_ = v1::AdminService::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
    for (int r = 0; r < 8; ++r) StartAgent(r);
  }
  ~Pool() {
    for (auto& [r, a] : agents_) a->Signal(SIGKILL);
  }

  void StartAgent(int r) {
    auto a = ChildProcess::Spawn({bin_ + "/cohort-agent", "--coordinator", address_,
                                  "--identity", absl::StrCat("bench-", r), "--rank-hint",
                                  absl::StrCat(r), "--log-level", "warn"},
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
Times FailAndRecover(Pool& pool, int signal) {
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
    return aborted == 7;
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

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: fault_bench BIN_DIR [--repeat K]\n");
    return 2;
  }
  int repeat = 5;
  if (argc >= 4 && std::string(argv[2]) == "--repeat") repeat = std::atoi(argv[3]);
  cohort::Pool pool(argv[1]);
  cohort::v1::InitializeRequest init;
  *init.mutable_config() = cohort::ToProto(cohort::ParallelConfig{
      .world_size = 8, .data_parallel_size = 2, .cfg_parallel_size = 2, .ulysses_degree = 2});
  if (!pool.WaitFor([](const cohort::v1::PoolState& s) { return s.members_size() == 8; }) ||
      !pool.client().Initialize(init).ok() ||
      !pool.WaitFor([](const cohort::v1::PoolState& s) {
        return s.phase() == cohort::v1::POOL_PHASE_READY;
      })) {
    std::fprintf(stderr, "error: the pool did not become READY\n");
    return 1;
  }
  std::vector<double> lost, aborted, back;
  for (int i = 0; i < repeat; ++i) {
    cohort::Times t = cohort::FailAndRecover(pool, SIGKILL);
    lost.push_back(t.lost_ms);
    aborted.push_back(t.all_aborted_ms);
    back.push_back(t.join_to_ready_ms);
  }
  cohort::Times frozen = cohort::FailAndRecover(pool, SIGSTOP);
  std::printf("world 8 (dp2 x cfg2 x ulysses2, Gloo), median of %d kills:\n", repeat);
  std::printf("  kill -9 -> member lost (session closed)      %7.1f ms\n", cohort::Median(lost));
  std::printf("  kill -9 -> every survivor aborted            %7.1f ms\n", cohort::Median(aborted));
  std::printf("  replacement joined -> next generation READY  %7.1f ms\n", cohort::Median(back));
  std::printf("SIGSTOP (heartbeats 1 s x 3 misses):\n");
  std::printf("  SIGSTOP -> member lost                       %7.1f ms\n", frozen.lost_ms);
  std::printf("  SIGSTOP -> every survivor aborted            %7.1f ms\n", frozen.all_aborted_ms);
  return 0;
}
