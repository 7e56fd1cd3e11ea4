// The transport-security seam: the default options are insecure, validate, and give server and
// channel credentials that talk to each other (a real socket on 127.0.0.1:0).
#include "common/transport_security.h"

#include <memory>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace cohort {
namespace {

TEST(TransportSecurityTest, Default_IsInsecureAndValid) {
  const TransportSecurityOptions options;
  EXPECT_EQ(options.mode, TransportSecurityOptions::Mode::kInsecure);
  EXPECT_EQ(options.ModeName(), "insecure");
  EXPECT_TRUE(options.Validate().ok());
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

}  // namespace
}  // namespace cohort
