// grpc.health.v1 and server reflection on a real CoordinatorServer (loopback, port 0) with a
// pool of 8 in-process Gloo agents, through the hand-encoded calls of tests/raw_grpc.h.
#include "coordinator/health.h"

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/coordinator_client.h"
#include "common/layout_proto.h"
#include "coordinator/server.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpcpp/grpcpp.h"
#include "tests/inprocess_pool.h"
#include "tests/raw_grpc.h"
#include "tests/test_util.h"

namespace cohort {
namespace {

using ::cohort::testing::raw_grpc::Check;
using ::cohort::testing::raw_grpc::Get;
using ::cohort::testing::raw_grpc::kNotServing;
using ::cohort::testing::raw_grpc::kServing;
using ::cohort::testing::raw_grpc::Reflect;
using ::cohort::testing::raw_grpc::WaitForHealth;

const ParallelConfig kDp2Cfg2U2{
    .world_size = 8, .data_parallel_size = 2, .cfg_parallel_size = 2, .ulysses_degree = 2};

class HealthTest : public testing::InProcessPoolTest {};

TEST_F(HealthTest, Health_PoolServingOnlyWhileReady) {
  const std::string pool = coordinator::PoolHealth::ServiceName("default");
  EXPECT_EQ(pool, "cohort.pool.default");
  ASSERT_NO_FATAL_FAILURE(StartAgents(8));
  int last = -1;
  ASSERT_TRUE(WaitForHealth(channel_.get(), pool, kNotServing, absl::Seconds(10), &last)) << last;
  EXPECT_EQ(Check(channel_.get(), pool).value_or(-1), kNotServing);  // members, no config yet

  v1::InitializeRequest request;
  *request.mutable_config() = ToProto(kDp2Cfg2U2);
  request.mutable_options()->set_backend("gloo");
  COHORT_ASSERT_OK(client_->Initialize(request).status());
  ASSERT_TRUE(WaitForHealth(channel_.get(), pool, kServing, absl::Seconds(15), &last)) << last;
  absl::StatusOr<v1::PoolState> state = client_->GetState("default");
  COHORT_ASSERT_OK(state.status());
  EXPECT_EQ(state->phase(), v1::POOL_PHASE_READY);
  EXPECT_EQ(Check(channel_.get(), pool).value_or(-1), kServing);

  // A member leaving fails the generation: the pool is no longer usable.
  agents_[5]->Stop();
  EXPECT_TRUE(AwaitAborts(7));  // the survivors were told to abort
  ASSERT_TRUE(WaitForHealth(channel_.get(), pool, kNotServing, absl::Seconds(10), &last)) << last;
  EXPECT_EQ(Check(channel_.get(), pool).value_or(-1), kNotServing);
  // The coordinator itself is fine.
  EXPECT_EQ(Check(channel_.get(), "").value_or(-1), kServing);
}

TEST_F(HealthTest, Health_OverallServing_UnknownPoolNotFound) {
  EXPECT_EQ(Check(channel_.get(), "").value_or(-1), kServing);
  EXPECT_EQ(Check(channel_.get(), "cohort.pool.nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(HealthTest, Health_StartupPool_NotServingFromTheStart) {
  coordinator::ServerOptions options;
  options.coordinator.pools.push_back({"jobs", kDp2Cfg2U2, {}});
  auto server = coordinator::CoordinatorServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials());
  int last = -1;
  EXPECT_TRUE(
      WaitForHealth(channel.get(), "cohort.pool.jobs", kNotServing, absl::Seconds(10), &last))
      << last;
}

TEST_F(HealthTest, Reflection_ListsServicesAndDescribesAdminService) {
  // list_services (field 7) -> list_services_response (6) -> service (1) -> name (1).
  absl::StatusOr<std::string> listed = Reflect(channel_.get(), 7, "");
  COHORT_ASSERT_OK(listed.status());
  std::set<std::string> services;
  for (const std::string& list : Get(*listed, 6)) {
    for (const std::string& service : Get(list, 1)) {
      for (const std::string& name : Get(service, 1)) services.insert(name);
    }
  }
  EXPECT_TRUE(services.count("cohort.v1.AdminService")) << services.size();
  EXPECT_TRUE(services.count("cohort.v1.AgentService"));
  EXPECT_TRUE(services.count("grpc.health.v1.Health"));

  // file_containing_symbol (4) -> file_descriptor_response (4) -> file_descriptor_proto (1).
  absl::StatusOr<std::string> described = Reflect(channel_.get(), 4, "cohort.v1.AdminService");
  COHORT_ASSERT_OK(described.status());
  std::set<std::string> services_described;
  for (const std::string& files : Get(*described, 4)) {
    for (const std::string& bytes : Get(files, 1)) {
      google::protobuf::FileDescriptorProto file;
      ASSERT_TRUE(file.ParseFromString(bytes));
      for (const auto& service : file.service()) {
        services_described.insert(absl::StrCat(file.package(), ".", service.name()));
      }
    }
  }
  EXPECT_TRUE(services_described.count("cohort.v1.AdminService"));
}

}  // namespace
}  // namespace cohort
