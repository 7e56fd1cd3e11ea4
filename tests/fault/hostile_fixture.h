// What the hostile-client tests share (see hostile_*_test.cc): the coordinator binary's flags,
// raw gRPC helpers, a raw session stream, and the fixture (a real coordinator with a READY pool
// of 4 Gloo agents, tp2 x dp2, and the attacker's stubs).
#ifndef COHORT_TESTS_FAULT_HOSTILE_FIXTURE_H_
#define COHORT_TESTS_FAULT_HOSTILE_FIXTURE_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <climits>
#include <deque>
#include <fstream>
#include <functional>
#include <iostream>
#include <set>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "cohort/v1/admin.grpc.pb.h"
#include "cohort/v1/agent.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "tests/cluster.h"
#include "tests/raw_grpc.h"

namespace cohort::testing {

using ::testing::HasSubstr;

const ParallelConfig kConfig{.world_size = 4, .data_parallel_size = 2, .tensor_parallel_size = 2};
constexpr absl::Duration kDeadline = absl::Seconds(60);
// What CheckName's refusals say: the allowed characters.
constexpr char kAllowedCharacters[] = "use letters, digits and . _ : -";

// ---- The coordinator binary's flags ---------------------------------------------------------

// The `--help` text of the coordinator binary under test.
inline const std::string& CoordinatorHelp() {
  static const std::string* const help = [] {
    auto* text = new std::string;
    auto child = ChildProcess::Spawn({Cluster::CoordinatorBinary(), "--help"}, "/dev/null");
    if (child.has_value()) {
      while (std::optional<std::string> line = child->ReadLine(absl::Seconds(20))) {
        absl::StrAppend(text, *line, "\n");
      }
      child->WaitExit(absl::Seconds(10));
    }
    return text;
  }();
  return *help;
}

inline bool Supports(const std::string& flag) {
  const std::string& help = CoordinatorHelp();
  for (const char* after : {" ", "\n", ",", "="}) {
    if (absl::StrContains(help, absl::StrCat(flag, after))) return true;
  }
  return false;
}

using FlagList = std::vector<std::pair<std::string, std::string>>;

// Heartbeats every 250 ms with a 10 s window (no busy machine misses it) plus `limits`, leaving out
// flags the binary does not know (an older build).
inline std::vector<std::string> Flags(const FlagList& limits) {
  std::vector<std::string> flags = {"--heartbeat-interval-ms", "250", "--heartbeat-misses", "40"};
  for (const auto& [flag, value] : limits) {
    if (!Supports(flag)) {
      std::cerr << "note: " << Cluster::CoordinatorBinary() << " has no " << flag
                << "; started without it\n";
      continue;
    }
    flags.push_back(flag);
    if (!value.empty()) flags.push_back(value);
  }
  return flags;
}

// ---- Small helpers --------------------------------------------------------------------------

inline std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout = absl::Seconds(10)) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

inline std::string Describe(const grpc::Status& s) {
  return absl::StrCat("status ", s.error_code(), ": ", s.error_message().substr(0, 2000));
}

// Refused with `code` and a message containing `needle`.
inline void ExpectRefused(const grpc::Status& s, grpc::StatusCode code, const std::string& needle) {
  EXPECT_EQ(s.error_code(), code) << Describe(s);
  EXPECT_THAT(s.error_message(), HasSubstr(needle));
}

inline v1::JoinRequest Joiner(const std::string& pool, const std::string& identity) {
  v1::JoinRequest join;
  join.set_pool(pool);
  join.set_identity(identity);
  join.set_incarnation(absl::StrCat(identity.size() < 64 ? identity : "long", "-incarnation"));
  return join;
}

inline v1::InitializeRequest SmallPool(const std::string& pool, int64_t deadline_ms = 0) {
  v1::InitializeRequest init;
  init.set_pool(pool);
  *init.mutable_config() = ToProto(ParallelConfig{.world_size = 1});
  init.mutable_options()->set_backend("none");
  init.mutable_options()->set_deadline_ms(deadline_ms);
  return init;
}

inline int64_t RssKb(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) return std::stoll(line.substr(6));
  }
  return -1;
}

// The body of an HTTP/1.0 GET of `url` ("http://127.0.0.1:PORT/path"); empty on failure.
inline std::string HttpGet(const std::string& url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "http://")) return "";
  const size_t slash = rest.find('/');
  const std::string host_port(rest.substr(0, slash));
  const std::string path(slash == absl::string_view::npos ? "/" : rest.substr(slash));
  const size_t colon = host_port.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(host_port.substr(colon + 1), &port)) {
    return "";
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &addr.sin_addr);
  std::string reply;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", host_port,
                                             "\r\nConnection: close\r\n\r\n");
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      const absl::Time deadline = absl::Now() + absl::Seconds(10);
      while (absl::Now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 1000) <= 0) continue;
        char buf[8192];
        const ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) break;
        reply.append(buf, n);
      }
    }
  }
  close(fd);
  const size_t body = reply.find("\r\n\r\n");
  return body == std::string::npos ? "" : reply.substr(body + 4);
}

// The value of `cohort_coordinator_limit_refusals_total{check="<check>"}` in a scrape (0 when
// absent).
inline double Refusals(const std::string& scrape, const std::string& check) {
  const std::string prefix =
      absl::StrCat("cohort_coordinator_limit_refusals_total{check=\"", check, "\"} ");
  for (absl::string_view line : absl::StrSplit(scrape, '\n')) {
    if (!absl::ConsumePrefix(&line, prefix)) continue;
    double value = 0;
    if (absl::SimpleAtod(line.substr(0, line.find(' ')), &value)) return value;
  }
  return 0;
}

// grpc.health.v1.Health/Watch until a status (tests/raw_grpc.h).
using raw_grpc::WaitForHealth;

// Unary calls in flight through the callback API: each finishes on a gRPC thread; the test
// waits on conditions with deadlines. Everything still in flight is cancelled and waited for
// when it goes.
template <typename Request, typename Response>
class Calls {
 public:
  using Start = std::function<void(grpc::ClientContext*, const Request*, Response*,
                                   std::function<void(grpc::Status)>)>;
  explicit Calls(Start start) : start_(std::move(start)) {}
  ~Calls() {
    CancelAll();
    WaitDone(static_cast<int>(contexts_.size()), absl::Seconds(30));
  }

  int Add(const Request& request, absl::Duration timeout) {
    const int i = static_cast<int>(contexts_.size());
    contexts_.push_back(Context(timeout));
    requests_.push_back(std::make_unique<Request>(request));
    responses_.push_back(std::make_unique<Response>());
    {
      absl::MutexLock lock(&mu_);
      statuses_.emplace_back();
      finished_.push_back(false);
    }
    start_(contexts_[i].get(), requests_[i].get(), responses_[i].get(), [this, i](grpc::Status s) {
      absl::MutexLock lock(&mu_);
      statuses_[i] = std::move(s);
      finished_[i] = true;
      ++done_;
    });
    return i;
  }

  // True once `n` calls have finished; false at the deadline.
  bool WaitDone(int n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }
  void CancelAll() {
    for (auto& c : contexts_) c->TryCancel();
  }
  int size() const { return static_cast<int>(contexts_.size()); }
  int done() {
    absl::MutexLock lock(&mu_);
    return done_;
  }
  bool finished(int i) {
    absl::MutexLock lock(&mu_);
    return finished_[i];
  }
  grpc::Status status(int i) {
    absl::MutexLock lock(&mu_);
    return statuses_[i];
  }
  const Response& response(int i) const { return *responses_[i]; }

 private:
  const Start start_;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts_;
  std::vector<std::unique_ptr<Request>> requests_;
  std::vector<std::unique_ptr<Response>> responses_;
  absl::Mutex mu_;
  std::deque<grpc::Status> statuses_ ABSL_GUARDED_BY(mu_);
  std::deque<bool> finished_ ABSL_GUARDED_BY(mu_);
  int done_ ABSL_GUARDED_BY(mu_) = 0;
};

// A session stream opened by hand: attach, then whatever the attacker writes. Optionally keeps
// heartbeats going (a message every `every`) so the coordinator does not declare it lost.
class RawSession {
 public:
  RawSession(v1::AgentService::Stub* stub, absl::Duration timeout)
      : context_(Context(timeout)), stream_(stub->Session(context_.get())) {}
  ~RawSession() { Close(); }

  bool Attach(const std::string& session_id) {
    v1::AgentMessage attach;
    attach.mutable_attach()->set_session_id(session_id);
    return Write(attach);
  }
  bool Write(const v1::AgentMessage& message) {
    absl::MutexLock lock(&write_mu_);
    return stream_->Write(message);
  }
  bool Read(v1::CoordinatorMessage* message) { return stream_->Read(message); }

  void StartHeartbeats(absl::Duration every) {
    heartbeats_ = std::thread([this, every] {
      absl::MutexLock lock(&stop_mu_);
      while (!stop_mu_.AwaitWithTimeout(absl::Condition(&stop_), every)) {
        v1::AgentMessage beat;
        beat.mutable_heartbeat();
        absl::MutexLock write(&write_mu_);
        if (!stream_->Write(beat)) return;
      }
    });
  }

  // Reads to the end of the stream (bounded by the stream's deadline) and returns its status.
  grpc::Status Finish() {
    StopHeartbeats();
    v1::CoordinatorMessage ignored;
    while (stream_->Read(&ignored)) {
    }
    finished_ = true;
    return stream_->Finish();
  }

  void Close() {
    StopHeartbeats();
    if (finished_) return;
    context_->TryCancel();
    (void)Finish();
  }

 private:
  void StopHeartbeats() {
    {
      absl::MutexLock lock(&stop_mu_);
      stop_ = true;
    }
    if (heartbeats_.joinable()) heartbeats_.join();
  }

  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::CoordinatorMessage>> stream_;
  absl::Mutex write_mu_;
  absl::Mutex stop_mu_;
  bool stop_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread heartbeats_;
  bool finished_ = false;
};

// ---- The fixture: a READY pool of 4 and the attacker's stubs --------------------------------

class Hostile : public ::testing::Test {
 protected:
  // A coordinator with `limits` and a READY generation of kConfig on 4 Gloo agents.
  void StartPool(const FlagList& limits = {}) {
    cluster_ = std::make_unique<Cluster>(Flags(limits));
    ASSERT_TRUE(cluster_->ok()) << "the coordinator did not start";
    channel_ = grpc::CreateChannel(cluster_->address(), grpc::InsecureChannelCredentials());
    agent_ = v1::AgentService::NewStub(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
    cluster_->StartAgents(4);
    absl::StatusOr<v1::InitializeResponse> init = cluster_->Initialize(kConfig);
    ASSERT_TRUE(init.ok()) << init.status();
    absl::StatusOr<v1::PoolState> ready =
        cluster_->WaitForPhase(v1::POOL_PHASE_READY, 1, kDeadline);
    ASSERT_TRUE(ready.ok()) << ready.status();
    ASSERT_EQ(ready->phase(), v1::POOL_PHASE_READY) << ready->error();
    generation_ = ready->generation();
  }

  grpc::Status Join(const v1::JoinRequest& request, v1::JoinResponse* response = nullptr) {
    v1::JoinResponse ignored;
    return agent_->Join(Context().get(), request, response != nullptr ? response : &ignored);
  }
  grpc::Status Initialize(const v1::InitializeRequest& request) {
    v1::InitializeResponse response;
    return admin_->Initialize(Context().get(), request, &response);
  }
  grpc::Status DeletePool(const std::string& pool, bool force) {
    v1::DeletePoolRequest request;
    request.set_pool(pool);
    request.set_force(force);
    v1::DeletePoolResponse response;
    return admin_->DeletePool(Context().get(), request, &response);
  }
  grpc::Status KvGet(const v1::KvGetRequest& request) {
    v1::KvGetResponse response;
    return agent_->KvGet(Context(absl::Seconds(30)).get(), request, &response);
  }
  absl::StatusOr<v1::PoolState> State(const std::string& pool = "default") {
    v1::GetStateRequest request;
    request.set_pool(pool);
    v1::GetStateResponse response;
    grpc::Status s = admin_->GetState(Context().get(), request, &response);
    if (!s.ok()) return FromGrpcStatus(s);
    return response.state();
  }
  std::vector<v1::Event> Events(const std::string& pool = "default", int64_t after_seq = 0) {
    v1::GetEventsRequest request;
    request.set_pool(pool);
    request.set_after_seq(after_seq);
    v1::GetEventsResponse response;
    grpc::Status s = admin_->GetEvents(Context().get(), request, &response);
    EXPECT_TRUE(s.ok()) << Describe(s);
    return std::vector<v1::Event>(response.events().begin(), response.events().end());
  }
  v1::KvGetRequest StoreGet(std::vector<std::string> keys, int64_t timeout_ms) {
    v1::KvGetRequest request;
    request.set_pool("default");
    request.set_generation(generation_);
    for (std::string& k : keys) request.add_keys(std::move(k));
    request.set_timeout_ms(timeout_ms);
    return request;
  }

  // The coordinator's RSS now, recorded as a test property and printed.
  void RecordRss() {
    const int64_t rss = RssKb(cluster_->coordinator().pid());
    RecordProperty("coordinator_vmrss_kb", static_cast<int>(rss));
    std::cout << "coordinator VmRSS: " << rss << " kB\n";
  }

  // The coordinator still runs; the pool is READY at the same generation with 4/4 ready and
  // every report matching the layout; a Check makes every member re-run the all-reduce on every
  // group and report (GROUP_STATE events), and the sums still match.
  void ExpectPoolIntact() {
    EXPECT_FALSE(cluster_->coordinator().WaitExit(absl::ZeroDuration()).has_value())
        << "the coordinator exited";
    const Layout layout = *Layout::Build(kConfig);
    absl::StatusOr<v1::PoolState> state = State();
    if (!state.ok()) {
      // Say why: a coordinator that crashed shows its signal.
      const std::optional<int> exit = cluster_->coordinator().WaitExit(absl::Seconds(5));
      FAIL() << state.status() << "; the coordinator "
             << (!exit.has_value()    ? std::string("still runs")
                 : WIFSIGNALED(*exit) ? absl::StrCat("was killed by signal ", WTERMSIG(*exit))
                                      : absl::StrCat("exited with ", WEXITSTATUS(*exit)));
    }
    ASSERT_EQ(state->phase(), v1::POOL_PHASE_READY) << state->error();
    EXPECT_EQ(state->generation(), generation_);
    EXPECT_EQ(state->members_ready(), 4);
    EXPECT_TRUE(state->missing_ranks().empty());
    ExpectReportsMatchLayout(*state, layout);
    const std::vector<v1::Event> before = Events();
    const int64_t after = before.empty() ? 0 : before.back().seq();
    v1::CheckRequest check;
    check.set_pool("default");
    v1::CheckResponse checked;
    grpc::Status s = admin_->Check(Context().get(), check, &checked);
    ASSERT_TRUE(s.ok()) << Describe(s);
    EXPECT_EQ(checked.generation(), generation_);
    const int expected = 4 * static_cast<int>(layout.kinds().size());
    int answers = 0;
    absl::StatusOr<v1::PoolState> done = cluster_->WaitFor(
        [&](const v1::PoolState&) {
          answers = 0;
          for (const v1::Event& e : Events("default", after)) {
            answers += e.kind() == v1::EVENT_KIND_GROUP_STATE;
          }
          return answers >= expected;
        },
        kDeadline);
    ASSERT_TRUE(done.ok()) << done.status() << " (" << answers << " of " << expected
                           << " check answers)";
    state = State();
    ASSERT_TRUE(state.ok()) << state.status();
    EXPECT_EQ(state->phase(), v1::POOL_PHASE_READY) << state->error();
    EXPECT_EQ(state->generation(), generation_);
    ExpectReportsMatchLayout(*state, layout);
  }

  std::unique_ptr<Cluster> cluster_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AgentService::Stub> agent_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  int64_t generation_ = 0;
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_FAULT_HOSTILE_FIXTURE_H_
