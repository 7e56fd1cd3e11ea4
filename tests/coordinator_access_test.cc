// Access control through the Coordinator with a PolicyAuthorizer and constructed Callers (what
// the TLS transport fills in): roles per action with their codes, the audit log and the denial
// metric, identity and session binding, the store's membership and key-ownership rules, and
// inspection without secrets.
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "coordinator/audit.h"
#include "coordinator/policy.h"
#include "gmock/gmock.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "tests/coordinator_fixture.h"

namespace cohort::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string HexSha256(absl::string_view token) {
  const std::array<uint8_t, 32> hash = Sha256(token);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(hash.data()), hash.size()));
}

Caller Cert(const std::string& uri) {
  Caller c;
  c.identity = uri;
  c.authenticated = true;
  c.peer = "ipv4:10.0.0.2:5000";
  c.certificate_uris = {uri};
  return c;
}

Caller Token(const std::string& token) {
  Caller c;
  c.identity = "ipv4:10.0.0.3:5000";
  c.peer = c.identity;
  c.bearer_token = token;
  return c;
}

Caller Anonymous() {
  Caller c;
  c.identity = "ipv4:10.0.0.9:1234";
  c.peer = c.identity;
  return c;
}

Caller AgentCaller(int i) { return Cert(absl::StrCat("spiffe://cohort/agent/agent-", i)); }

const char kViewerToken[] = "viewer-token-0123456789";

// Watch events, recorded.
class RecordingWatch : public WatchSink {
 public:
  void Close(const absl::Status&) override {}
  bool Send(const v1::WatchEvent& event) override {
    events.push_back(event);
    return true;
  }
  std::vector<v1::WatchEvent> events;
};

class AccessTest : public CoordinatorTest {
 protected:
  AccessTest() {
    const std::string yaml = absl::StrCat(R"(principals:
  - name: alice
    role: operator
    certificate: {uri: "spiffe://cohort/operator"}
  - name: dashboards
    role: viewer
    token_sha256: ")",
                                          HexSha256(kViewerToken), R"("
  - name: agents
    role: agent
    certificate: {uri: "spiffe://cohort/agent/*"}
  - name: bob
    role: viewer
    certificate: {uri: "spiffe://cohort/bob"}
    pools: ["default"]
)");
    absl::StatusOr<Policy> policy = Policy::Parse(yaml, "policy.yaml");
    EXPECT_TRUE(policy.ok()) << policy.status();
    CoordinatorOptions options;
    options.authorizer = std::make_shared<PolicyAuthorizer>(*std::move(policy));
    Reset(std::move(options));
    // Audit lines go to a stream this test reads.
    spdlog::drop(kAuditLoggerName);
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(audit_);
    auto logger = std::make_shared<spdlog::logger>(kAuditLoggerName, sink);
    logger->set_pattern("%v");
    spdlog::register_logger(logger);
  }
  ~AccessTest() override { spdlog::drop(kAuditLoggerName); }

  std::vector<std::string> AuditLines() const {
    std::vector<std::string> lines;
    std::istringstream in(audit_.str());
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  // Joins agent-<i> with its own certificate and attaches; rank hint i.
  Joined JoinAs(int i, const std::string& pool = "") {
    v1::JoinRequest request;
    request.set_pool(pool);
    request.set_identity(absl::StrCat("agent-", i));
    request.set_incarnation(absl::StrCat("incarnation-secret-", i));
    request.add_backends("gloo");
    request.set_rank_hint(i);
    request.mutable_device()->set_hostname(absl::StrCat("host-", i));
    request.mutable_device()->set_gpu_uuid(absl::StrCat("GPU-", i));
    absl::StatusOr<v1::JoinResponse> joined = coordinator_->Join(request, AgentCaller(i));
    EXPECT_TRUE(joined.ok()) << joined.status();
    if (!joined.ok()) return {"", -2, nullptr};
    sinks_.push_back(std::make_unique<FakeSink>());
    absl::Status attached =
        coordinator_->Attach(joined->session_id(), sinks_.back().get(), AgentCaller(i));
    EXPECT_TRUE(attached.ok()) << attached;
    return {joined->session_id(), joined->rank(), sinks_.back().get()};
  }

  // Four agents joined, world 4 tp 2 initialized by the operator: generation 1 INITIALIZING.
  // tp groups: {0, 1}, {2, 3}.
  std::vector<Joined> Building() {
    std::vector<Joined> agents;
    for (int i = 0; i < 4; ++i) agents.push_back(JoinAs(i));
    v1::InitializeRequest init;
    ParallelConfig config;
    config.world_size = 4;
    config.tensor_parallel_size = 2;
    config.data_parallel_size = 2;
    *init.mutable_config() = ToProto(config);
    init.mutable_options()->set_backend("gloo");
    absl::StatusOr<v1::InitializeResponse> done =
        coordinator_->Initialize(init, Cert("spiffe://cohort/operator"));
    EXPECT_TRUE(done.ok()) << done.status();
    EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
    return agents;
  }

  absl::Status Set(const Joined& j, int i, const std::string& key, const std::string& value) {
    v1::KvSetRequest request;
    request.set_generation(1);
    request.set_session_id(j.session_id);
    v1::KvEntry* e = request.add_entries();
    e->set_key(key);
    e->set_value(value);
    return coordinator_->KvSet(request, AgentCaller(i));
  }

  absl::StatusOr<v1::KvGetResponse> Get(const std::string& session_id, const Caller& caller,
                                        const std::string& key) {
    v1::KvGetRequest request;
    request.set_generation(1);
    request.set_session_id(session_id);
    request.add_keys(key);
    std::optional<absl::StatusOr<v1::KvGetResponse>> got;
    coordinator_->KvGet(
        request, [&](absl::StatusOr<v1::KvGetResponse> r) { got = std::move(r); }, caller);
    EXPECT_TRUE(got.has_value()) << "KvGet with timeout 0 answers at once";
    return got.value_or(absl::InternalError("no answer"));
  }

  std::ostringstream audit_;
};

TEST_F(AccessTest, ViewerDestroy_PermissionDenied_AuditedAndCounted) {
  v1::DestroyRequest destroy;
  absl::StatusOr<v1::DestroyResponse> refused = coordinator_->Destroy(destroy, Token(kViewerToken));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(refused.status().message(),
            "Destroy needs role operator; caller 'dashboards' has role viewer");
  EXPECT_THAT(AuditLines(), ::testing::Contains("who=dashboards role=viewer action=Destroy "
                                                "pool=default result=PERMISSION_DENIED"));
  const auto denials = coordinator_->AccessDenials();
  auto it = denials.find(Coordinator::DenialKey{"destroy", "operator", "PERMISSION_DENIED"});
  ASSERT_NE(it, denials.end());
  EXPECT_EQ(it->second, 1);
  EXPECT_EQ(coordinator_->RefusalCounts().at("authorization"), 1);
  // No token in the audit log.
  EXPECT_THAT(audit_.str(), Not(HasSubstr(kViewerToken)));
}

TEST_F(AccessTest, OperatorCommands_AuditedWithTheirOutcome) {
  v1::InitializeRequest init;
  ParallelConfig config;
  config.world_size = 2;
  config.data_parallel_size = 2;
  *init.mutable_config() = ToProto(config);
  init.set_pool("p");
  ASSERT_TRUE(coordinator_->Initialize(init, Cert("spiffe://cohort/operator")).ok());
  v1::CheckRequest check;
  check.set_pool("p");
  EXPECT_EQ(coordinator_->Check(check, Cert("spiffe://cohort/operator")).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(coordinator_->DeletePool("p", false, Cert("spiffe://cohort/operator")).ok());
  EXPECT_EQ(AuditLines(), (std::vector<std::string>{
                              "who=alice role=operator action=Initialize pool=p result=OK",
                              "who=alice role=operator action=Check pool=p "
                              "result=FAILED_PRECONDITION",
                              "who=alice role=operator action=DeletePool pool=p result=OK"}));
}

TEST_F(AccessTest, Anonymous_Unauthenticated_PeerInAudit) {
  absl::StatusOr<v1::InitializeResponse> refused =
      coordinator_->Initialize(v1::InitializeRequest(), Anonymous());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(refused.status().message(), HasSubstr("Initialize needs role operator"));
  EXPECT_THAT(AuditLines(), ::testing::Contains("who=ipv4:10.0.0.9:1234 role=none "
                                                "action=Initialize pool=default "
                                                "result=UNAUTHENTICATED"));
  EXPECT_EQ(
      coordinator_->GetState("default", std::nullopt, std::nullopt, Anonymous()).status().code(),
      absl::StatusCode::kUnauthenticated);
  v1::JoinRequest join;
  join.set_identity("agent-0");
  join.set_incarnation("i");
  EXPECT_EQ(coordinator_->Join(join, Anonymous()).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(coordinator_->ListPools(Anonymous()).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(AccessTest, RolesPerEntryPoint) {
  JoinAs(0);
  // A viewer reads, an agent does not (it needs no reads).
  EXPECT_TRUE(
      coordinator_->GetState("default", std::nullopt, std::nullopt, Token(kViewerToken)).ok());
  EXPECT_TRUE(coordinator_->GetEvents("default", 0, 0, Token(kViewerToken)).ok());
  absl::Status agent_read =
      coordinator_->GetState("default", std::nullopt, std::nullopt, AgentCaller(0)).status();
  EXPECT_EQ(agent_read.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(agent_read.message(), HasSubstr("Read needs role viewer"));
  // An operator does not join.
  v1::JoinRequest join;
  join.set_identity("alice");
  join.set_incarnation("i");
  absl::Status op_join = coordinator_->Join(join, Cert("spiffe://cohort/operator")).status();
  EXPECT_EQ(op_join.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(op_join.message(), HasSubstr("Join needs role agent"));
  // A viewer neither checks nor deletes pools.
  v1::CheckRequest check;
  EXPECT_EQ(coordinator_->Check(check, Token(kViewerToken)).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(coordinator_->DeletePool("default", true, Token(kViewerToken)).code(),
            absl::StatusCode::kPermissionDenied);
  // Bob reads only "default".
  v1::InitializeRequest init;
  init.set_pool("other");
  ParallelConfig config;
  config.world_size = 1;
  *init.mutable_config() = ToProto(config);
  ASSERT_TRUE(coordinator_->Initialize(init, Cert("spiffe://cohort/operator")).ok());
  EXPECT_EQ(coordinator_->GetState("other", std::nullopt, std::nullopt, Cert("spiffe://cohort/bob"))
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
  std::vector<v1::PoolSummary> listed = *coordinator_->ListPools(Cert("spiffe://cohort/bob"));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].pool(), "default");
}

TEST_F(AccessTest, WatchOfAllPools_RestrictedViewerSeesOnlyItsPools) {
  JoinAs(0);
  v1::InitializeRequest init;
  init.set_pool("other");
  ParallelConfig config;
  config.world_size = 1;
  *init.mutable_config() = ToProto(config);
  ASSERT_TRUE(coordinator_->Initialize(init, Cert("spiffe://cohort/operator")).ok());
  RecordingWatch watch;
  absl::StatusOr<uint64_t> id =
      coordinator_->AddWatcher("", /*snapshot=*/true, &watch, Cert("spiffe://cohort/bob"));
  ASSERT_TRUE(id.ok()) << id.status();
  JoinAs(1);           // an event of "default"
  JoinAs(2, "other");  // an event of "other"
  ASSERT_FALSE(watch.events.empty());
  for (const v1::WatchEvent& e : watch.events) {
    const std::string pool = e.has_snapshot() ? e.snapshot().pool() : e.event().pool();
    EXPECT_EQ(pool, "default");
  }
  coordinator_->RemoveWatcher(*id);
}

TEST_F(AccessTest, AgentJoiningAsAnotherIdentity_PermissionDenied) {
  v1::JoinRequest request;
  request.set_identity("agent-1");
  request.set_incarnation("i");
  absl::StatusOr<v1::JoinResponse> refused = coordinator_->Join(request, AgentCaller(0));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("may not join as identity 'agent-1'; it may join only as 'agent-0'"));
  EXPECT_EQ(coordinator_->GetState("default").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(AccessTest, AttachWithAnotherPrincipal_Refused_EvenWithTheSessionId) {
  v1::JoinRequest request;
  request.set_identity("agent-0");
  request.set_incarnation("i");
  absl::StatusOr<v1::JoinResponse> joined = coordinator_->Join(request, AgentCaller(0));
  ASSERT_TRUE(joined.ok()) << joined.status();
  // Another agent's credential (same role) with the stolen session id.
  FakeSink sink;
  absl::Status stolen = coordinator_->Attach(joined->session_id(), &sink, AgentCaller(1));
  EXPECT_EQ(stolen.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(stolen.message(), HasSubstr("opened by another principal"));
  // (Both match the principal "agents"; the session is bound to "agents/agent-0".) A principal
  // of another name is refused too.
  Caller other_principal = Cert("spiffe://cohort/operator");
  EXPECT_EQ(coordinator_->Attach(joined->session_id(), &sink, other_principal).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(coordinator_->Attach(joined->session_id(), &sink, AgentCaller(0)).ok());
}

TEST_F(AccessTest, SessionIds_128RandomBits_Distinct) {
  std::set<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    const Joined j = JoinAs(i);
    EXPECT_EQ(j.session_id.size(), 32u);
    EXPECT_EQ(j.session_id.find_first_not_of("0123456789abcdef"), std::string::npos);
    ids.insert(j.session_id);
  }
  EXPECT_EQ(ids.size(), 4u);
}

TEST_F(AccessTest, Store_WithPolicy_SessionRequired) {
  Building();
  v1::KvSetRequest request;
  request.set_generation(1);
  v1::KvEntry* e = request.add_entries();
  e->set_key("world/0/0");
  e->set_value("addr");
  absl::Status s = coordinator_->KvSet(request, AgentCaller(0));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(s.message(), HasSubstr("set session_id"));
  // A viewer has no store access at all.
  EXPECT_EQ(coordinator_->KvSet(request, Token(kViewerToken)).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(AccessTest, Store_MemberWritesOnlyItsKeys_ReadsOnlyItsGroups) {
  std::vector<Joined> agents = Building();
  ASSERT_EQ(agents.size(), 4u);
  EXPECT_TRUE(Set(agents[2], 2, "tp/1/0", "addr-2").ok());
  EXPECT_TRUE(Set(agents[2], 2, "tp/1/nccl_id", "id-tp1").ok());
  EXPECT_TRUE(Set(agents[0], 0, "world/nccl_id", "id-world").ok());
  // Another rank's key.
  absl::Status other = Set(agents[3], 3, "tp/1/0", "forged");
  EXPECT_EQ(other.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(other.message(),
            "key 'tp/1/0' belongs to global rank 2 (rank 0 of tp group 1); you are rank 3");
  // A key outside the scheme.
  absl::Status outside = Set(agents[0], 0, "anything", "x");
  EXPECT_EQ(outside.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(outside.message(), HasSubstr("<kind>/<group index>/<group rank>"));
  // Group members read; rank 0 is not in tp group 1.
  absl::StatusOr<v1::KvGetResponse> peer = Get(agents[3].session_id, AgentCaller(3), "tp/1/0");
  ASSERT_TRUE(peer.ok()) << peer.status();
  EXPECT_EQ(peer->entries(0).value(), "addr-2");
  absl::StatusOr<v1::KvGetResponse> outsider =
      Get(agents[0].session_id, AgentCaller(0), "tp/1/nccl_id");
  EXPECT_EQ(outsider.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(outsider.status().message(), HasSubstr("not a member"));
  // A session used with another agent's credential.
  absl::StatusOr<v1::KvGetResponse> stolen = Get(agents[3].session_id, AgentCaller(1), "tp/1/0");
  EXPECT_EQ(stolen.status().code(), absl::StatusCode::kPermissionDenied);
  // The audit line names the agent behind the wildcard principal.
  EXPECT_THAT(AuditLines(), ::testing::Contains("who=agents/agent-3 role=agent action=Store "
                                                "pool=default result=PERMISSION_DENIED"));
  // Refusals are counted as store denials.
  const auto denials = coordinator_->AccessDenials();
  EXPECT_EQ(denials.at(Coordinator::DenialKey{"store", "agent", "PERMISSION_DENIED"}), 3);
}

TEST_F(AccessTest, Store_StandbyIsNoMember) {
  Building();
  const Joined standby = JoinAs(4);
  ASSERT_EQ(standby.rank, -1);
  absl::StatusOr<v1::KvGetResponse> got = Get(standby.session_id, AgentCaller(4), "world/0/0");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(got.status().message(), HasSubstr("holds no rank"));
}

// Without a policy a store call that names its session is checked all the same (the agent
// always sends it); one without a session is served as before.
TEST_F(CoordinatorTest, Store_NoPolicy_SessionNamed_OwnershipChecked) {
  std::vector<Joined> agents = JoinWorld(2);
  ASSERT_TRUE(Init(ParallelConfig{.world_size = 2, .data_parallel_size = 2}).ok());
  v1::KvSetRequest request;
  request.set_generation(1);
  request.set_session_id(agents[1].session_id);
  v1::KvEntry* e = request.add_entries();
  e->set_key("world/0/0");
  e->set_value("forged");
  EXPECT_EQ(coordinator_->KvSet(request).code(), absl::StatusCode::kPermissionDenied);
  request.clear_session_id();
  EXPECT_TRUE(coordinator_->KvSet(request).ok());
}

// Every string in `message` (serialized), for a scan for secrets.
std::string Serialized(const google::protobuf::Message& message) {
  std::string out;
  message.SerializeToString(&out);
  return out;
}

TEST_F(AccessTest, Inspection_KeyNamesButNoSecrets) {
  std::vector<Joined> agents = Building();
  ASSERT_EQ(agents.size(), 4u);
  ASSERT_TRUE(Set(agents[2], 2, "tp/1/0", "secret-address-value").ok());
  ASSERT_TRUE(Set(agents[0], 0, "world/nccl_id", "secret-unique-id-value").ok());
  RecordingWatch watch;
  absl::StatusOr<uint64_t> id =
      coordinator_->AddWatcher("", /*snapshot=*/true, &watch, Token(kViewerToken));
  ASSERT_TRUE(id.ok()) << id.status();
  // Viewers see the key names, hosts and devices.
  absl::StatusOr<v1::PoolState> state =
      coordinator_->GetState("default", std::nullopt, std::nullopt, Token(kViewerToken));
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_THAT(state->store_keys(), ::testing::ElementsAre("tp/1/0", "world/nccl_id"));
  EXPECT_EQ(state->store_key_count(), 2);
  EXPECT_EQ(state->members(1).device().hostname(), "host-1");
  EXPECT_EQ(state->members(1).device().gpu_uuid(), "GPU-1");
  // A rejoin (naming its previous session) and a refused join make events too.
  v1::JoinRequest rejoin;
  rejoin.set_identity("agent-1");
  rejoin.set_incarnation("incarnation-secret-1");
  rejoin.set_previous_session_id(agents[1].session_id);
  rejoin.set_rank_hint(1);
  absl::StatusOr<v1::JoinResponse> rejoined = coordinator_->Join(rejoin, AgentCaller(1));
  ASSERT_TRUE(rejoined.ok()) << rejoined.status();
  v1::JoinRequest intruder = rejoin;
  intruder.set_identity("agent-3");
  intruder.set_incarnation("incarnation-secret-x");
  intruder.clear_previous_session_id();
  EXPECT_EQ(coordinator_->Join(intruder, AgentCaller(3)).status().code(),
            absl::StatusCode::kAlreadyExists);

  absl::StatusOr<v1::PoolState> after =
      coordinator_->GetState("default", std::nullopt, std::nullopt, Token(kViewerToken));
  ASSERT_TRUE(after.ok()) << after.status();
  absl::StatusOr<std::vector<v1::Event>> events =
      coordinator_->GetEvents("default", 0, 0, Token(kViewerToken));
  ASSERT_TRUE(events.ok());

  std::vector<std::string> secrets = {"secret-address-value", "secret-unique-id-value",
                                      "incarnation-secret", rejoined->session_id()};
  for (const Joined& j : agents) secrets.push_back(j.session_id);
  std::vector<std::string> seen = {Serialized(*state), Serialized(*after)};
  for (const v1::Event& e : *events) seen.push_back(Serialized(e));
  for (const v1::WatchEvent& w : watch.events) seen.push_back(Serialized(w));
  for (const v1::PoolState& s : coordinator_->AllStates()) seen.push_back(Serialized(s));
  ASSERT_GT(watch.events.size(), 1u);
  for (const std::string& bytes : seen) {
    for (const std::string& secret : secrets) {
      EXPECT_EQ(bytes.find(secret), std::string::npos) << "found secret '" << secret << "'";
    }
  }
  coordinator_->RemoveWatcher(*id);
}

}  // namespace
}  // namespace cohort::coordinator
