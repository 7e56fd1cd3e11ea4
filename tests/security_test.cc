// Issue 11 end to end: a coordinator process with mutual TLS, a policy and an audit log; four
// cohort-agent processes (Gloo) with their own client certificates forming a READY pool; and
// the people and programs who should not get in: a viewer calling Destroy, an anonymous client,
// clients with a certificate of another CA or an expired one, an agent joining as another
// identity, a member writing another rank's key, tokens of each role. After each, the READY pool
// is unaffected and passes a Check. Certificates are minted by deploy/mint-certs.sh.
#include <sys/wait.h>

#include <filesystem>

#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cohort/v1/admin.grpc.pb.h"
#include "cohort/v1/agent.grpc.pb.h"
#include "common/transport_security.h"
#include "gmock/gmock.h"
#include "tests/certs.h"
#include "tests/cluster.h"
#include "tests/fault/hostile_fixture.h"

namespace cohort::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPolicyTemplate[] = R"(principals:
  - name: operator
    role: operator
    certificate: {uri: "spiffe://cohort/operator"}
  - name: viewer
    role: viewer
    certificate: {uri: "spiffe://cohort/viewer"}
  - name: agents
    role: agent
    certificate: {uri: "spiffe://cohort/agent/*"}
  - name: operator-token
    role: operator
    token_sha256: "OPERATOR_SHA"
  - name: viewer-token
    role: viewer
    token_sha256: "VIEWER_SHA"
  - name: agent-0
    role: agent
    token_sha256: "AGENT_SHA"
    pools: ["tokens"]
)";

// SHA-256 hex of a token file's contents, through the openssl command line (what an operator
// writing the policy does: `tr -d '\n' < token | sha256sum`).
std::string TokenSha(const std::string& token_file) {
  const std::string command =
      absl::StrCat("tr -d ' \\n' < ", token_file, " | openssl dgst -sha256 -r");
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return "";
  char buf[256] = {};
  const size_t n = fread(buf, 1, sizeof(buf) - 1, p);
  pclose(p);
  std::string out(buf, n);
  return out.substr(0, out.find(' '));
}

class Security : public Hostile {
 protected:
  static TestCerts& Certs() { return TestCerts::Get(); }

  // A coordinator with mutual TLS (client certificates optional: token clients connect
  // without one), the policy above and an audit log file; a READY pool of kConfig on 4 Gloo
  // agents, each with its own certificate (agent-0 .. agent-3); the test's stubs as operator.
  void SetUp() override {
    ASSERT_TRUE(Certs().ok());
    // mint-certs.sh made agent-0 and agent-1; two more pool members and two for the tests.
    for (int i = 2; i < 6; ++i) {
      if (!std::filesystem::exists(Certs().Path(absl::StrCat("agent-", i, ".crt")))) {
        ASSERT_TRUE(Certs().Mint(
            absl::StrCat("--client agent-", i, " --uri spiffe://cohort/agent/agent-", i)));
      }
    }
    const std::string policy = absl::StrReplaceAll(
        kPolicyTemplate, {{"OPERATOR_SHA", TokenSha(Certs().Path("operator.token"))},
                          {"VIEWER_SHA", TokenSha(Certs().Path("viewer.token"))},
                          {"AGENT_SHA", TokenSha(Certs().Path("agent-0.token"))}});
    ScratchDir::Write(dir_ / "policy.yaml", policy);
    ClusterSecurity security;
    security.coordinator = Certs().ServerFlags();
    security.coordinator.insert(security.coordinator.end(),
                                {"--tls-client-auth", "optional", "--tls-reload-interval", "1s"});
    security.agent = [](int r) { return Certs().ClientFlags(absl::StrCat("agent-", r)); };
    security.client = Certs().Client("operator");
    std::vector<std::string> flags = Flags({});
    flags.insert(flags.end(),
                 {"--policy", dir_ / "policy.yaml", "--audit-log", dir_ / "audit.log"});
    cluster_ = std::make_unique<Cluster>(flags, security);
    ASSERT_TRUE(cluster_->ok()) << "the coordinator did not start";
    channel_ = cluster_->Channel();
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

  // A new channel to the coordinator as `options` (a distinct channel each time: its own
  // connection and handshake).
  std::shared_ptr<grpc::Channel> Channel(const TransportSecurityOptions& options) {
    grpc::ChannelArguments args;
    args.SetInt("cohort.test.channel", ++channels_);
    return CreateChannel(cluster_->address(), options, args);
  }
  std::unique_ptr<v1::AdminService::Stub> Admin(const TransportSecurityOptions& options) {
    return v1::AdminService::NewStub(Channel(options));
  }
  static TransportSecurityOptions WithToken(const std::string& token_file) {
    TransportSecurityOptions o = Certs().Client("");
    o.token_file = token_file;
    return o;
  }

  static grpc::Status GetState(v1::AdminService::Stub& admin, const std::string& pool = "default",
                               v1::GetStateResponse* response = nullptr) {
    v1::GetStateRequest request;
    request.set_pool(pool);
    v1::GetStateResponse ignored;
    return admin.GetState(Context().get(), request, response != nullptr ? response : &ignored);
  }
  static grpc::Status Destroy(v1::AdminService::Stub& admin) {
    v1::DestroyRequest request;
    request.set_scope(v1::DESTROY_SCOPE_ALL);
    v1::DestroyResponse response;
    return admin.Destroy(Context().get(), request, &response);
  }

  // The audit lines so far that contain every one of `needles`.
  std::vector<std::string> AuditLines(const std::vector<std::string>& needles) const {
    std::vector<std::string> out;
    for (absl::string_view line : absl::StrSplit(ScratchDir::Read(dir_ / "audit.log"), '\n')) {
      bool all = true;
      for (const std::string& n : needles) all = all && absl::StrContains(line, n);
      if (all) out.emplace_back(line);
    }
    return out;
  }
  std::string Audit() const { return ScratchDir::Read(dir_ / "audit.log"); }

  // The PEM of the certificate the coordinator presents to a new connection.
  std::string ServedCertificate() {
    auto admin = Admin(Certs().Client("viewer"));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::ListPoolsResponse response;
    if (!admin->ListPools(&context, v1::ListPoolsRequest(), &response).ok()) return "";
    std::string pem;
    if (std::shared_ptr<const grpc::AuthContext> auth = context.auth_context()) {
      for (const grpc::string_ref& p : auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME)) {
        pem.assign(p.data(), p.size());
      }
    }
    return pem;
  }

  ScratchDir dir_;
  int channels_ = 0;
};

TEST_F(Security, ViewerCannotDestroyAndTheRefusalIsAudited) {
  std::unique_ptr<v1::AdminService::Stub> viewer = Admin(Certs().Client("viewer"));
  EXPECT_TRUE(GetState(*viewer).ok());
  const grpc::Status s = Destroy(*viewer);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << Describe(s);
  EXPECT_THAT(s.error_message(), HasSubstr("operator"));
  EXPECT_THAT(s.error_message(), HasSubstr("viewer"));
  EXPECT_THAT(AuditLines({"who=viewer", "action=Destroy", "result=PERMISSION_DENIED"}),
              Not(::testing::IsEmpty()))
      << Audit();
  ExpectPoolIntact();
}

TEST_F(Security, AnonymousClientOnTheTlsPortIsUnauthenticated) {
  std::unique_ptr<v1::AdminService::Stub> anonymous = Admin(Certs().Client(""));
  const grpc::Status s = GetState(*anonymous);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << Describe(s);
  EXPECT_THAT(s.error_message(), HasSubstr("viewer"));
  // Nor may it join or read the store.
  std::unique_ptr<v1::AgentService::Stub> agent =
      v1::AgentService::NewStub(Channel(Certs().Client("")));
  v1::JoinResponse joined;
  EXPECT_EQ(agent->Join(Context().get(), Joiner("default", "agent-9"), &joined).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  ExpectPoolIntact();
}

TEST_F(Security, PlaintextClientOnTheTlsPortGetsNoAnswer) {
  auto plaintext = v1::AdminService::NewStub(
      grpc::CreateChannel(cluster_->address(), grpc::InsecureChannelCredentials()));
  const grpc::Status s = GetState(*plaintext);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << Describe(s);
}

TEST_F(Security, CertificatesTheCoordinatorDoesNotTrustAreRefusedAtTheHandshake) {
  // A client certificate of another CA; an expired one of the right CA; a client that does not
  // trust the coordinator's CA.
  for (const auto& [what, options] : std::vector<std::pair<std::string, TransportSecurityOptions>>{
           {"stranger", Certs().Client("stranger")},
           {"expired", Certs().Client("expired")},
           {"wrong CA for the server", Certs().Client("operator", "other-ca.crt")}}) {
    SCOPED_TRACE(what);
    const grpc::Status s = GetState(*Admin(options));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << Describe(s);
  }
  ExpectPoolIntact();
}

TEST_F(Security, TokenFileForEachRole) {
  // Operator token: may check and read.
  std::unique_ptr<v1::AdminService::Stub> op = Admin(WithToken(Certs().Path("operator.token")));
  v1::CheckRequest check;
  check.set_pool("default");
  v1::CheckResponse checked;
  const grpc::Status c = op->Check(Context(kDeadline).get(), check, &checked);
  EXPECT_TRUE(c.ok()) << Describe(c);
  EXPECT_EQ(checked.generation(), generation_);
  // Viewer token: may read, not destroy.
  std::unique_ptr<v1::AdminService::Stub> viewer = Admin(WithToken(Certs().Path("viewer.token")));
  EXPECT_TRUE(GetState(*viewer).ok());
  EXPECT_EQ(Destroy(*viewer).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(AuditLines({"who=viewer-token", "action=Destroy"}), Not(::testing::IsEmpty()));
  // Agent token: may join its pool as its own identity, not as another, not another pool, and
  // may not use the admin API.
  auto agent = v1::AgentService::NewStub(Channel(WithToken(Certs().Path("agent-0.token"))));
  v1::JoinResponse joined;
  grpc::Status j = agent->Join(Context().get(), Joiner("tokens", "agent-0"), &joined);
  EXPECT_TRUE(j.ok()) << Describe(j);
  j = agent->Join(Context().get(), Joiner("tokens", "agent-1"), &joined);
  EXPECT_EQ(j.error_code(), grpc::StatusCode::PERMISSION_DENIED) << Describe(j);
  j = agent->Join(Context().get(), Joiner("default", "agent-0"), &joined);
  EXPECT_EQ(j.error_code(), grpc::StatusCode::PERMISSION_DENIED) << Describe(j);
  EXPECT_EQ(Destroy(*Admin(WithToken(Certs().Path("agent-0.token")))).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // A token nobody knows.
  ScratchDir::Write(dir_ / "forged.token", "not-a-token-the-policy-knows\n");
  EXPECT_EQ(GetState(*Admin(WithToken(dir_ / "forged.token"))).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  ExpectPoolIntact();
}

TEST_F(Security, AgentJoiningAsAnotherIdentityIsRefused) {
  // A real agent process with agent-4's certificate claiming to be agent-1 (a member of the
  // READY pool): refused at Join, and the agent gives up (a refusal is final) instead of
  // retrying.
  cluster_->StartAgent(4, -1, {"--identity", "agent-1"});
  std::optional<int> exit = cluster_->agent(4).WaitExit(kDeadline);
  ASSERT_TRUE(exit.has_value()) << "the agent kept retrying a refused identity";
  EXPECT_TRUE(WIFEXITED(*exit) && WEXITSTATUS(*exit) != 0);
  EXPECT_THAT(AuditLines({"who=agents/agent-4", "action=Join", "result=PERMISSION_DENIED"}),
              Not(::testing::IsEmpty()))
      << Audit();
  ExpectPoolIntact();
}

TEST_F(Security, MemberWritesOnlyTheKeysItsRankOwns) {
  // Pool "rogue" of 2: a real agent (agent-5, rank 0) and the test, holding agent-4's
  // certificate, as rank 1 of the same generation.
  auto stub = v1::AgentService::NewStub(Channel(Certs().Client("agent-4")));
  v1::JoinRequest join = Joiner("rogue", "agent-4");
  join.set_rank_hint(1);
  join.add_backends("gloo");
  v1::JoinResponse joined;
  grpc::Status s = stub->Join(Context().get(), join, &joined);
  ASSERT_TRUE(s.ok()) << Describe(s);
  RawSession session(stub.get(), kDeadline);
  ASSERT_TRUE(session.Attach(joined.session_id()));
  session.StartHeartbeats(absl::Milliseconds(200));
  cluster_->StartAgent(5, 0, {"--pool", "rogue"});
  absl::StatusOr<v1::InitializeResponse> init = cluster_->Initialize(
      ParallelConfig{.world_size = 2, .data_parallel_size = 2}, "gloo", 60000, "rogue");
  ASSERT_TRUE(init.ok()) << init.status();
  // The generation starts once both have joined.
  absl::StatusOr<v1::PoolState> started = cluster_->WaitFor(
      [&](const v1::PoolState& p) { return p.generation() >= init->generation(); }, kDeadline,
      "rogue");
  ASSERT_TRUE(started.ok()) << started.status();

  v1::KvSetRequest set;
  set.set_pool("rogue");
  set.set_generation(init->generation());
  set.set_session_id(joined.session_id());
  v1::KvEntry* entry = set.add_entries();
  entry->set_key("world/0/0");  // rank 0's addresses in the world group
  entry->set_value("forged-address");
  v1::KvSetResponse done;
  s = stub->KvSet(Context().get(), set, &done);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << Describe(s);
  EXPECT_THAT(s.error_message(), HasSubstr("global rank 0"));
  // Without its session the credential alone does not reach the store.
  set.clear_session_id();
  // Rank 1's addresses in dp group 0 (not world/0/1: agent-5 is reading that one right now).
  entry->set_key("dp/0/1");
  s = stub->KvSet(Context().get(), set, &done);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << Describe(s);
  // Another member's credential with this session: refused too.
  set.set_session_id(joined.session_id());
  auto other = v1::AgentService::NewStub(Channel(Certs().Client("agent-5")));
  s = other->KvSet(Context().get(), set, &done);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << Describe(s);
  // Its own key, with its own session and credential: allowed.
  s = stub->KvSet(Context().get(), set, &done);
  EXPECT_TRUE(s.ok()) << Describe(s);
  // A viewer sees the key names, never the values; no session id either.
  v1::GetStateResponse state;
  s = GetState(*Admin(Certs().Client("viewer")), "rogue", &state);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_THAT(state.state().store_keys(), ::testing::Contains("dp/0/1"));
  const std::string wire = state.SerializeAsString();
  EXPECT_THAT(wire, Not(HasSubstr("forged-address")));
  EXPECT_THAT(wire, Not(HasSubstr(joined.session_id())));
  EXPECT_THAT(wire, Not(HasSubstr(join.incarnation())));
  // A viewer may not read the store itself.
  auto viewer_agent = v1::AgentService::NewStub(Channel(Certs().Client("viewer")));
  v1::KvGetRequest get;
  get.set_pool("rogue");
  get.set_generation(init->generation());
  get.add_keys("dp/0/1");
  v1::KvGetResponse got;
  s = viewer_agent->KvGet(Context().get(), get, &got);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << Describe(s);
  session.Close();
  ExpectPoolIntact();
}

TEST_F(Security, ServerCertificateRotatedWhileReady) {
  const std::string before = ServedCertificate();
  ASSERT_EQ(before, ScratchDir::Read(Certs().Path("coordinator.crt")));
  ASSERT_TRUE(Certs().Mint("--rotate-server"));
  const std::string rotated = ScratchDir::Read(Certs().Path("coordinator.crt"));
  ASSERT_NE(rotated, before);
  // The coordinator re-reads its files every second (--tls-reload-interval 1s); nothing to wait
  // on, so each try is a new connection, until the deadline.
  std::string served = before;
  for (const absl::Time deadline = absl::Now() + kDeadline;
       served != rotated && absl::Now() < deadline;) {
    served = ServedCertificate();
    ASSERT_TRUE(served == before || served == rotated) << "served: " << served;
  }
  EXPECT_EQ(served, rotated) << "new connections are still served the old certificate";
  // The agents' sessions, opened before, carried on: the pool is READY at the same generation
  // and a Check (every member re-runs every group's all-reduce and reports) passes; the test's
  // own client reconnects under the new certificate.
  ExpectPoolIntact();
  // A new agent joins under the new certificate.
  cluster_->StartAgent(4, -1);
  absl::StatusOr<v1::PoolState> joined =
      cluster_->WaitFor([](const v1::PoolState& p) { return p.members_size() == 5; }, kDeadline);
  ASSERT_TRUE(joined.ok()) << joined.status();
}

// Client certificates optional without a policy would let a client with no credential do
// everything: the coordinator refuses to start so.
TEST(SecurityFlags, OptionalClientAuthWithoutPolicyIsRefused) {
  ASSERT_TRUE(TestCerts::Get().ok());
  ScratchDir dir;
  std::vector<std::string> argv = {Cluster::CoordinatorBinary(), "--listen", "127.0.0.1:0"};
  for (const std::string& f : TestCerts::Get().ServerFlags()) argv.push_back(f);
  argv.insert(argv.end(), {"--tls-client-auth", "optional"});
  std::optional<ChildProcess> child = ChildProcess::Spawn(argv, dir / "err");
  ASSERT_TRUE(child.has_value());
  std::optional<int> exit = child->WaitExit(kDeadline);
  ASSERT_TRUE(exit.has_value()) << "the coordinator started without a policy";
  EXPECT_TRUE(WIFEXITED(*exit) && WEXITSTATUS(*exit) == 2);
  EXPECT_THAT(ScratchDir::Read(dir / "err"),
              HasSubstr("--tls-client-auth optional needs --policy"));
}

// A bearer token counts only over TLS: one sent in plaintext (gRPC's own clients refuse to; a
// hand-written client can) has been exposed to the network, and the coordinator ignores it.
TEST(SecurityPlaintext, BearerTokenSentInPlaintextIsIgnored) {
  ASSERT_TRUE(TestCerts::Get().ok());
  ScratchDir dir;
  const std::string token_file = TestCerts::Get().Path("operator.token");
  ScratchDir::Write(dir / "policy.yaml",
                    absl::StrCat("principals:\n  - name: operator-token\n    role: operator\n"
                                 "    token_sha256: \"",
                                 TokenSha(token_file), "\"\n"));
  Cluster cluster({"--policy", dir / "policy.yaml"});
  ASSERT_TRUE(cluster.ok());
  auto admin = v1::AdminService::NewStub(
      grpc::CreateChannel(cluster.address(), grpc::InsecureChannelCredentials()));
  std::string token = ScratchDir::Read(token_file);
  token = std::string(absl::StripAsciiWhitespace(token));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kDeadline));
  context.AddMetadata("authorization", "Bearer " + token);
  v1::ListPoolsResponse response;
  const grpc::Status s = admin->ListPools(&context, v1::ListPoolsRequest(), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << Describe(s);
}

}  // namespace
}  // namespace cohort::testing
