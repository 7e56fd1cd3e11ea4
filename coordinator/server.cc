#include "coordinator/server.h"

#include "absl/strings/str_cat.h"
#include "coordinator/state_file.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "spdlog/spdlog.h"

namespace cohort::coordinator {
namespace {

// Both are process-wide switches that ServerBuilder reads when it is constructed.
void EnableHealthAndReflection() {
  static const bool once = [] {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    return true;
  }();
  (void)once;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(ServerOptions options) {
  if (absl::Status s = options.transport_security.Validate(); !s.ok()) return s;
  // The state file first: a path that cannot be used, or a file that does not load, stops the
  // start here (the Coordinator constructor cannot fail); with --state-file-reset a bad file
  // is moved aside and the coordinator starts empty.
  if (!options.coordinator.state_file.empty()) {
    absl::StatusOr<v1::DurableState> state =
        StateFile::Open(options.coordinator.state_file, options.coordinator.state_file_reset);
    if (!state.ok()) return state.status();
  }
  std::unique_ptr<CoordinatorServer> s(new CoordinatorServer());
  s->options_ = std::move(options);
  s->timers_ = std::make_unique<TimerQueue>(Clock::Real());
  s->coordinator_ =
      std::make_unique<Coordinator>(s->options_.coordinator, Clock::Real(), s->timers_.get());
  // Before the server serves, so that they see every event.
  s->health_ = std::make_unique<PoolHealth>(s->coordinator_.get());
  const bool metrics_on = !s->options_.metrics_listen_address.empty();
  if (metrics_on) s->metrics_ = std::make_unique<CoordinatorMetrics>(s->coordinator_.get());
  s->agent_service_ = std::make_unique<AgentServiceImpl>(s->coordinator_.get());
  s->admin_service_ = std::make_unique<AdminServiceImpl>(s->coordinator_.get(), Clock::Real());
  EnableHealthAndReflection();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(s->options_.listen_address,
                           MakeServerCredentials(s->options_.transport_security), &s->port_);
  builder.RegisterService(s->agent_service_.get());
  builder.RegisterService(s->admin_service_.get());
  // Sessions are long-lived and mostly idle: keep them alive through quiet NATs, and let
  // agents ping as often as every 10 s.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  if (metrics_on) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(s->metrics_->NewInterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", s->options_.listen_address,
                                               "; is the address in use or not local?"));
  }
  if (grpc::HealthCheckServiceInterface* health = s->server_->GetHealthCheckService()) {
    s->health_->Start(health);
  }
  if (metrics_on) {
    absl::StatusOr<std::unique_ptr<MetricsExposer>> exposer =
        MetricsExposer::Start(s->options_.metrics_listen_address, s->metrics_->collectables());
    if (!exposer.ok()) return exposer.status();  // ~CoordinatorServer shuts the server down
    s->exposer_ = *std::move(exposer);
  }
  s->timers_->Start();
  spdlog::info("coordinator listening on {}", s->address());
  if (s->exposer_ != nullptr) spdlog::info("metrics on {}", s->exposer_->url());
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
  exposer_.reset();          // no scrape may reach a coordinator that is going away
  health_->Stop();           // before the server (and its health service) goes away
  if (server_ != nullptr) {  // null when Start() failed to bind
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
    server_->Wait();
  }
  timers_->Stop();
}

}  // namespace cohort::coordinator
