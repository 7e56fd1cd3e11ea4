#include "coordinator/server.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/metrics_tls.h"
#include "coordinator/state_file.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/health_check_service_interface.h"
#include "spdlog/spdlog.h"

namespace cohort::coordinator {
namespace {

// A process-wide switch that ServerBuilder reads when it is constructed: every server of this
// process (the main port and the health port) gets gRPC's default health service.
void EnableHealth() {
  static const bool once = [] {
    grpc::EnableDefaultHealthCheckService(true);
    return true;
  }();
  (void)once;
}

// Reflection on one ServerBuilder, or off. libgrpc++_reflection registers its plugin for every
// ServerBuilder of the process when it is loaded (a static initializer calling
// InitProtoReflectionServerBuilderPlugin), so a server without reflection must take the plugin
// out of its own builder; this option removes it and, when `enabled`, adds one back (the
// library may also not be loaded at all).
class ReflectionOption : public grpc::ServerBuilderOption {
 public:
  explicit ReflectionOption(bool enabled) : enabled_(enabled) {}
  void UpdateArguments(grpc::ChannelArguments* /*args*/) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    auto reflection = std::make_unique<grpc::reflection::ProtoServerReflectionPlugin>();
    const std::string name = reflection->name();
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [&](const std::unique_ptr<grpc::ServerBuilderPlugin>& p) {
                                    return p->name() == name;
                                  }),
                   plugins->end());
    if (enabled_) plugins->push_back(std::move(reflection));
  }

 private:
  const bool enabled_;
};

std::string HostPort(const std::string& listen, int port) {
  const size_t colon = listen.rfind(':');
  return absl::StrCat(listen.substr(0, colon), ":", port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(ServerOptions options) {
  if (absl::Status s = options.transport_security.Validate(TransportSecurityOptions::Side::kServer);
      !s.ok()) {
    return s;
  }
  const std::optional<MetricsTls> metrics_tls =
      options.metrics_insecure ? std::nullopt : MetricsTlsOf(options.transport_security);
  if (!options.metrics_listen_address.empty() && metrics_tls.has_value()) {
    if (absl::Status s = CivetwebTlsSupport(); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("--metrics-listen with TLS: ", s.message(),
                                       "; add --metrics-insecure to serve /metrics over plain HTTP "
                                       "(e.g. on a pod-local address), or drop --metrics-listen"));
    }
  }
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
  EnableHealth();
  grpc::ServerBuilder builder;
  builder.SetOption(std::make_unique<ReflectionOption>(s->options_.reflection));
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
  std::vector<grpc::HealthCheckServiceInterface*> health_services = {
      s->server_->GetHealthCheckService()};
  if (!s->options_.health_listen_address.empty()) {
    // Plaintext on purpose: the kubelet's gRPC probe speaks no TLS. It serves only
    // grpc.health.v1 (gRPC's default health service, no other service registered).
    s->health_unimplemented_ = std::make_unique<grpc::CallbackGenericService>();
    grpc::ServerBuilder health_builder;
    health_builder.SetOption(std::make_unique<ReflectionOption>(false));
    // A server needs one service of its own to start; this one answers every method but
    // grpc.health.v1 with UNIMPLEMENTED.
    health_builder.RegisterCallbackGenericService(s->health_unimplemented_.get());
    health_builder.AddListeningPort(s->options_.health_listen_address,
                                    grpc::InsecureServerCredentials(), &s->health_port_);
    s->health_server_ = health_builder.BuildAndStart();
    if (s->health_server_ == nullptr || s->health_port_ == 0) {
      return absl::UnavailableError(absl::StrCat("cannot listen on --health-listen ",
                                                 s->options_.health_listen_address,
                                                 "; is the address in use or not local?"));
    }
    health_services.push_back(s->health_server_->GetHealthCheckService());
  }
  s->health_->Start(std::move(health_services));
  if (metrics_on) {
    absl::StatusOr<std::unique_ptr<MetricsExposer>> exposer =
        MetricsExposer::Start(s->options_.metrics_listen_address, s->metrics_->collectables(),
                              /*num_threads=*/2, metrics_tls);
    if (!exposer.ok()) return exposer.status();  // ~CoordinatorServer shuts the server down
    s->exposer_ = *std::move(exposer);
  }
  s->timers_->Start();
  spdlog::info("coordinator listening on {} ({}{})", s->address(),
               s->options_.transport_security.Describe(TransportSecurityOptions::Side::kServer),
               s->options_.reflection ? ", reflection on" : "");
  if (s->health_server_ != nullptr) spdlog::info("health (plaintext) on {}", s->health_address());
  if (s->exposer_ != nullptr) spdlog::info("metrics on {}", s->exposer_->url());
  return s;
}

CoordinatorServer::~CoordinatorServer() { Shutdown(absl::ZeroDuration()); }

std::string CoordinatorServer::address() const { return HostPort(options_.listen_address, port_); }

std::string CoordinatorServer::health_address() const {
  return health_server_ == nullptr ? "" : HostPort(options_.health_listen_address, health_port_);
}

std::shared_ptr<grpc::Channel> CoordinatorServer::InProcessChannel() {
  return server_->InProcessChannel(grpc::ChannelArguments());
}

void CoordinatorServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  exposer_.reset();  // no scrape may reach a coordinator that is going away
  // Before the streams are cancelled: their ends are then no losses, the state is saved as it
  // is and the agents are told to join the next coordinator.
  if (coordinator_ != nullptr) coordinator_->BeginShutdown();
  health_->Stop();           // before the server (and its health service) goes away
  if (server_ != nullptr) {  // null when Start() failed to bind
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
    server_->Wait();
  }
  if (health_server_ != nullptr) {
    health_server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
    health_server_->Wait();
  }
  timers_->Stop();
}

}  // namespace cohort::coordinator
