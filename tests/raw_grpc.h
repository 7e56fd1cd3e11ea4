// grpc.health.v1 and grpc.reflection.v1alpha calls for tests. gRPC installs neither proto's
// generated headers, so the calls go through ByteBuffers with the few fields the tests need
// encoded by hand (UnknownFieldSet reads and writes the wire format).
#ifndef COHORT_TESTS_RAW_GRPC_H_
#define COHORT_TESTS_RAW_GRPC_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/client_unary_call.h"
#include "grpcpp/impl/rpc_method.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/sync_stream.h"

namespace cohort::testing::raw_grpc {

// grpc.health.v1.HealthCheckResponse.ServingStatus.
enum ServingStatus { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };

inline grpc::ByteBuffer ToByteBuffer(const google::protobuf::UnknownFieldSet& fields) {
  std::string bytes;
  fields.SerializeToString(&bytes);
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// The raw bytes of a message.
inline std::string FromByteBuffer(const grpc::ByteBuffer& buffer) {
  grpc::Slice slice;
  if (!buffer.DumpToSingleSlice(&slice).ok()) return "";
  return std::string(reinterpret_cast<const char*>(slice.begin()), slice.size());
}

// The fields of a message (UnknownFieldSet can be neither copied nor moved).
inline std::unique_ptr<google::protobuf::UnknownFieldSet> Fields(const std::string& bytes) {
  auto fields = std::make_unique<google::protobuf::UnknownFieldSet>();
  fields->ParseFromString(bytes);
  return fields;
}

// HealthCheckRequest{service}.
inline grpc::ByteBuffer HealthRequest(const std::string& service) {
  google::protobuf::UnknownFieldSet request;
  request.AddLengthDelimited(1, service);
  return ToByteBuffer(request);
}

// HealthCheckResponse.status (proto3 leaves out 0, UNKNOWN).
inline int HealthStatus(const grpc::ByteBuffer& response) {
  const auto fields = Fields(FromByteBuffer(response));
  for (int i = 0; i < fields->field_count(); ++i) {
    if (fields->field(i).number() == 1) return static_cast<int>(fields->field(i).varint());
  }
  return kUnknown;
}

// grpc.health.v1.Health/Check: the serving status, or the RPC's error (NOT_FOUND for a service
// the server does not know).
inline absl::StatusOr<int> Check(grpc::Channel* channel, const std::string& service) {
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
inline bool WaitForHealth(grpc::Channel* channel, const std::string& service, int want,
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
inline absl::StatusOr<std::string> Reflect(grpc::Channel* channel, int field,
                                           const std::string& value) {
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
inline std::vector<std::string> Get(const std::string& message, int number) {
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

}  // namespace cohort::testing::raw_grpc

#endif  // COHORT_TESTS_RAW_GRPC_H_
