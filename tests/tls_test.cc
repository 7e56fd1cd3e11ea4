// TLS and mutual TLS on the coordinator's gRPC port, in process (CoordinatorServer on
// 127.0.0.1:0 with a real socket), with certificates from deploy/mint-certs.sh (tests/certs.h):
// who gets in, what the Caller the policy sees holds, the plaintext health port, reflection,
// and a server certificate rotated on disk while clients are connected.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cohort/v1/admin.grpc.pb.h"
#include "common/transport_security.h"
#include "coordinator/authorizer.h"
#include "coordinator/caller.h"
#include "coordinator/server.h"
#include "gmock/gmock.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/certs.h"
#include "tests/raw_grpc.h"
#include "tests/scratch_dir.h"

namespace cohort {
namespace {

using ::cohort::testing::ScratchDir;
using ::cohort::testing::TestCerts;
using ::cohort::testing::raw_grpc::Check;
using ::cohort::testing::raw_grpc::kServing;
using ::cohort::testing::raw_grpc::Reflect;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ClientAuth = TransportSecurityOptions::ClientAuth;
using Side = TransportSecurityOptions::Side;

// Allows everything and remembers the Caller of the last call.
class RecordingAuthorizer : public coordinator::Authorizer {
 public:
  absl::Status Authorize(const coordinator::Caller& caller, coordinator::Action /*action*/,
                         const std::string& /*pool*/) const override {
    absl::MutexLock lock(&mu_);
    last_ = caller;
    return absl::OkStatus();
  }
  coordinator::Caller last() const {
    absl::MutexLock lock(&mu_);
    return last_;
  }

 private:
  mutable absl::Mutex mu_;
  mutable coordinator::Caller last_ ABSL_GUARDED_BY(mu_);
};

struct CallResult {
  grpc::Status status;
  std::string server_certificate;  // the PEM the server presented; empty if none
};

// One ListPools call on `channel`.
CallResult ListPools(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::AdminService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  v1::ListPoolsResponse response;
  CallResult result;
  result.status = stub->ListPools(&context, v1::ListPoolsRequest(), &response);
  if (std::shared_ptr<const grpc::AuthContext> auth = context.auth_context()) {
    for (const grpc::string_ref& pem : auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME)) {
      result.server_certificate.assign(pem.data(), pem.size());
    }
  }
  return result;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(certs().ok()); }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(1));
  }

  static TestCerts& certs() { return TestCerts::Get(); }

  void StartServer(TransportSecurityOptions security, const std::string& health_listen = "",
                   bool reflection = false) {
    coordinator::ServerOptions options;
    options.transport_security = std::move(security);
    options.health_listen_address = health_listen;
    options.reflection = reflection;
    options.coordinator.authorizer = authorizer_;
    // A pool to read: ListPools asks the authorizer once per pool.
    options.coordinator.pools.push_back({"default", ParallelConfig{.world_size = 1}, {}});
    auto server = coordinator::CoordinatorServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::shared_ptr<grpc::Channel> Channel(const TransportSecurityOptions& client) {
    EXPECT_TRUE(client.Validate(Side::kClient).ok()) << client.Validate(Side::kClient);
    return CreateChannel(server_->address(), client);
  }

  std::shared_ptr<RecordingAuthorizer> authorizer_ = std::make_shared<RecordingAuthorizer>();
  std::unique_ptr<coordinator::CoordinatorServer> server_;
};

TEST_F(TlsTest, ClientCertificate_CallerHasItsUrisAndCommonName) {
  ASSERT_NO_FATAL_FAILURE(StartServer(certs().Server()));
  CallResult r = ListPools(Channel(certs().Client("operator")));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  const coordinator::Caller caller = authorizer_->last();
  EXPECT_TRUE(caller.authenticated);
  EXPECT_EQ(caller.identity, "spiffe://cohort/operator");
  EXPECT_THAT(caller.certificate_uris, ElementsAre("spiffe://cohort/operator"));
  EXPECT_EQ(caller.certificate_cn, "operator");
  EXPECT_EQ(caller.bearer_token, "");
  EXPECT_THAT(caller.peer, HasSubstr("127.0.0.1"));
  // The client verified the server: it saw the coordinator's certificate.
  EXPECT_EQ(r.server_certificate, ScratchDir::Read(certs().Path("coordinator.crt")));
}

TEST_F(TlsTest, AgentCertificate_AndBearerToken_BothReachTheCaller) {
  ASSERT_NO_FATAL_FAILURE(StartServer(certs().Server()));
  TransportSecurityOptions client = certs().Client("agent-1");
  client.token_file = certs().Path("agent-0.token");
  ASSERT_TRUE(ListPools(Channel(client)).status.ok());
  const coordinator::Caller caller = authorizer_->last();
  EXPECT_TRUE(caller.authenticated);
  EXPECT_THAT(caller.certificate_uris, ElementsAre("spiffe://cohort/agent/agent-1"));
  EXPECT_EQ(caller.certificate_cn, "agent-1");
  absl::StatusOr<std::string> token =
      ParseBearerToken(ScratchDir::Read(certs().Path("agent-0.token")));
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(caller.bearer_token, *token);
}

TEST_F(TlsTest, StrangerFromAnotherCa_Refused) {
  ASSERT_NO_FATAL_FAILURE(StartServer(certs().Server()));
  CallResult r = ListPools(Channel(certs().Client("stranger")));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
  // No call reached the coordinator (only its own in-process ones).
  EXPECT_TRUE(authorizer_->last().certificate_uris.empty());
  EXPECT_NE(authorizer_->last().identity, "spiffe://cohort/operator");
}

TEST_F(TlsTest, ClientTrustingAnotherCa_RefusesTheServer) {
  ASSERT_NO_FATAL_FAILURE(StartServer(certs().Server()));
  CallResult r = ListPools(Channel(certs().Client("operator", "other-ca.crt")));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
}

TEST_F(TlsTest, NoClientCertificate_RefusedWhenRequired) {
  ASSERT_NO_FATAL_FAILURE(StartServer(certs().Server(ClientAuth::kRequire)));
  CallResult r = ListPools(Channel(certs().Client("")));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
  // Not even with a token: the handshake fails before any call.
  TransportSecurityOptions with_token = certs().Client("");
  with_token.token_file = certs().Path("operator.token");
  EXPECT_EQ(ListPools(Channel(with_token)).status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, ExpiredClientCertificate_Refused) {
  ASSERT_NO_FATAL_FAILURE(StartServer(certs().Server()));
  CallResult r = ListPools(Channel(certs().Client("expired")));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
}

TEST_F(TlsTest, PlaintextClient_RefusedByTheTlsPort) {
  ASSERT_NO_FATAL_FAILURE(StartServer(certs().Server()));
  CallResult r = ListPools(Channel(TransportSecurityOptions()));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
}

TEST_F(TlsTest, OptionalClientAuth_TokenOnlyClientGetsInUnauthenticatedWithItsToken) {
  ASSERT_NO_FATAL_FAILURE(StartServer(certs().Server(ClientAuth::kOptional)));
  TransportSecurityOptions client = certs().Client("");
  client.token_file = certs().Path("viewer.token");
  ASSERT_TRUE(ListPools(Channel(client)).status.ok());
  const coordinator::Caller caller = authorizer_->last();
  EXPECT_FALSE(caller.authenticated);
  EXPECT_TRUE(caller.certificate_uris.empty());
  EXPECT_EQ(caller.certificate_cn, "");
  EXPECT_EQ(caller.identity, caller.peer);
  absl::StatusOr<std::string> token =
      ParseBearerToken(ScratchDir::Read(certs().Path("viewer.token")));
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(caller.bearer_token, *token);
  // A presented certificate is still verified: a stranger's is refused.
  EXPECT_EQ(ListPools(Channel(certs().Client("stranger"))).status.error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // And a good one is read.
  ASSERT_TRUE(ListPools(Channel(certs().Client("viewer"))).status.ok());
  EXPECT_TRUE(authorizer_->last().authenticated);
  EXPECT_EQ(authorizer_->last().certificate_cn, "viewer");
}

TEST_F(TlsTest, TokenFile_ReReadWhenItChanges) {
  ASSERT_NO_FATAL_FAILURE(StartServer(certs().Server(ClientAuth::kOptional)));
  ScratchDir dir;
  const std::string token_file = dir / "token";
  ScratchDir::Write(token_file, "first-token\n");
  TransportSecurityOptions client = certs().Client("");
  client.token_file = token_file;
  std::shared_ptr<grpc::Channel> channel = Channel(client);
  ASSERT_TRUE(ListPools(channel).status.ok());
  EXPECT_EQ(authorizer_->last().bearer_token, "first-token");
  // Replaced as the kubelet does: a new file renamed over the old one.
  ScratchDir::Write(dir / "token.new", "second-token-longer\n");
  std::filesystem::rename(dir / "token.new", token_file);
  ASSERT_TRUE(ListPools(channel).status.ok());
  EXPECT_EQ(authorizer_->last().bearer_token, "second-token-longer");
}

TEST_F(TlsTest, ServerNameOverride_ChecksThatNameInTheCertificate) {
  ASSERT_NO_FATAL_FAILURE(StartServer(certs().Server()));
  TransportSecurityOptions named = certs().Client("operator");
  named.server_name = "cohort-coordinator";  // a DNS name of the certificate
  EXPECT_TRUE(ListPools(Channel(named)).status.ok());
  TransportSecurityOptions wrong = certs().Client("operator");
  wrong.server_name = "not-the-coordinator";
  CallResult r = ListPools(Channel(wrong));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
}

TEST_F(TlsTest, HealthPort_PlaintextHealthOnlyWhileTheMainPortIsTls) {
  ASSERT_NO_FATAL_FAILURE(StartServer(certs().Server(), "127.0.0.1:0"));
  ASSERT_NE(server_->health_port(), 0);
  auto health = grpc::CreateChannel(server_->health_address(), grpc::InsecureChannelCredentials());
  EXPECT_EQ(Check(health.get(), "").value_or(-1), kServing);
  // Only health: the admin service is not there.
  auto stub = v1::AdminService::NewStub(health);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  v1::ListPoolsResponse response;
  EXPECT_EQ(stub->ListPools(&context, v1::ListPoolsRequest(), &response).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_FALSE(Reflect(health.get(), 7, "").ok());
  // The main port answers health too, over TLS only.
  auto secure = Channel(certs().Client("viewer"));
  EXPECT_EQ(Check(secure.get(), "").value_or(-1), kServing);
}

TEST_F(TlsTest, Reflection_OffUnlessAsked) {
  ASSERT_NO_FATAL_FAILURE(StartServer(certs().Server(), "", /*reflection=*/false));
  auto channel = Channel(certs().Client("operator"));
  absl::StatusOr<std::string> off = Reflect(channel.get(), 7, "");
  EXPECT_FALSE(off.ok());
  server_->Shutdown(absl::Seconds(1));
  server_.reset();
  ASSERT_NO_FATAL_FAILURE(StartServer(certs().Server(), "", /*reflection=*/true));
  auto again = Channel(certs().Client("operator"));
  EXPECT_TRUE(Reflect(again.get(), 7, "").ok());
}

// The server's certificate is re-minted on disk (each file replaced with one rename, as
// Kubernetes swaps a Secret's files): new connections get the new certificate within a few
// reload intervals, without a restart, and a connection made before keeps working.
TEST_F(TlsTest, ServerCertificateRotated_NewConnectionsSeeItOldOnesKeepWorking) {
  // A copy of the CA in a directory of its own, so the other tests' files stay put.
  ScratchDir dir;
  for (const char* name : {"ca.crt", "ca.key", "coordinator.crt", "coordinator.key"}) {
    std::filesystem::copy_file(certs().Path(name), dir / name);
  }
  TransportSecurityOptions server = certs().Server();
  server.certificate_file = dir / "coordinator.crt";
  server.key_file = dir / "coordinator.key";
  server.reload_interval = absl::Seconds(1);
  ASSERT_NO_FATAL_FAILURE(StartServer(server));
  const std::string old_pem = ScratchDir::Read(dir / "coordinator.crt");

  std::shared_ptr<grpc::Channel> before = Channel(certs().Client("operator"));
  CallResult first = ListPools(before);
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  EXPECT_EQ(first.server_certificate, old_pem);

  const std::string command = std::string(COHORT_SOURCE_DIR) + "/deploy/mint-certs.sh " +
                              dir.path() + " --rotate-server >/dev/null 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0);
  const std::string new_pem = ScratchDir::Read(dir / "coordinator.crt");
  ASSERT_NE(new_pem, old_pem);

  // gRPC's file watcher re-reads the files every reload interval; there is nothing to wait on,
  // so each try is a new connection (a new handshake), until the deadline.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  std::string served;
  int tries = 0;
  while (served != new_pem && absl::Now() < deadline) {
    ++tries;
    grpc::ChannelArguments args;
    args.SetInt("cohort.test.try", tries);  // a distinct channel: never a shared subchannel
    CallResult r = ListPools(CreateChannel(server_->address(), certs().Client("operator"), args));
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    served = r.server_certificate;
    if (served != new_pem) {
      ASSERT_EQ(served, old_pem);
    }
  }
  EXPECT_EQ(served, new_pem) << "the rotated certificate was not served after " << tries
                             << " new connections";

  // The connection made before the rotation still works (on its original handshake).
  CallResult still = ListPools(before);
  EXPECT_TRUE(still.status.ok()) << still.status.error_message();
  EXPECT_EQ(still.server_certificate, old_pem);
}

}  // namespace
}  // namespace cohort
