// The hostile-client suite (issue 9): a plain gRPC client speaking the public protos, as an
// attacker on the network would (raw AgentService / AdminService stubs, hand-made session
// streams, and raw bytes for requests that do not parse). One test per item of the issue; each
// starts a real coordinator and a READY pool of 4 Gloo agents (tp2 x dp2), attacks, asserts the
// refusal (its status code and that the message names the limit's flag or the field), and then
// that the pool is still READY at the same generation with 4/4 ready and passes a check (every
// member re-runs the all-reduce on every group and reports).
//
// Item 6 (the state file: O_EXCL/0600 temporary, fsync, corrupt files refused) is covered by
// tests/state_file_*_test.cc; nothing here.
//
// Running it against another coordinator binary (e.g. the code before the fixes):
//   COHORT_TEST_COORDINATOR_BIN=/path/to/old/cohort-coordinator ctest -R Hostile
// (tests/cluster.h). Limit flags that binary does not know (it would refuse to start) are left
// out: each test then attacks the coordinator with its default limits, and says so on stderr.
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

namespace cohort::testing {
namespace {

using ::testing::HasSubstr;

const ParallelConfig kConfig{.world_size = 4, .data_parallel_size = 2, .tensor_parallel_size = 2};
constexpr absl::Duration kDeadline = absl::Seconds(60);
// What CheckName's refusals say: the allowed characters.
constexpr char kAllowedCharacters[] = "use letters, digits and . _ : -";

// ---- The coordinator binary's flags ---------------------------------------------------------

// The `--help` text of the coordinator binary under test.
const std::string& CoordinatorHelp() {
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

bool Supports(const std::string& flag) {
  const std::string& help = CoordinatorHelp();
  for (const char* after : {" ", "\n", ",", "="}) {
    if (absl::StrContains(help, absl::StrCat(flag, after))) return true;
  }
  return false;
}

using FlagList = std::vector<std::pair<std::string, std::string>>;

// Fast heartbeats (250 ms x 6, as in fault_test) plus `limits`, leaving out flags the binary
// does not know (an older build).
std::vector<std::string> Flags(const FlagList& limits) {
  std::vector<std::string> flags = {"--heartbeat-interval-ms", "250", "--heartbeat-misses", "6"};
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

std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout = absl::Seconds(10)) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

std::string Describe(const grpc::Status& s) {
  return absl::StrCat("status ", s.error_code(), ": ", s.error_message().substr(0, 2000));
}

// Refused with `code` and a message containing `needle`.
void ExpectRefused(const grpc::Status& s, grpc::StatusCode code, const std::string& needle) {
  EXPECT_EQ(s.error_code(), code) << Describe(s);
  EXPECT_THAT(s.error_message(), HasSubstr(needle));
}

v1::JoinRequest Joiner(const std::string& pool, const std::string& identity) {
  v1::JoinRequest join;
  join.set_pool(pool);
  join.set_identity(identity);
  join.set_incarnation(absl::StrCat(identity.size() < 64 ? identity : "long", "-incarnation"));
  return join;
}

v1::InitializeRequest SmallPool(const std::string& pool, int64_t deadline_ms = 0) {
  v1::InitializeRequest init;
  init.set_pool(pool);
  *init.mutable_config() = ToProto(ParallelConfig{.world_size = 1});
  init.mutable_options()->set_backend("none");
  init.mutable_options()->set_deadline_ms(deadline_ms);
  return init;
}

int64_t RssKb(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) return std::stoll(line.substr(6));
  }
  return -1;
}

// The body of an HTTP/1.0 GET of `url` ("http://127.0.0.1:PORT/path"); empty on failure.
std::string HttpGet(const std::string& url) {
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
double Refusals(const std::string& scrape, const std::string& check) {
  const std::string prefix =
      absl::StrCat("cohort_coordinator_limit_refusals_total{check=\"", check, "\"} ");
  for (absl::string_view line : absl::StrSplit(scrape, '\n')) {
    if (!absl::ConsumePrefix(&line, prefix)) continue;
    double value = 0;
    if (absl::SimpleAtod(line.substr(0, line.find(' ')), &value)) return value;
  }
  return 0;
}

// grpc.health.v1.Health/Watch of `service` until it reports `want` (1: SERVING); false if it has
// not by `timeout`. HealthCheckRequest and HealthCheckResponse are encoded by hand (field 1).
bool WaitForHealth(grpc::Channel* channel, const std::string& service, int want,
                   absl::Duration timeout) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  std::string request = "\x0a";
  request.push_back(static_cast<char>(service.size()));
  request += service;
  grpc::Slice slice(request);
  grpc::ByteBuffer buffer(&slice, 1);
  const grpc::internal::RpcMethod method("/grpc.health.v1.Health/Watch",
                                         grpc::internal::RpcMethod::SERVER_STREAMING);
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(channel, method, &context,
                                                                    buffer));
  grpc::ByteBuffer response;
  while (reader->Read(&response)) {
    grpc::Slice out;
    if (!response.DumpToSingleSlice(&out).ok()) continue;
    const std::string bytes(reinterpret_cast<const char*>(out.begin()), out.size());
    const int status = bytes.size() >= 2 && bytes[0] == 0x08 ? bytes[1] : 0;
    if (status == want) {
      context.TryCancel();
      reader->Finish();
      return true;
    }
  }
  reader->Finish();
  return false;
}

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
    start_(contexts_[i].get(), requests_[i].get(), responses_[i].get(),
           [this, i](grpc::Status s) {
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
             << (!exit.has_value()         ? std::string("still runs")
                 : WIFSIGNALED(*exit)      ? absl::StrCat("was killed by signal ", WTERMSIG(*exit))
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

// ---- 1. Held state inconsistent with its config ---------------------------------------------

// Two such joins into a new pool, each attached, crashed the coordinator (SIGSEGV in PlanFor: a
// world of 2 with a 1-rank layout). Held states were validated from 85c9e3e (issue 8) on; this
// test fails against its parent d1d1766 (the coordinator dies of signal 11).
TEST_F(Hostile, Item1_HeldStateInconsistentWithItsConfig_RefusedNoCrash) {
  ASSERT_NO_FATAL_FAILURE(StartPool());
  std::vector<std::unique_ptr<RawSession>> sessions;
  for (int rank : {1, 0}) {
    v1::JoinRequest join = Joiner("p2", absl::StrCat("holder-", rank));
    v1::HeldState* held = join.mutable_held();
    held->set_holding(true);
    held->set_rank(rank);
    held->set_world_size(2);
    held->set_generation(7);
    held->mutable_config()->set_world_size(1);
    v1::JoinResponse joined;
    grpc::Status s = Join(join, &joined);
    ExpectRefused(s, grpc::StatusCode::INVALID_ARGUMENT, "world_size");
    if (s.ok()) {  // what the issue did next
      sessions.push_back(std::make_unique<RawSession>(agent_.get(), absl::Seconds(30)));
      sessions.back()->Attach(joined.session_id());
    }
  }
  // Nothing was made of it: no member of p2 exists (the pool itself may).
  absl::StatusOr<v1::PoolState> p2 = State("p2");
  if (p2.ok()) {
    EXPECT_EQ(p2->members_size(), 0);
  }
  ExpectPoolIntact();
}

// ---- 2. Session hijack ----------------------------------------------------------------------

// Before issue 9 a join with a member's published identity and incarnation took over its
// session: the real agent was told to abort, and the pool stayed READY (3/4) and SERVING.
TEST_F(Hostile, Item2_JoinWithPublishedIdentityAndIncarnation_RefusedRealSessionKept) {
  ASSERT_NO_FATAL_FAILURE(StartPool());
  absl::StatusOr<v1::PoolState> state = State();
  ASSERT_TRUE(state.ok()) << state.status();
  const v1::MemberState* victim = nullptr;
  for (const v1::MemberState& m : state->members()) {
    if (m.rank() == 1) victim = &m;
  }
  ASSERT_NE(victim, nullptr);
  const std::string identity = victim->identity();
  const std::string incarnation = victim->incarnation();
  const int64_t before_seq = Events().back().seq();
  v1::JoinRequest join;  // no previous_session_id: the attacker never saw it
  join.set_identity(identity);
  join.set_incarnation(incarnation);
  v1::JoinResponse joined;
  grpc::Status s = Join(join, &joined);
  ExpectRefused(s, grpc::StatusCode::ALREADY_EXISTS, "live agent");
  if (s.ok()) {  // what the issue did next: attach and go away
    RawSession session(agent_.get(), absl::Seconds(10));
    session.Attach(joined.session_id());
  }
  // The real agent keeps its session: nobody was lost or told to abort.
  for (const v1::Event& e : Events("default", before_seq)) {
    EXPECT_NE(e.kind(), v1::EVENT_KIND_ABORT) << e.message();
    EXPECT_NE(e.kind(), v1::EVENT_KIND_MEMBER_LOST) << e.message();
    EXPECT_NE(e.kind(), v1::EVENT_KIND_ATTACHED) << e.message();
  }
  state = State();
  ASSERT_TRUE(state.ok()) << state.status();
  for (const v1::MemberState& m : state->members()) {
    if (m.identity() == identity) {
      EXPECT_TRUE(m.connected());
      EXPECT_EQ(m.phase(), v1::MEMBER_PHASE_READY);
    }
  }
  EXPECT_TRUE(WaitForHealth(channel_.get(), "cohort.pool.default", /*SERVING=*/1,
                            absl::Seconds(10)));
  ExpectPoolIntact();
}

// ---- 3. Integer overflow in rank assignment -------------------------------------------------

TEST_F(Hostile, Item3_RankHintIntMax_RefusedNamingMaxWorldSize_LaterJoinsWork) {
  ASSERT_NO_FATAL_FAILURE(StartPool());
  v1::JoinRequest join = Joiner("default", "overflow");
  join.set_rank_hint(INT_MAX);
  ExpectRefused(Join(join), grpc::StatusCode::INVALID_ARGUMENT, "--max-world-size");
  join.set_rank_hint(-7);
  ExpectRefused(Join(join), grpc::StatusCode::INVALID_ARGUMENT, "--max-world-size");
  // A fresh 5th agent still joins (as a standby: every rank is taken).
  cluster_->StartAgent(4, -1);
  absl::StatusOr<v1::PoolState> standby = cluster_->WaitFor(
      [](const v1::PoolState& s) {
        for (const v1::MemberState& m : s.members()) {
          if (m.identity() == "agent-4") return m.connected() && m.rank() == -1;
        }
        return false;
      },
      kDeadline);
  ASSERT_TRUE(standby.ok()) << standby.status();
  EXPECT_EQ(standby->members_standby(), 1);
  ExpectPoolIntact();
}

// ---- 4. One client stalls everyone ----------------------------------------------------------

// 200 long-polls on the current version and a join: the join answers, and every long-poll is
// answered with the same state (the join's version). Cancelled store gets are dropped at once:
// 60 waits (the limit) cancelled, then 60 more are accepted; a coordinator that kept cancelled
// waiters until their own timeout (60 s here, as before issue 9) would refuse the second batch.
// (85c9e3e has no --max-kv-waiters at all, and 200 long-polls only slowed it down: against it
// this test fails only where it expects the limit's refusal.)
TEST_F(Hostile, Item4_LongPollsDoNotStallAJoin_CancelledWaitsDoNotPileUp) {
  ASSERT_NO_FATAL_FAILURE(StartPool({{"--max-kv-waiters", "60"}}));
  absl::StatusOr<v1::PoolState> now = State();
  ASSERT_TRUE(now.ok()) << now.status();
  const int64_t version = now->version();
  {
    Calls<v1::GetStateRequest, v1::GetStateResponse> polls(
        [this](grpc::ClientContext* c, const v1::GetStateRequest* q, v1::GetStateResponse* r,
               std::function<void(grpc::Status)> done) {
          admin_->async()->GetState(c, q, r, std::move(done));
        });
    v1::GetStateRequest poll;
    poll.set_pool("default");
    poll.mutable_wait()->set_after_version(version);
    poll.mutable_wait()->set_timeout_ms(120000);
    for (int i = 0; i < 200; ++i) polls.Add(poll, absl::Seconds(150));
    v1::JoinResponse joined;
    grpc::Status s = Join(Joiner("default", "late-joiner"), &joined);
    ASSERT_TRUE(s.ok()) << Describe(s);
    EXPECT_EQ(joined.rank(), -1);
    ASSERT_TRUE(polls.WaitDone(200, kDeadline)) << polls.done() << " of 200 long-polls answered";
    int64_t seen = -1;
    std::set<std::string> first_members;
    for (int i = 0; i < 200; ++i) {
      ASSERT_TRUE(polls.status(i).ok()) << "long-poll " << i << ": " << Describe(polls.status(i));
      const v1::PoolState& st = polls.response(i).state();
      std::set<std::string> members;
      for (const v1::MemberState& m : st.members()) {
        members.insert(absl::StrCat(m.identity(), "/", m.rank(), "/", m.phase()));
      }
      EXPECT_TRUE(members.count(absl::StrCat("late-joiner/-1/", v1::MEMBER_PHASE_STANDBY)))
          << "long-poll " << i << " did not see the join";
      EXPECT_GT(st.version(), version);
      EXPECT_EQ(st.phase(), v1::POOL_PHASE_READY);
      if (i == 0) {
        seen = st.version();
        first_members = members;
      } else {
        EXPECT_EQ(st.version(), seen) << "long-poll " << i;
        EXPECT_EQ(members, first_members) << "long-poll " << i;
      }
    }
  }

  using KvCalls = Calls<v1::KvGetRequest, v1::KvGetResponse>;
  auto start_get = [this](grpc::ClientContext* c, const v1::KvGetRequest* q, v1::KvGetResponse* r,
                          std::function<void(grpc::Status)> done) {
    agent_->async()->KvGet(c, q, r, std::move(done));
  };
  const v1::KvGetRequest never = StoreGet({"hostile/never-set"}, 60000);
  {
    KvCalls waits(start_get);
    for (int i = 0; i < 60; ++i) waits.Add(never, absl::Seconds(90));
    // All 60 are waiting once one more (that would not wait) is refused past the limit.
    const v1::KvGetRequest probe = StoreGet({"hostile/never-set"}, 0);
    grpc::Status refused;
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline) {
      refused = KvGet(probe);
      if (refused.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) break;
    }
    ExpectRefused(refused, grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-kv-waiters");
    EXPECT_EQ(waits.done(), 0);
    waits.CancelAll();
    ASSERT_TRUE(waits.WaitDone(60, absl::Seconds(30)));
    for (int i = 0; i < 60; ++i) EXPECT_EQ(waits.status(i).error_code(), grpc::StatusCode::CANCELLED);
  }
  // 60 more are accepted (each waits, then times out naming its key) once the coordinator has
  // seen the cancellations (they travel as RST_STREAM frames: a round may still meet some).
  const v1::KvGetRequest brief = StoreGet({"hostile/never-set"}, 300);
  bool accepted = false;
  std::string last;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!accepted && absl::Now() < deadline) {
    KvCalls round(start_get);
    for (int i = 0; i < 60; ++i) round.Add(brief, absl::Seconds(30));
    ASSERT_TRUE(round.WaitDone(60, absl::Seconds(30)));
    accepted = true;
    for (int i = 0; i < 60; ++i) {
      const grpc::Status s = round.status(i);
      if (s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED ||
          !absl::StrContains(s.error_message(), "never set")) {
        accepted = false;
        last = Describe(s);
      }
    }
  }
  EXPECT_TRUE(accepted) << "a wait after the cancellations was refused: " << last;
  ExpectPoolIntact();
}

// ---- 5. Unbounded state keyed by client input -----------------------------------------------

// Pools past --max-pools, by Join and by Initialize; DeletePool frees one (NOT_FOUND for an
// unknown pool, FAILED_PRECONDITION while members are attached).
TEST_F(Hostile, Item5_PoolsPastMaxPools_Refused_DeletePool) {
  ASSERT_NO_FATAL_FAILURE(StartPool({{"--max-pools", "4"}}));
  ASSERT_TRUE(Initialize(SmallPool("p1")).ok());
  ASSERT_TRUE(Join(Joiner("p2", "lonely")).ok());
  ASSERT_TRUE(Initialize(SmallPool("p3")).ok());
  ExpectRefused(Join(Joiner("p4", "lonely")), grpc::StatusCode::RESOURCE_EXHAUSTED,
                "--max-pools");
  ExpectRefused(Initialize(SmallPool("p5")), grpc::StatusCode::RESOURCE_EXHAUSTED,
                "--max-pools");
  v1::ListPoolsResponse pools;
  ASSERT_TRUE(admin_->ListPools(Context().get(), v1::ListPoolsRequest(), &pools).ok());
  EXPECT_EQ(pools.pools_size(), 4);

  ExpectRefused(DeletePool("no-such-pool", false), grpc::StatusCode::NOT_FOUND, "no-such-pool");
  ExpectRefused(DeletePool("default", false), grpc::StatusCode::FAILED_PRECONDITION,
                "4 attached members");
  EXPECT_TRUE(DeletePool("p1", false).ok());
  EXPECT_EQ(State("p1").status().code(), absl::StatusCode::kNotFound);
  // The slot is free again.
  grpc::Status s = Join(Joiner("p4", "lonely"));
  EXPECT_TRUE(s.ok()) << Describe(s);
  RecordRss();
  ExpectPoolIntact();
}

// Members per pool, identity length and charset, pool-name length and charset, a held world of
// 2*10^7; every refusal counted in cohort_coordinator_limit_refusals_total.
TEST_F(Hostile, Item5_MembersNamesHeldWorld_Refused_AndCounted) {
  ASSERT_NO_FATAL_FAILURE(StartPool(
      {{"--max-members-per-pool", "8"}, {"--metrics-listen", "127.0.0.1:0"}}));
  for (int i = 0; i < 4; ++i) {
    grpc::Status s = Join(Joiner("default", absl::StrCat("standby-", i)));
    ASSERT_TRUE(s.ok()) << Describe(s);
  }
  ExpectRefused(Join(Joiner("default", "standby-4")), grpc::StatusCode::RESOURCE_EXHAUSTED,
                "--max-members-per-pool");
  ExpectRefused(Join(Joiner("default", std::string(300, 'a'))),
                grpc::StatusCode::INVALID_ARGUMENT, "--max-identity-length");
  ExpectRefused(Join(Joiner("default", "evil\nname")), grpc::StatusCode::INVALID_ARGUMENT,
                kAllowedCharacters);
  ExpectRefused(Join(Joiner("default", "\x1b[31mred")), grpc::StatusCode::INVALID_ARGUMENT,
                kAllowedCharacters);
  ExpectRefused(Join(Joiner(std::string(100, 'p'), "pooled")),
                grpc::StatusCode::INVALID_ARGUMENT, "--max-pool-name-length");
  ExpectRefused(Join(Joiner("a/b", "pooled")), grpc::StatusCode::INVALID_ARGUMENT,
                kAllowedCharacters);
  ExpectRefused(Initialize(SmallPool("bad pool")), grpc::StatusCode::INVALID_ARGUMENT,
                kAllowedCharacters);
  v1::JoinRequest held = Joiner("default", "big-holder");
  held.mutable_held()->set_holding(true);
  held.mutable_held()->set_rank(0);
  held.mutable_held()->set_world_size(20000000);
  held.mutable_held()->set_generation(1);
  const grpc::Status s = Join(held);
  EXPECT_TRUE(s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ||
              s.error_code() == grpc::StatusCode::INVALID_ARGUMENT)
      << Describe(s);
  EXPECT_THAT(s.error_message(), HasSubstr("--max-world-size"));

  // The refusals metric (the coordinator's second stdout line names the metrics URL).
  std::optional<std::string> line = cluster_->coordinator().ReadLine(absl::Seconds(10));
  ASSERT_TRUE(line.has_value()) << "no metrics URL";
  const std::string scrape = HttpGet(line->substr(line->rfind(' ') + 1));
  ASSERT_THAT(scrape, HasSubstr("cohort_coordinator_"));
  EXPECT_GE(Refusals(scrape, "max-members-per-pool"), 1);
  EXPECT_GE(Refusals(scrape, "identity"), 3);
  EXPECT_GE(Refusals(scrape, "pool-name"), 3);
  EXPECT_GE(Refusals(scrape, "max-world-size"), 1);
  RecordRss();
  ExpectPoolIntact();
}

// The rendezvous store past --max-store-keys / --max-store-bytes, long-polls past
// --max-state-waiters, watchers past --max-watchers, an Initialize past --max-world-size.
TEST_F(Hostile, Item5_StoreWaitersWatchersWorldSize_Refused) {
  ASSERT_NO_FATAL_FAILURE(StartPool({{"--max-store-keys", "200"},
                                     {"--max-store-bytes", "65536"},
                                     {"--max-state-waiters", "10"},
                                     {"--max-watchers", "3"},
                                     {"--max-world-size", "64"}}));
  {
    v1::KvSetRequest set;
    set.set_pool("default");
    set.set_generation(generation_);
    for (int i = 0; i < 201; ++i) {
      v1::KvEntry* e = set.add_entries();
      e->set_key(absl::StrCat("hostile/k", i));
      e->set_value("v");
    }
    v1::KvSetResponse response;
    ExpectRefused(agent_->KvSet(Context().get(), set, &response),
                  grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-store-keys");
    set.clear_entries();
    v1::KvEntry* big = set.add_entries();
    big->set_key("hostile/big");
    big->set_value(std::string(70000, 'x'));
    ExpectRefused(agent_->KvSet(Context().get(), set, &response),
                  grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-store-bytes");
  }
  {
    absl::StatusOr<v1::PoolState> now = State();
    ASSERT_TRUE(now.ok()) << now.status();
    Calls<v1::GetStateRequest, v1::GetStateResponse> polls(
        [this](grpc::ClientContext* c, const v1::GetStateRequest* q, v1::GetStateResponse* r,
               std::function<void(grpc::Status)> done) {
          admin_->async()->GetState(c, q, r, std::move(done));
        });
    v1::GetStateRequest poll;
    poll.set_pool("default");
    poll.mutable_wait()->set_after_version(now->version());
    poll.mutable_wait()->set_timeout_ms(20000);
    for (int i = 0; i < 11; ++i) polls.Add(poll, absl::Seconds(30));
    // Nothing changes the pool meanwhile: the only answer is the refusal of the eleventh.
    EXPECT_TRUE(polls.WaitDone(1, absl::Seconds(15))) << "no long-poll was refused";
    bool refused = false;
    for (int i = 0; i < polls.size(); ++i) {
      if (!polls.finished(i)) continue;
      ExpectRefused(polls.status(i), grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-state-waiters");
      refused = true;
    }
    EXPECT_TRUE(refused);
    EXPECT_EQ(polls.done(), 1);
  }
  {
    std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
    std::vector<std::unique_ptr<grpc::ClientReader<v1::WatchEvent>>> watchers;
    v1::WatchRequest watch;
    watch.set_pool("default");
    watch.set_snapshot(true);
    for (int i = 0; i < 3; ++i) {
      contexts.push_back(Context(absl::Seconds(60)));
      watchers.push_back(admin_->Watch(contexts.back().get(), watch));
      v1::WatchEvent first;
      ASSERT_TRUE(watchers.back()->Read(&first)) << "watcher " << i;  // registered
      EXPECT_TRUE(first.has_snapshot());
    }
    auto context = Context(absl::Seconds(20));
    auto fourth = admin_->Watch(context.get(), watch);
    v1::WatchEvent event;
    const bool streamed = fourth->Read(&event);
    EXPECT_FALSE(streamed) << "a fourth watcher was served";
    if (streamed) context->TryCancel();
    ExpectRefused(fourth->Finish(), grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-watchers");
    for (size_t i = 0; i < watchers.size(); ++i) {
      contexts[i]->TryCancel();
      (void)watchers[i]->Finish();
    }
  }
  {
    v1::InitializeRequest init;
    init.set_pool("big");
    *init.mutable_config() = ToProto(ParallelConfig{.world_size = 128, .data_parallel_size = 128});
    init.mutable_options()->set_backend("none");
    ExpectRefused(Initialize(init), grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-world-size");
  }
  RecordRss();
  ExpectPoolIntact();
}

// A session stream that never attaches is closed after --attach-timeout-ms.
TEST_F(Hostile, Item5_SessionThatNeverAttaches_ClosedAfterAttachTimeout) {
  ASSERT_NO_FATAL_FAILURE(StartPool({{"--attach-timeout-ms", "2000"}}));
  RawSession idle(agent_.get(), absl::Seconds(15));  // sends nothing at all
  const grpc::Status s = idle.Finish();
  ExpectRefused(s, grpc::StatusCode::DEADLINE_EXCEEDED, "attach");
  RecordRss();
  ExpectPoolIntact();
}

// A member of its own one-rank pool (backend none: nothing to build) sends one GroupStates of
// 5,000 made-up groups: at most one event per group it really holds (and at most 64) follows,
// not thousands. Then DeletePool of that pool: refused while its member is attached, done with
// force (the member's session is closed).
TEST_F(Hostile, Item5_GroupStatesOfThousandsOfFakeGroups_NoFlood_DeletePoolForce) {
  ASSERT_NO_FATAL_FAILURE(StartPool());
  v1::JoinResponse joined;
  grpc::Status s = Join(Joiner("flood", "flooder"), &joined);
  ASSERT_TRUE(s.ok()) << Describe(s);
  ASSERT_EQ(joined.rank(), 0);
  RawSession session(agent_.get(), absl::Seconds(60));
  ASSERT_TRUE(session.Attach(joined.session_id()));
  ASSERT_TRUE(Initialize(SmallPool("flood")).ok());
  v1::CoordinatorMessage message;
  while (session.Read(&message) && !message.has_plan()) {
  }
  ASSERT_TRUE(message.has_plan()) << "no plan for the flood pool";
  const int64_t generation = message.plan().generation();
  session.StartHeartbeats(absl::Milliseconds(100));
  v1::AgentMessage report;
  report.mutable_report()->set_generation(generation);
  report.mutable_report()->set_ok(true);
  v1::GroupReport* world = report.mutable_report()->add_groups();
  world->set_kind(v1::GROUP_KIND_WORLD);
  world->set_size(1);
  world->set_state(v1::COMM_STATE_READY);
  ASSERT_TRUE(session.Write(report));
  absl::StatusOr<v1::PoolState> ready = cluster_->WaitFor(
      [](const v1::PoolState& st) { return st.phase() == v1::POOL_PHASE_READY; }, kDeadline,
      "flood");
  ASSERT_TRUE(ready.ok()) << ready.status();
  const int64_t version = ready->version();
  const int64_t after = Events("flood").back().seq();

  v1::AgentMessage flood;
  flood.mutable_group_states()->set_generation(generation);
  for (int i = 0; i < 5000; ++i) {
    v1::GroupReport* g = flood.mutable_group_states()->add_groups();
    g->set_kind(i % 2 == 0 ? v1::GROUP_KIND_WORLD : v1::GROUP_KIND_TP);
    g->set_index(i % 2 == 0 ? 0 : i);
    g->set_state(v1::COMM_STATE_ERROR);
    g->set_async_error("made up");
  }
  ASSERT_TRUE(session.Write(flood));
  // The message was handled once the pool's version moves.
  absl::StatusOr<v1::PoolState> handled = cluster_->WaitFor(
      [version](const v1::PoolState& st) { return st.version() > version; }, kDeadline, "flood");
  ASSERT_TRUE(handled.ok()) << handled.status();
  int group_states = 0;
  const std::vector<v1::Event> events = Events("flood", after);
  for (const v1::Event& e : events) group_states += e.kind() == v1::EVENT_KIND_GROUP_STATE;
  EXPECT_LE(group_states, 64);
  EXPECT_LE(events.size(), 100u);
  RecordProperty("flood_group_state_events", group_states);

  ExpectRefused(DeletePool("flood", false), grpc::StatusCode::FAILED_PRECONDITION, "attached");
  s = DeletePool("flood", true);
  EXPECT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(State("flood").status().code(), absl::StatusCode::kNotFound);
  const grpc::Status closed = session.Finish();
  ExpectRefused(closed, grpc::StatusCode::ABORTED, "deleted");
  RecordRss();
  ExpectPoolIntact();
}

// ---- Beyond the items: a member outside the generation ---------------------------------------

// A standby (rank -1, in no generation) that sends a GenerationReport{ok: false} for the
// current generation while the pool is INITIALIZING must not fail it (it did: every report went
// to HandleReport, which never checked that the sender was planned into the generation; with
// ok: true a standby even marked itself READY). The report is refused and the pool goes READY
// once its real rank reports.
TEST_F(Hostile, StandbyReportForTheCurrentGeneration_DoesNotFailIt) {
  ASSERT_NO_FATAL_FAILURE(StartPool());
  v1::JoinResponse a;
  grpc::Status s = Join(Joiner("victim", "holder-a"), &a);
  ASSERT_TRUE(s.ok()) << Describe(s);
  RawSession holder(agent_.get(), absl::Seconds(60));
  ASSERT_TRUE(holder.Attach(a.session_id()));
  ASSERT_TRUE(Initialize(SmallPool("victim", 60000)).ok());
  v1::CoordinatorMessage message;
  while (holder.Read(&message) && !message.has_plan()) {
  }
  ASSERT_TRUE(message.has_plan());
  const int64_t generation = message.plan().generation();
  holder.StartHeartbeats(absl::Milliseconds(100));
  // The world (1) is full: the second agent is a standby.
  v1::JoinResponse b;
  s = Join(Joiner("victim", "standby-b"), &b);
  ASSERT_TRUE(s.ok()) << Describe(s);
  ASSERT_EQ(b.rank(), -1);
  RawSession standby(agent_.get(), absl::Seconds(60));
  ASSERT_TRUE(standby.Attach(b.session_id()));
  v1::AgentMessage forged;
  forged.mutable_report()->set_generation(generation);
  forged.mutable_report()->set_ok(false);
  forged.mutable_report()->set_error("forged failure");
  ASSERT_TRUE(standby.Write(forged));
  // Messages of one stream are handled in order: once this progress shows, so was the report.
  v1::AgentMessage progress;
  progress.mutable_progress()->set_generation(generation);
  progress.mutable_progress()->set_phase("marker");
  ASSERT_TRUE(standby.Write(progress));
  standby.StartHeartbeats(absl::Milliseconds(100));
  absl::StatusOr<v1::PoolState> handled = cluster_->WaitFor(
      [](const v1::PoolState& st) {
        for (const v1::MemberState& m : st.members()) {
          if (m.identity() == "standby-b" && m.progress().phase() == "marker") return true;
        }
        return st.phase() == v1::POOL_PHASE_FAILED;
      },
      kDeadline, "victim");
  ASSERT_TRUE(handled.ok()) << handled.status();
  EXPECT_EQ(handled->phase(), v1::POOL_PHASE_INITIALIZING) << handled->error();
  // The real rank reports: READY.
  v1::AgentMessage report;
  report.mutable_report()->set_generation(generation);
  report.mutable_report()->set_ok(true);
  ASSERT_TRUE(holder.Write(report));
  absl::StatusOr<v1::PoolState> done = cluster_->WaitFor(
      [](const v1::PoolState& st) {
        return st.phase() == v1::POOL_PHASE_READY || st.phase() == v1::POOL_PHASE_FAILED;
      },
      kDeadline, "victim");
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->phase(), v1::POOL_PHASE_READY) << done->error();
  ExpectPoolIntact();
}

// ---- 7. Log and terminal injection ----------------------------------------------------------

TEST_F(Hostile, Item7_IdentitiesWithNewlineOrEscape_RefusedAtTheDoor) {
  ASSERT_NO_FATAL_FAILURE(StartPool());
  const int64_t after = Events().back().seq();
  for (const std::string& identity :
       {std::string("agent-9\n[info] pool default: generation 2 READY"),
        std::string("\x1b[31mred\x1b[0m"), std::string("bell\x07"), std::string("nul\0x", 5)}) {
    SCOPED_TRACE(absl::CHexEscape(identity));
    ExpectRefused(Join(Joiner("default", identity)), grpc::StatusCode::INVALID_ARGUMENT,
                  kAllowedCharacters);
  }
  ExpectRefused(Join(Joiner("pool\x1b[2J", "agent-x")), grpc::StatusCode::INVALID_ARGUMENT,
                kAllowedCharacters);
  // Nothing raw reached the event log.
  for (const v1::Event& e : Events("default", after)) {
    for (const std::string* text : {&e.identity(), &e.message()}) {
      for (char c : *text) {
        EXPECT_TRUE(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f)
            << "event " << e.seq() << ": " << absl::CHexEscape(*text);
      }
    }
  }
  ExpectPoolIntact();
}

// ---- 8. Smaller ones ------------------------------------------------------------------------

TEST_F(Hostile, Item8_UnknownEnum_BadDeadlines_HugeMissingKeys_Garbage) {
  ASSERT_NO_FATAL_FAILURE(StartPool());
  // A second pool, so that the READY one is untouched.
  ExpectRefused(Initialize(SmallPool("deadlines", -5)), grpc::StatusCode::INVALID_ARGUMENT,
                "deadline_ms");
  ExpectRefused(Initialize(SmallPool("deadlines", 1000000000000000)),
                grpc::StatusCode::INVALID_ARGUMENT, "deadline_ms");
  {
    // 60,000 missing keys (a request takes at most 65,536): the timeout names a few and counts
    // the rest. Before issue 9 it named all of them, past gRPC's metadata limit.
    std::vector<std::string> keys;
    for (int i = 0; i < 60000; ++i) keys.push_back(absl::StrCat("hostile/missing/", i));
    const grpc::Status s = KvGet(StoreGet(keys, 100));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << Describe(s);
    EXPECT_LT(s.error_message().size(), 2048u);
    EXPECT_THAT(s.error_message(), HasSubstr("and 59984 more"));
    // 100,000 keys are more than one request may name: refused, with a short message.
    for (int i = 60000; i < 100000; ++i) keys.push_back(absl::StrCat("hostile/missing/", i));
    const grpc::Status many = KvGet(StoreGet(keys, 100));
    EXPECT_EQ(many.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << Describe(many);
    EXPECT_LT(many.error_message().size(), 2048u);
    EXPECT_THAT(many.error_message(), HasSubstr("100000 keys"));
  }
  {
    // Bytes that do not parse as an InitializeRequest (field 1 claims 2^32-1 bytes). gRPC 1.51's
    // callback server fails the deserialization itself, before any handler runs, and answers
    // UNIMPLEMENTED with an empty message (observed on every run, before and after issue 9: the
    // coordinator never sees the call, so it cannot answer INVALID_ARGUMENT). Recorded, not
    // asserted, since the framework chooses it: only "refused, and the coordinator lives on".
    grpc::GenericStub stub(channel_);
    const std::string garbage("\x0a\xff\xff\xff\xff\x0f\x01\x02", 8);
    grpc::Slice slice(garbage);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    auto context = Context();
    absl::Mutex mu;
    bool done = false;
    grpc::Status status;
    stub.UnaryCall(context.get(), "/cohort.v1.AdminService/Initialize", grpc::StubOptions(),
                   &request, &response, [&](grpc::Status s) {
                     absl::MutexLock lock(&mu);
                     status = std::move(s);
                     done = true;
                   });
    {
      absl::MutexLock lock(&mu);
      ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(30)));
    }
    EXPECT_FALSE(status.ok());
    RecordProperty("garbage_initialize_status",
                   absl::StrCat(status.error_code(), " ", status.error_message()));
    std::cout << "garbage Initialize answered " << Describe(status) << "\n";
  }
  {
    // Last: before issue 9 it destroyed the pool, which would hide the other answers.
    v1::DestroyRequest destroy;
    destroy.set_scope(static_cast<v1::DestroyScope>(99));
    v1::DestroyResponse response;
    ExpectRefused(admin_->Destroy(Context().get(), destroy, &response),
                  grpc::StatusCode::INVALID_ARGUMENT, "scope");
    absl::StatusOr<v1::PoolState> state = State();
    ASSERT_TRUE(state.ok());
    EXPECT_EQ(state->phase(), v1::POOL_PHASE_READY);
  }
  ExpectPoolIntact();
}

}  // namespace
}  // namespace cohort::testing
