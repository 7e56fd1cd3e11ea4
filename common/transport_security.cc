#include "common/transport_security.h"

namespace cohort {

std::string TransportSecurityOptions::ModeName() const {
  switch (mode) {
    case Mode::kInsecure:
      return "insecure";
  }
  return "unknown";
}

absl::Status TransportSecurityOptions::Validate() const {
  switch (mode) {
    case Mode::kInsecure:
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError("unknown transport security mode: use insecure");
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(
    const TransportSecurityOptions& options) {
  switch (options.mode) {
    case TransportSecurityOptions::Mode::kInsecure:
      return grpc::InsecureServerCredentials();
  }
  return nullptr;  // unreachable for options that Validate()
}

std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(
    const TransportSecurityOptions& options) {
  switch (options.mode) {
    case TransportSecurityOptions::Mode::kInsecure:
      return grpc::InsecureChannelCredentials();
  }
  return nullptr;  // unreachable for options that Validate()
}

}  // namespace cohort
