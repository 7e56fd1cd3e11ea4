// cohortctl against a live coordinator (in this process, on 127.0.0.1:0): exit statuses, error
// lines, progress, the state document, and duration flags. Members are either absent or fake
// sessions attached straight to the Coordinator, so a test decides when each one reports.
#include <memory>
#include <sstream>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "cli/cohortctl.h"
#include "cohort/v1/admin.grpc.pb.h"
#include "coordinator/server.h"
#include "tests/test_util.h"

namespace cohort {
namespace {

using ::cohort::testing::Field;
using ::google::protobuf::Value;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

struct Result {
  int status;
  std::string out, err;
};

// A member's session as the coordinator sees it; counts the teardown commands it was sent.
class FakeSession : public coordinator::SessionSink {
 public:
  void Send(const v1::CoordinatorMessage& message) override {
    absl::MutexLock lock(&mu_);
    if (message.has_teardown()) ++teardowns_;
  }
  void Close(const absl::Status&) override {}
  // False if no teardown command came within `timeout`.
  bool AwaitTeardown(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto sent = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return teardowns_ > 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&sent), timeout);
  }

 private:
  absl::Mutex mu_;
  int teardowns_ ABSL_GUARDED_BY(mu_) = 0;
};

struct FakeMember {
  std::string session_id;
  FakeSession* session = nullptr;
};

bool Has(const Value& object, const std::string& key) {
  return object.struct_value().fields().count(key) > 0;
}

class CohortctlOnlineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = coordinator::CoordinatorServer::Start({});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  Result Ctl(std::vector<std::string> args, bool with_address = true) {
    args.insert(args.begin(), "cohortctl");
    if (with_address) {
      args.push_back("--coordinator");
      args.push_back(server_->address());
    }
    args.push_back("--insecure");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    std::ostringstream out, err;
    int status = cli::RunCohortctl(static_cast<int>(argv.size()), argv.data(), out, err);
    return {status, out.str(), err.str()};
  }

  coordinator::Coordinator& coordinator() { return server_->coordinator(); }

  // Joins `identity` with a rank hint and attaches a fake session.
  FakeMember JoinFake(const std::string& identity, int rank) {
    v1::JoinRequest request;
    request.set_identity(identity);
    request.set_incarnation("inc-1");
    request.set_rank_hint(rank);
    request.add_backends("gloo");
    absl::StatusOr<v1::JoinResponse> joined = coordinator().Join(request);
    EXPECT_TRUE(joined.ok()) << joined.status();
    if (!joined.ok()) return {};
    EXPECT_EQ(joined->rank(), rank);
    sessions_.push_back(std::make_unique<FakeSession>());
    EXPECT_TRUE(coordinator().Attach(joined->session_id(), sessions_.back().get()).ok());
    return {joined->session_id(), sessions_.back().get()};
  }

  // A successful generation report holding one tp group (index 0).
  absl::Status ReportReady(const FakeMember& m, int64_t generation, int rank_in_group) {
    v1::AgentMessage message;
    v1::GenerationReport* report = message.mutable_report();
    report->set_generation(generation);
    report->set_ok(true);
    v1::GroupReport* group = report->add_groups();
    group->set_kind(v1::GROUP_KIND_TP);
    group->set_index(0);
    group->set_rank_in_group(rank_in_group);
    group->set_size(2);
    group->set_state(v1::COMM_STATE_READY);
    return coordinator().HandleAgentMessage(m.session_id, message);
  }

  absl::Status TeardownDone(const FakeMember& m, int64_t generation) {
    v1::AgentMessage message;
    message.mutable_teardown()->set_generation(generation);
    message.mutable_teardown()->set_scope(v1::DESTROY_SCOPE_MODEL_PARALLEL);
    message.mutable_teardown()->set_ok(true);
    return coordinator().HandleAgentMessage(m.session_id, message);
  }

  // Declared before server_: the coordinator may still hold them while it shuts down.
  std::vector<std::unique_ptr<FakeSession>> sessions_;
  std::unique_ptr<coordinator::CoordinatorServer> server_;
};

TEST_F(CohortctlOnlineTest, Init_InvalidConfig_Exit2BeforeAnyRpc) {
  Result r = Ctl({"init", "-n", "6", "--ulysses", "2"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, StartsWith("error: world_size (6) is larger"));
}

TEST_F(CohortctlOnlineTest, Unreachable_Exit4_SaysWhere) {
  Result r = Ctl({"state", "--coordinator", "127.0.0.1:1"}, /*with_address=*/false);
  EXPECT_EQ(r.status, 4);
  EXPECT_THAT(r.err, HasSubstr("cannot reach the coordinator at 127.0.0.1:1"));
}

TEST_F(CohortctlOnlineTest, Init_WithoutMembers_AcceptedThenWaitTimesOutNamingMissingRanks) {
  Result r = Ctl({"init", "-n", "2", "--dp", "2"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("generation 1 of dp2 (world 2) on gloo: waiting for members"));
  // A second init replaces the waiting config; --wait gives up after its timeout.
  Result waited = Ctl({"init", "-n", "2", "--tp", "2", "--wait", "--timeout", "0.3"});
  EXPECT_EQ(waited.status, 3);
  EXPECT_THAT(waited.out, HasSubstr("waiting for ranks [0,1]"));
  EXPECT_THAT(waited.err, HasSubstr("not READY after 300ms"));
}

TEST_F(CohortctlOnlineTest, StateJson_DescribesTheWaitingPool) {
  ASSERT_EQ(Ctl({"init", "-n", "4", "--tp", "2", "--pp", "2"}).status, 0);
  Result r = Ctl({"state", "-o", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto doc = testing::ParseJsonOrDie(r.out);
  EXPECT_EQ(Field(doc, "pool").string_value(), "default");
  EXPECT_EQ(Field(doc, "phase").string_value(), "POOL_PHASE_WAITING");
  EXPECT_EQ(Field(doc, "world_size").number_value(), 4);
  EXPECT_EQ(Field(doc, "missing_ranks").list_value().values_size(), 4);
  EXPECT_EQ(Field(Field(doc, "config"), "tensor_parallel_size").string_value(), "2");
  EXPECT_EQ(Field(Field(doc, "options"), "backend").string_value(), "gloo");
}

TEST_F(CohortctlOnlineTest, StateTable_NamesMissingRanks) {
  ASSERT_EQ(Ctl({"init", "-n", "4", "--dp", "4"}).status, 0);
  Result r = Ctl({"state"});
  ASSERT_EQ(r.status, 0);
  EXPECT_THAT(r.out, HasSubstr("WAITING"));
  EXPECT_THAT(r.out, HasSubstr("members 0/4 ready, missing ranks [0-3]"));
}

TEST_F(CohortctlOnlineTest, Destroy_NothingToDestroy_Exit1WithReason) {
  ASSERT_EQ(Ctl({"init", "-n", "1"}).status, 0);
  Result r = Ctl({"destroy"});
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("has no communicators to destroy"));
  Result unknown = Ctl({"destroy", "--pool", "ghost"});
  EXPECT_EQ(unknown.status, 1);
  EXPECT_THAT(unknown.err, HasSubstr("unknown pool 'ghost'"));
}

TEST_F(CohortctlOnlineTest, AdminRpc_InvalidConfig_InvalidArgumentOverTheWire) {
  auto stub = v1::AdminService::NewStub(server_->InProcessChannel());
  grpc::ClientContext context;
  v1::InitializeRequest request;
  request.mutable_config()->set_world_size(4);
  request.mutable_config()->set_ulysses_degree(4);
  request.mutable_config()->set_fully_shard_degree(3);
  v1::InitializeResponse response;
  grpc::Status status = stub->Initialize(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("fully_shard_degree (3) does not divide"));
}

TEST_F(CohortctlOnlineTest, SeveralPools_AreIndependent) {
  ASSERT_EQ(Ctl({"init", "-n", "2", "--dp", "2", "--pool", "a"}).status, 0);
  ASSERT_EQ(Ctl({"init", "-n", "4", "--tp", "4", "--pool", "b"}).status, 0);
  auto a = testing::ParseJsonOrDie(Ctl({"state", "--pool", "a", "-o", "json"}).out);
  auto b = testing::ParseJsonOrDie(Ctl({"state", "--pool", "b", "-o", "json"}).out);
  EXPECT_EQ(Field(a, "world_size").number_value(), 2);
  EXPECT_EQ(Field(b, "world_size").number_value(), 4);
}

TEST_F(CohortctlOnlineTest, CoordinatorFromEnvironment) {
  setenv("COHORT_COORDINATOR", server_->address().c_str(), 1);
  Result r = Ctl({"state", "--pool", "nothing-here"}, /*with_address=*/false);
  unsetenv("COHORT_COORDINATOR");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("unknown pool 'nothing-here'"));
}

TEST_F(CohortctlOnlineTest, DeletePool_RefusedWhileMembersAreAttached_ForceDeletes) {
  Result unknown = Ctl({"delete", "pool", "ghost"});
  EXPECT_EQ(unknown.status, 1) << unknown.err;
  EXPECT_THAT(unknown.err, HasSubstr("unknown pool 'ghost'"));
  FakeMember a = JoinFake("agent-0", 0);
  Result refused = Ctl({"delete", "pool", "default"});
  EXPECT_EQ(refused.status, 1);
  EXPECT_THAT(refused.err, HasSubstr("1 attached members"));
  EXPECT_THAT(refused.err, HasSubstr("--force"));
  EXPECT_TRUE(coordinator().GetState("default").ok());
  Result deleted = Ctl({"delete", "pool", "default", "--force"});
  EXPECT_EQ(deleted.status, 0) << deleted.err;
  EXPECT_EQ(deleted.out, "pool default deleted\n");
  EXPECT_EQ(coordinator().GetState("default").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Ctl({"delete", "pool"}).status, 2);  // the name is required
}

TEST_F(CohortctlOnlineTest, DestroyWait_MemberLostDuringTeardown_Exit1NamingIt) {
  ASSERT_EQ(Ctl({"init", "-n", "2", "--tp", "2"}).status, 0);
  FakeMember a = JoinFake("agent-0", 0);
  FakeMember b = JoinFake("agent-1", 1);
  ASSERT_TRUE(ReportReady(a, 1, 0).ok());
  ASSERT_TRUE(ReportReady(b, 1, 1).ok());
  ASSERT_EQ(coordinator().GetState("default")->phase(), v1::POOL_PHASE_READY);
  Result destroyed;
  std::thread ctl([&] { destroyed = Ctl({"destroy", "--wait", "--timeout", "30"}); });
  // rank 0 tears down; rank 1 dies before it reports.
  const bool sent = b.session->AwaitTeardown(absl::Seconds(30));
  if (sent) {
    EXPECT_TRUE(TeardownDone(a, 1).ok());
    coordinator().Detach(b.session_id, b.session, "killed during the teardown");
  }
  ctl.join();
  ASSERT_TRUE(sent) << "no teardown command reached rank 1";
  EXPECT_EQ(destroyed.status, 1) << destroyed.out << destroyed.err;
  EXPECT_THAT(destroyed.out, HasSubstr("DESTROYED"));
  EXPECT_THAT(destroyed.err,
              HasSubstr("failed: rank 1 (agent-1) was lost during the teardown: killed during "
                        "the teardown"));
}

TEST_F(CohortctlOnlineTest, DestroyWait_CleanTeardown_Exit0) {
  ASSERT_EQ(Ctl({"init", "-n", "2", "--tp", "2"}).status, 0);
  FakeMember a = JoinFake("agent-0", 0);
  FakeMember b = JoinFake("agent-1", 1);
  ASSERT_TRUE(ReportReady(a, 1, 0).ok());
  ASSERT_TRUE(ReportReady(b, 1, 1).ok());
  Result destroyed;
  std::thread ctl([&] { destroyed = Ctl({"destroy", "--wait", "--timeout", "30"}); });
  const bool sent =
      a.session->AwaitTeardown(absl::Seconds(30)) && b.session->AwaitTeardown(absl::Seconds(30));
  if (sent) {
    EXPECT_TRUE(TeardownDone(a, 1).ok());
    EXPECT_TRUE(TeardownDone(b, 1).ok());
  }
  ctl.join();
  ASSERT_TRUE(sent);
  EXPECT_EQ(destroyed.status, 0) << destroyed.err;
  EXPECT_THAT(destroyed.out, HasSubstr("pool default: DESTROYED\n"));
  EXPECT_EQ(destroyed.err, "");
}

TEST_F(CohortctlOnlineTest, StateJson_PrintsZeroValues) {
  ASSERT_EQ(Ctl({"init", "-n", "2", "--tp", "2"}).status, 0);
  FakeMember a = JoinFake("agent-0", 0);
  JoinFake("agent-1", 1);
  ASSERT_TRUE(ReportReady(a, 1, 0).ok());
  Result r = Ctl({"state", "-o", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto doc = testing::ParseJsonOrDie(r.out);
  const Value* rank0 = nullptr;
  for (const Value& m : Field(doc, "members").list_value().values()) {
    if (Field(m, "identity").string_value() == "agent-0") rank0 = &m;
  }
  ASSERT_NE(rank0, nullptr) << r.out;
  ASSERT_TRUE(Has(*rank0, "rank")) << r.out;
  EXPECT_EQ(Field(*rank0, "rank").number_value(), 0);
  ASSERT_EQ(Field(*rank0, "groups").list_value().values_size(), 1) << r.out;
  const Value& group = Field(*rank0, "groups").list_value().values(0);
  ASSERT_TRUE(Has(group, "index")) << r.out;
  EXPECT_EQ(Field(group, "index").number_value(), 0);
  EXPECT_TRUE(Has(group, "rank_in_group")) << r.out;
  EXPECT_TRUE(Has(doc, "init_ms")) << r.out;
  EXPECT_TRUE(Has(doc, "error")) << r.out;
}

TEST_F(CohortctlOnlineTest, State_ShowsStoreKeyNamesNeverValues) {
  ASSERT_EQ(Ctl({"init", "-n", "2", "--dp", "2"}).status, 0);
  FakeMember m0 = JoinFake("agent-0", 0);
  JoinFake("agent-1", 1);
  v1::KvSetRequest set;
  set.set_generation(1);
  set.set_session_id(m0.session_id);
  v1::KvEntry* e = set.add_entries();
  e->set_key("world/0/0");
  e->set_value("value-never-shown");
  ASSERT_TRUE(coordinator().KvSet(set).ok());
  Result table = Ctl({"state"});
  ASSERT_EQ(table.status, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("store 1 key\n"));
  Result wide = Ctl({"state", "-o", "wide", "--no-color"});
  ASSERT_EQ(wide.status, 0) << wide.err;
  EXPECT_THAT(wide.out, HasSubstr("store 1 key: world/0/0\n"));
  Result yaml = Ctl({"state", "-o", "yaml"});
  ASSERT_EQ(yaml.status, 0) << yaml.err;
  EXPECT_THAT(yaml.out, HasSubstr("world/0/0"));
  for (const Result* r : {&table, &wide, &yaml}) {
    EXPECT_THAT(r->out, Not(HasSubstr("value-never-shown")));
  }
}

TEST_F(CohortctlOnlineTest, State_TakesTheSharedOutputOptions) {
  ASSERT_EQ(Ctl({"init", "-n", "2", "--dp", "2"}).status, 0);
  JoinFake("agent-0", 0);
  Result yaml = Ctl({"state", "-o", "yaml"});
  ASSERT_EQ(yaml.status, 0) << yaml.err;
  EXPECT_THAT(yaml.out, HasSubstr("pool: default\n"));
  EXPECT_THAT(yaml.out, HasSubstr("world_size: 2\n"));
  EXPECT_THAT(yaml.out, HasSubstr("    identity: agent-0\n"));
  EXPECT_THAT(yaml.out, HasSubstr("    rank: 0\n"));
  Result wide = Ctl({"state", "-o", "wide", "--no-color"});
  ASSERT_EQ(wide.status, 0) << wide.err;
  // The incarnation is a secret: never shown.
  EXPECT_THAT(wide.out, Not(HasSubstr("INCARNATION")));
  EXPECT_THAT(wide.out, Not(HasSubstr("inc-1")));
  EXPECT_THAT(wide.out, HasSubstr("GENERATION"));
  EXPECT_THAT(wide.out, Not(HasSubstr("\x1b[")));
  Result table = Ctl({"state"});
  ASSERT_EQ(table.status, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("members 0/2 ready, missing ranks [1]"));
  EXPECT_THAT(table.out, Not(HasSubstr("INCARNATION")));
  EXPECT_EQ(Ctl({"state", "-o", "xml"}).status, 2);
}

TEST_F(CohortctlOnlineTest, Timeouts_EveryCommandReadsTheSameDurations) {
  // Accepted forms, on commands that answer without waiting out the timeout.
  for (const char* d : {"60s", "500ms", "2m", "1.5", "0"}) {
    SCOPED_TRACE(d);
    Result init = Ctl({"init", "-n", "2", "--dp", "2", "--timeout", d});
    EXPECT_EQ(init.status, 0) << init.err;
    Result wait = Ctl({"wait", "--state", "waiting", "--timeout", d});
    EXPECT_EQ(wait.status, 0) << wait.err;
    for (std::vector<std::string> args : {std::vector<std::string>{"check", "--timeout", d},
                                          std::vector<std::string>{"destroy", "--timeout", d}}) {
      Result r = Ctl(args);  // refused: the pool has no communicators
      EXPECT_EQ(r.status, 1) << args[0] << ": " << r.err;
      EXPECT_THAT(r.err, Not(HasSubstr("--timeout"))) << args[0];
    }
  }
  // A bare number is seconds.
  Result waited = Ctl({"init", "-n", "2", "--dp", "2", "--wait", "--timeout", "0.2"});
  EXPECT_EQ(waited.status, 3);
  EXPECT_THAT(waited.err, HasSubstr("not READY after 200ms"));
  // Refused before any RPC, with exit status 2, naming the flag and the accepted forms.
  for (const char* d : {"nan", "inf", "-inf", "1e999", "-1", "-5s", "soon"}) {
    for (const std::string command : {"init", "check", "destroy", "wait"}) {
      SCOPED_TRACE(command + " --timeout=" + d);
      std::vector<std::string> args = {command, std::string("--timeout=") + d};
      // Without --wait: a value that slipped through would not be waited out.
      if (command == "init") args.insert(args.end(), {"-n", "2", "--dp", "2"});
      if (command == "wait") args.insert(args.end(), {"--state", "ready"});
      Result r = Ctl(args);
      EXPECT_EQ(r.status, 2);
      EXPECT_EQ(r.out, "");
      EXPECT_THAT(r.err, StartsWith("error: --timeout"));
      EXPECT_THAT(r.err, HasSubstr(std::string("bad duration '") + d + "'"));
    }
  }
}

}  // namespace
}  // namespace cohort
