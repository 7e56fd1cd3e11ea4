// The transport-security seam: the default options are insecure, validate, and give server and
// channel credentials that talk to each other (a real socket on 127.0.0.1:0).
#include "common/transport_security.h"

#include <memory>
#include <optional>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/certs.h"
#include "tests/scratch_dir.h"

namespace cohort {
namespace {

using ::cohort::testing::ScratchDir;
using ::cohort::testing::TestCerts;
using ::testing::HasSubstr;
using Side = TransportSecurityOptions::Side;
using Mode = TransportSecurityOptions::Mode;

// The message of a Validate() that must fail with INVALID_ARGUMENT.
std::string Refusal(const TransportSecurityOptions& options, Side side) {
  absl::Status s = options.Validate(side);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  return std::string(s.message());
}

TEST(TransportSecurityTest, Default_IsInsecureAndValid) {
  const TransportSecurityOptions options;
  EXPECT_EQ(options.mode, TransportSecurityOptions::Mode::kInsecure);
  EXPECT_EQ(options.ModeName(), "insecure");
  EXPECT_TRUE(options.Validate(TransportSecurityOptions::Side::kServer).ok());
  EXPECT_TRUE(options.Validate(TransportSecurityOptions::Side::kClient).ok());
  EXPECT_NE(MakeServerCredentials(options), nullptr);
  EXPECT_NE(MakeChannelCredentials(options), nullptr);
}

TEST(TransportSecurityTest, Insecure_ChannelConnectsToServer) {
  const TransportSecurityOptions options;
  grpc::CallbackGenericService service;  // a server needs one service to start
  grpc::ServerBuilder builder;
  builder.RegisterCallbackGenericService(&service);
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", MakeServerCredentials(options), &port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_NE(port, 0);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), MakeChannelCredentials(options));
  // Bounded wait for the handshake (an event, not a sleep).
  EXPECT_TRUE(channel->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(30))));
  server->Shutdown();
}

// The integer value of `key` in `args`; nullopt when it is not set, or set more than once.
std::optional<int> IntArgument(const grpc::ChannelArguments& args, const char* key) {
  const grpc_channel_args c = args.c_channel_args();
  std::optional<int> value;
  int count = 0;
  for (size_t i = 0; i < c.num_args; ++i) {
    if (std::string(c.args[i].key) == key && c.args[i].type == GRPC_ARG_INTEGER) {
      value = c.args[i].value.integer;
      ++count;
    }
  }
  EXPECT_LE(count, 1) << key << " set " << count << " times";
  return count == 1 ? value : std::nullopt;
}

TEST(TransportSecurityTest,
     ChannelArguments_ResolveAgainWithinASecondUnlessTheCallerSaysOtherwise) {
  const TransportSecurityOptions options;
  EXPECT_EQ(
      IntArgument(MakeChannelArguments(options), GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS),
      1000);
  grpc::ChannelArguments mine;
  mine.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS, 5000);
  mine.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  const grpc::ChannelArguments args = MakeChannelArguments(options, mine);
  EXPECT_EQ(IntArgument(args, GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS), 5000);
  EXPECT_EQ(IntArgument(args, GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS), 100);
}

TEST(TransportSecurityTest, Tls_MintedFilesValidateOnBothSides) {
  TestCerts& certs = TestCerts::Get();
  ASSERT_TRUE(certs.ok());
  EXPECT_TRUE(certs.Server().Validate(Side::kServer).ok())
      << certs.Server().Validate(Side::kServer);
  EXPECT_TRUE(certs.Client("operator").Validate(Side::kClient).ok());
  EXPECT_TRUE(certs.Client("").Validate(Side::kClient).ok());  // CA only: server-side TLS
  TransportSecurityOptions token = certs.Client("");
  token.token_file = certs.Path("viewer.token");
  EXPECT_TRUE(token.Validate(Side::kClient).ok());
  EXPECT_EQ(certs.Server().Describe(Side::kServer), "TLS, client certificates required");
  EXPECT_EQ(TransportSecurityOptions().Describe(Side::kClient), "plaintext (--insecure)");
}

TEST(TransportSecurityTest, Validate_EachMistakeNamesTheFlagAndTheFix) {
  TestCerts& certs = TestCerts::Get();
  ASSERT_TRUE(certs.ok());
  {
    TransportSecurityOptions o = certs.Server();
    o.certificate_file = "/nonexistent/server.crt";
    EXPECT_THAT(Refusal(o, Side::kServer),
                HasSubstr("--tls-cert /nonexistent/server.crt: cannot be opened"));
  }
  {
    TransportSecurityOptions o = certs.Server();
    o.key_file = "";
    EXPECT_THAT(Refusal(o, Side::kServer), HasSubstr("needs --tls-cert, --tls-key"));
  }
  {
    TransportSecurityOptions o = certs.Server();
    o.ca_file = "";
    EXPECT_THAT(Refusal(o, Side::kServer), HasSubstr("--tls-ca (the CA that signs client"));
  }
  {
    TransportSecurityOptions o = certs.Server();
    o.key_file = certs.Path("coordinator.crt");  // a certificate where the key should be
    EXPECT_THAT(Refusal(o, Side::kServer), HasSubstr("--tls-key"));
    EXPECT_THAT(Refusal(o, Side::kServer), HasSubstr("not a PEM PRIVATE KEY"));
  }
  {
    TransportSecurityOptions o = certs.Server();
    o.ca_file = certs.Path("operator.token");
    EXPECT_THAT(Refusal(o, Side::kServer), HasSubstr("--tls-ca"));
  }
  {
    TransportSecurityOptions o = certs.Server();
    o.reload_interval = absl::Milliseconds(500);
    EXPECT_THAT(Refusal(o, Side::kServer), HasSubstr("--tls-reload-interval 500ms is too short"));
  }
  {
    TransportSecurityOptions o = certs.Client("operator");
    o.ca_file = "";
    EXPECT_THAT(Refusal(o, Side::kClient), HasSubstr("TLS on the client needs --tls-ca"));
  }
  {
    TransportSecurityOptions o = certs.Client("operator");
    o.key_file = "";
    EXPECT_THAT(Refusal(o, Side::kClient), HasSubstr("--tls-cert given without --tls-key"));
  }
  {
    TransportSecurityOptions o = certs.Client("operator");
    o.token_file = "/nonexistent/token";
    EXPECT_THAT(Refusal(o, Side::kClient), HasSubstr("--token-file /nonexistent/token"));
  }
  {
    TransportSecurityOptions o;  // insecure
    o.token_file = certs.Path("operator.token");
    EXPECT_THAT(Refusal(o, Side::kClient), HasSubstr("--token-file needs TLS"));
  }
  {
    TransportSecurityOptions o;
    o.ca_file = certs.Path("ca.crt");
    EXPECT_THAT(Refusal(o, Side::kClient), HasSubstr("--insecure cannot be combined"));
  }
}

TEST(TransportSecurityTest, ParseBearerToken_TrimsAndRefusesWhatAHeaderCannotCarry) {
  EXPECT_EQ(ParseBearerToken("abc.def-123\n").value_or(""), "abc.def-123");
  EXPECT_EQ(ParseBearerToken("  tok \r\n").value_or(""), "tok");
  EXPECT_FALSE(ParseBearerToken("").ok());
  EXPECT_FALSE(ParseBearerToken(" \n").ok());
  EXPECT_FALSE(ParseBearerToken("two words").ok());
  EXPECT_FALSE(ParseBearerToken("line\nbreak").ok());
}

TEST(TransportSecurityTest, Tls_ChannelConnectsToServerWithMutualTls) {
  TestCerts& certs = TestCerts::Get();
  ASSERT_TRUE(certs.ok());
  grpc::CallbackGenericService service;
  grpc::ServerBuilder builder;
  builder.RegisterCallbackGenericService(&service);
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", MakeServerCredentials(certs.Server()), &port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_NE(port, 0);
  std::shared_ptr<grpc::Channel> channel =
      CreateChannel("127.0.0.1:" + std::to_string(port), certs.Client("agent-0"));
  EXPECT_TRUE(channel->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(30))));
  server->Shutdown();
}

}  // namespace
}  // namespace cohort
