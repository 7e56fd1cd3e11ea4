#include "coordinator/server.h"

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace cohort::coordinator {

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    ServerOptions options) {
  std::unique_ptr<CoordinatorServer> s(new CoordinatorServer());
  s->options_ = std::move(options);
  s->timers_ = std::make_unique<TimerQueue>(Clock::Real());
  s->coordinator_ =
      std::make_unique<Coordinator>(s->options_.coordinator, Clock::Real(), s->timers_.get());
  s->agent_service_ = std::make_unique<AgentServiceImpl>(s->coordinator_.get());
  s->admin_service_ = std::make_unique<AdminServiceImpl>(s->coordinator_.get(), Clock::Real());
  grpc::ServerBuilder builder;
  builder.AddListeningPort(s->options_.listen_address, grpc::InsecureServerCredentials(),
                           &s->port_);
  builder.RegisterService(s->agent_service_.get());
  builder.RegisterService(s->admin_service_.get());
  // Sessions are long-lived and mostly idle: keep them alive through quiet NATs, and let
  // agents ping as often as every 10 s.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", s->options_.listen_address,
                                               "; is the address in use or not local?"));
  }
  s->timers_->Start();
  spdlog::info("coordinator listening on {}", s->address());
  return s;
}

CoordinatorServer::~CoordinatorServer() { Shutdown(absl::ZeroDuration()); }

std::string CoordinatorServer::address() const {
  const std::string& listen = options_.listen_address;
  const size_t colon = listen.rfind(':');
  return absl::StrCat(listen.substr(0, colon), ":", port_);
}

std::shared_ptr<grpc::Channel> CoordinatorServer::InProcessChannel() {
  return server_->InProcessChannel(grpc::ChannelArguments());
}

void CoordinatorServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
  timers_->Stop();
}

}  // namespace cohort::coordinator
