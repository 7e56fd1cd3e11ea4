// The cost of mutual TLS, measured in one run next to plaintext: two coordinators, one started
// with --insecure and one with TLS (client certificates required) and a policy (roles checked on
// every call, store access tied to the plan), each with 8 cohort-agent processes (Gloo) on
// loopback. Repetitions alternate between the two so that a busy machine slows both alike.
//
//   Initialize -> READY   world 8, dp2 x cfg2 x ulysses2 (world + every group + verification)
//   unary RPC             GetState on a warm channel (the handshake is done): p50 and p99
//   new connection        a new channel and its first GetState (the TLS handshake included)
//
// Usage: tls_bench BIN_DIR [--repeat K] [--calls N]
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "agent/coordinator_client.h"
#include "common/layout_proto.h"
#include "common/transport_security.h"
#include "tests/process.h"

namespace cohort {
namespace {

using testing::ChildProcess;

constexpr int kWorld = 8;
const ParallelConfig kConfig{
    .world_size = kWorld, .data_parallel_size = 2, .cfg_parallel_size = 2, .ulysses_degree = 2};

constexpr char kPolicy[] = R"(principals:
  - name: operator
    role: operator
    certificate: {uri: "spiffe://cohort/operator"}
  - name: agents
    role: agent
    certificate: {uri: "spiffe://cohort/agent/*"}
)";

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// One coordinator and its agents, plaintext or mTLS.
class Setup {
 public:
  Setup(std::string name, std::string bin, std::string certs)
      : name_(std::move(name)), bin_(std::move(bin)), certs_(std::move(certs)) {}
  ~Setup() {
    for (auto& a : agents_) a->Signal(SIGTERM);
    for (auto& a : agents_) a->WaitExit(absl::Seconds(10));
    if (coordinator_) {
      coordinator_->Signal(SIGTERM);
      coordinator_->WaitExit(absl::Seconds(10));
    }
  }

  const std::string& name() const { return name_; }
  bool tls() const { return !certs_.empty(); }

  // --insecure, or the TLS flags of `who` ("coordinator", "operator", "agent-3").
  std::vector<std::string> Security(const std::string& who) const {
    if (!tls()) return {"--insecure"};
    return {"--tls-cert", absl::StrCat(certs_, "/", who, ".crt"),
            "--tls-key",  absl::StrCat(certs_, "/", who, ".key"),
            "--tls-ca",   absl::StrCat(certs_, "/ca.crt")};
  }
  TransportSecurityOptions ClientOptions() const {
    TransportSecurityOptions o;
    if (!tls()) return o;
    o.mode = TransportSecurityOptions::Mode::kTls;
    o.certificate_file = absl::StrCat(certs_, "/operator.crt");
    o.key_file = absl::StrCat(certs_, "/operator.key");
    o.ca_file = absl::StrCat(certs_, "/ca.crt");
    return o;
  }

  absl::Status Start() {
    std::vector<std::string> argv = {bin_ + "/cohort-coordinator", "--listen", "127.0.0.1:0",
                                     "--log-level", "warn"};
    for (const std::string& f : Security("coordinator")) argv.push_back(f);
    if (tls()) {
      const std::string policy = absl::StrCat(certs_, "/policy.yaml");
      std::ofstream(policy) << kPolicy;
      argv.insert(argv.end(), {"--policy", policy});
    }
    auto coordinator = ChildProcess::Spawn(argv, "/dev/null");
    if (!coordinator.has_value()) return absl::InternalError("cannot start the coordinator");
    coordinator_ = std::make_unique<ChildProcess>(std::move(*coordinator));
    std::optional<std::string> line = coordinator_->ReadLine(absl::Seconds(20));
    if (!line.has_value())
      return absl::InternalError(name_ + ": the coordinator printed no address");
    address_ = line->substr(line->rfind(' ') + 1);
    for (int r = 0; r < kWorld; ++r) {
      const std::string identity = absl::StrCat("agent-", r);
      std::vector<std::string> a = {bin_ + "/cohort-agent", "--coordinator", address_,
                                    "--identity",           identity,        "--rank-hint",
                                    absl::StrCat(r),        "--log-level",   "warn"};
      for (const std::string& f : Security(identity)) a.push_back(f);
      auto agent = ChildProcess::Spawn(a, "/dev/null");
      if (!agent.has_value()) return absl::InternalError("cannot start an agent");
      agents_.push_back(std::make_unique<ChildProcess>(std::move(*agent)));
    }
    client_ = NewClient();
    // Every agent joined (not timed).
    absl::StatusOr<v1::PoolState> s = client_->GetState("default");
    const absl::Time by = absl::Now() + absl::Seconds(60);
    while (!s.ok() || s->members_size() < kWorld) {
      if (absl::Now() > by) {
        return absl::DeadlineExceededError(absl::StrCat(
            name_, ": the agents did not join: ", s.ok() ? "too few" : s.status().ToString()));
      }
      s = s.ok() ? client_->WaitForStateChange("default", s->version(), absl::Seconds(5))
                 : client_->GetState("default");
    }
    return absl::OkStatus();
  }

  std::unique_ptr<agent::CoordinatorClient> NewClient() const {
    return std::make_unique<agent::CoordinatorClient>(CreateChannel(address_, ClientOptions()));
  }

  // Initialize -> READY seconds, then a full destroy (not timed).
  absl::StatusOr<double> InitToReady() {
    v1::InitializeRequest request;
    *request.mutable_config() = ToProto(kConfig);
    request.mutable_options()->set_backend("gloo");
    const absl::Time t0 = absl::Now();
    absl::StatusOr<v1::InitializeResponse> init = client_->Initialize(request);
    if (!init.ok()) return init.status();
    absl::StatusOr<v1::PoolState> ready = Wait(v1::POOL_PHASE_READY, init->generation());
    if (!ready.ok()) return ready.status();
    if (ready->phase() != v1::POOL_PHASE_READY) return absl::InternalError(ready->error());
    const double seconds = absl::ToDoubleSeconds(absl::Now() - t0);
    v1::DestroyRequest destroy;
    destroy.set_scope(v1::DESTROY_SCOPE_ALL);
    if (absl::Status d = client_->Destroy(destroy).status(); !d.ok()) return d;
    absl::StatusOr<v1::PoolState> gone = Wait(v1::POOL_PHASE_DESTROYED, init->generation());
    if (!gone.ok()) return gone.status();
    return seconds;
  }

  // Microseconds of one GetState on the warm channel.
  absl::StatusOr<double> Unary() {
    const absl::Time t0 = absl::Now();
    absl::StatusOr<v1::PoolState> s = client_->GetState("default");
    if (!s.ok()) return s.status();
    return absl::ToDoubleMicroseconds(absl::Now() - t0);
  }

  // Milliseconds of a new channel's first GetState.
  absl::StatusOr<double> Connect() {
    const absl::Time t0 = absl::Now();
    std::unique_ptr<agent::CoordinatorClient> fresh = NewClient();
    absl::StatusOr<v1::PoolState> s = fresh->GetState("default");
    if (!s.ok()) return s.status();
    return absl::ToDoubleMilliseconds(absl::Now() - t0);
  }

 private:
  absl::StatusOr<v1::PoolState> Wait(v1::PoolPhase phase, int64_t generation) {
    const absl::Time deadline = absl::Now() + absl::Seconds(120);
    absl::StatusOr<v1::PoolState> s = client_->GetState("default");
    while (s.ok() && !(s->generation() >= generation &&
                       (s->phase() == phase || s->phase() == v1::POOL_PHASE_FAILED))) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return absl::DeadlineExceededError("timed out");
      s = client_->WaitForStateChange("default", s->version(), left);
    }
    return s;
  }

  const std::string name_, bin_, certs_;
  std::unique_ptr<ChildProcess> coordinator_;
  std::vector<std::unique_ptr<ChildProcess>> agents_;
  std::string address_;
  std::unique_ptr<agent::CoordinatorClient> client_;
};

int Fail(const std::string& what, const absl::Status& s) {
  std::fprintf(stderr, "error: %s: %s\n", what.c_str(), s.ToString().c_str());
  return 1;
}

}  // namespace
}  // namespace cohort

int main(int argc, char** argv) {
  using cohort::Setup;
  if (argc < 2) {
    std::cerr << "usage: tls_bench BIN_DIR [--repeat K] [--calls N]\n";
    return 2;
  }
  const std::string bin = argv[1];
  int repeat = 5, calls = 2000;
  for (int i = 2; i < argc; ++i) {
    if (std::string(argv[i]) == "--repeat" && i + 1 < argc) repeat = std::atoi(argv[++i]);
    if (std::string(argv[i]) == "--calls" && i + 1 < argc) calls = std::atoi(argv[++i]);
  }
  std::string certs = "/tmp/cohort-tls-bench-XXXXXX";
  if (mkdtemp(certs.data()) == nullptr) {
    std::cerr << "error: cannot make a temporary directory\n";
    return 1;
  }
  struct Remove {
    std::string path;
    ~Remove() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } remove{certs};
  const std::string mint = absl::StrCat(COHORT_SOURCE_DIR, "/deploy/mint-certs.sh ", certs,
                                        " --agents ", cohort::kWorld, " >/dev/null");
  if (std::system(mint.c_str()) != 0) {
    std::cerr << "error: " << mint << " failed\n";
    return 1;
  }
  std::vector<std::unique_ptr<Setup>> setups;
  setups.push_back(std::make_unique<Setup>("plaintext", bin, ""));
  setups.push_back(std::make_unique<Setup>("mTLS + policy", bin, certs));
  for (auto& s : setups) {
    if (absl::Status st = s->Start(); !st.ok()) return cohort::Fail(s->name(), st);
  }
  std::vector<std::vector<double>> init(2), unary(2), connect(2);
  for (int i = 0; i < repeat; ++i) {
    for (int k = 0; k < 2; ++k) {
      absl::StatusOr<double> t = setups[k]->InitToReady();
      if (!t.ok()) return cohort::Fail(setups[k]->name(), t.status());
      init[k].push_back(*t);
    }
  }
  for (int i = 0; i < calls; ++i) {
    for (int k = 0; k < 2; ++k) {
      absl::StatusOr<double> t = setups[k]->Unary();
      if (!t.ok()) return cohort::Fail(setups[k]->name(), t.status());
      unary[k].push_back(*t);
    }
  }
  for (int i = 0; i < 50; ++i) {
    for (int k = 0; k < 2; ++k) {
      absl::StatusOr<double> t = setups[k]->Connect();
      if (!t.ok()) return cohort::Fail(setups[k]->name(), t.status());
      connect[k].push_back(*t);
    }
  }
  std::printf("%-15s %22s %22s %22s %18s\n", "transport", "Init->READY w8 med",
              "Init->READY w8 best", "GetState p50 / p99", "new conn. med");
  for (int k = 0; k < 2; ++k) {
    std::printf("%-15s %21.3fs %21.3fs %11.0fus / %5.0fus %16.2fms\n", setups[k]->name().c_str(),
                cohort::Percentile(init[k], 0.5), cohort::Percentile(init[k], 0.0),
                cohort::Percentile(unary[k], 0.5), cohort::Percentile(unary[k], 0.99),
                cohort::Percentile(connect[k], 0.5));
  }
  std::printf("(%d Initialize -> READY, %d GetState and 50 new connections each, alternating)\n",
              repeat, calls);
  return 0;
}
