// grpc.health.v1 and server reflection on a real CoordinatorServer (loopback, port 0) with a
// pool of 8 in-process Gloo agents. gRPC installs neither proto's generated headers, so the
// calls go through ByteBuffers with the few fields these tests need encoded by hand
// (UnknownFieldSet reads and writes the wire format).
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
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/client_unary_call.h"
#include "grpcpp/impl/rpc_method.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/sync_stream.h"
#include "tests/inprocess_pool.h"
#include "tests/test_util.h"

namespace cohort {
namespace {

// grpc.health.v1.HealthCheckResponse.ServingStatus.
enum ServingStatus { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };

grpc::ByteBuffer ToByteBuffer(const google::protobuf::UnknownFieldSet& fields) {
  std::string bytes;
  fields.SerializeToString(&bytes);
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// The raw bytes of a message.
std::string FromByteBuffer(const grpc::ByteBuffer& buffer) {
  grpc::Slice slice;
  if (!buffer.DumpToSingleSlice(&slice).ok()) return "";
  return std::string(reinterpret_cast<const char*>(slice.begin()), slice.size());
}

// The fields of a message (UnknownFieldSet can be neither copied nor moved).
std::unique_ptr<google::protobuf::UnknownFieldSet> Fields(const std::string& bytes) {
  auto fields = std::make_unique<google::protobuf::UnknownFieldSet>();
  fields->ParseFromString(bytes);
  return fields;
}

// HealthCheckRequest{service}.
grpc::ByteBuffer HealthRequest(const std::string& service) {
  google::protobuf::UnknownFieldSet request;
  request.AddLengthDelimited(1, service);
  return ToByteBuffer(request);
}

// HealthCheckResponse.status (proto3 leaves out 0, UNKNOWN).
int HealthStatus(const grpc::ByteBuffer& response) {
  const auto fields = Fields(FromByteBuffer(response));
  for (int i = 0; i < fields->field_count(); ++i) {
    if (fields->field(i).number() == 1) return static_cast<int>(fields->field(i).varint());
  }
  return kUnknown;
}

// grpc.health.v1.Health/Check: the serving status, or the RPC's error (NOT_FOUND for a service
// the server does not know).
absl::StatusOr<int> Check(grpc::Channel* channel, const std::string& service) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  const grpc::internal::RpcMethod method("/grpc.health.v1.Health/Check",
                                         grpc::internal::RpcMethod::NORMAL_RPC);
  grpc::ByteBuffer response;
  grpc::Status s = grpc::internal::BlockingUnaryCall(channel, method, &context,
                                                     HealthRequest(service), &response);
  if (!s.ok())
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  return HealthStatus(response);
}

// grpc.health.v1.Health/Watch until `service` reports `want`; false if it has not by `timeout`.
// Statuses are published by a worker thread, so a test waits for them rather than expecting
// them at once.
bool WaitForHealth(grpc::Channel* channel, const std::string& service, int want,
                   absl::Duration timeout, int* last = nullptr) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  const grpc::internal::RpcMethod method("/grpc.health.v1.Health/Watch",
                                         grpc::internal::RpcMethod::SERVER_STREAMING);
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(channel, method, &context,
                                                                    HealthRequest(service)));
  grpc::ByteBuffer response;
  while (reader->Read(&response)) {
    const int status = HealthStatus(response);
    if (last != nullptr) *last = status;
    if (status == want) {
      context.TryCancel();
      reader->Finish();
      return true;
    }
  }
  reader->Finish();
  return false;
}

// grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo, one request, one response (its
// bytes). Request fields: file_containing_symbol = 4, list_services = 7.
absl::StatusOr<std::string> Reflect(grpc::Channel* channel, int field, const std::string& value) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  const grpc::internal::RpcMethod method(
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      grpc::internal::RpcMethod::BIDI_STREAMING);
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          channel, method, &context));
  google::protobuf::UnknownFieldSet request;
  request.AddLengthDelimited(field, value);
  grpc::ByteBuffer response;
  const bool ok =
      stream->Write(ToByteBuffer(request)) && stream->WritesDone() && stream->Read(&response);
  grpc::Status s = stream->Finish();
  if (!ok) return absl::UnavailableError(absl::StrCat("reflection: ", s.error_message()));
  return FromByteBuffer(response);
}

// The length-delimited fields numbered `number` of a message (strings, bytes or messages).
std::vector<std::string> Get(const std::string& message, int number) {
  const auto fields = Fields(message);
  std::vector<std::string> out;
  for (int i = 0; i < fields->field_count(); ++i) {
    const auto& f = fields->field(i);
    if (f.number() == number && f.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
      out.push_back(f.length_delimited());
    }
  }
  return out;
}

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
