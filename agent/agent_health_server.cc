#include "agent/agent_health_server.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "grpc/grpc.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace cohort::agent {
namespace {

// Takes every plugin out of the builder: server reflection (registered for every ServerBuilder
// of a process that loads libgrpc++_reflection) and any other. gRPC's default health service is
// no plugin: the builder adds it when EnableDefaultHealthCheckService is on.
class NoPluginsOption : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments* /*args*/) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->clear();
  }
};

std::string HostPort(const std::string& listen, int port) {
  return absl::StrCat(listen.substr(0, listen.rfind(':')), ":", port);
}

}  // namespace

AgentHealthServer::AgentHealthServer(AgentHealthServerOptions options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : Clock::Real()),
      health_(options_.wedge_timeout) {}

absl::StatusOr<std::unique_ptr<AgentHealthServer>> AgentHealthServer::Start(
    AgentHealthServerOptions options) {
  std::unique_ptr<AgentHealthServer> s(new AgentHealthServer(std::move(options)));
  // Process-wide, read when a ServerBuilder is constructed; the agent serves no other gRPC.
  grpc::EnableDefaultHealthCheckService(true);
  s->unimplemented_ = std::make_unique<grpc::CallbackGenericService>();
  grpc::ServerBuilder builder;
  builder.SetOption(std::make_unique<NoPluginsOption>());
  // A server needs one service of its own to start; this one answers every method but
  // grpc.health.v1 with UNIMPLEMENTED.
  builder.RegisterCallbackGenericService(s->unimplemented_.get());
  // A port another process holds is an error, not a port shared with it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(s->options_.listen_address, grpc::InsecureServerCredentials(),
                           &s->port_);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0 || s->server_->GetHealthCheckService() == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot listen on --health-listen ",
                                               s->options_.listen_address,
                                               "; is the address in use or not local?"));
  }
  // Before the first round: a probe never sees the default SERVING for the readiness name.
  s->Publish();
  AgentHealthServer* self = s.get();
  s->publisher_ = std::thread([self] { self->PublishLoop(); });
  return s;
}

AgentHealthServer::~AgentHealthServer() { Stop(); }

std::string AgentHealthServer::address() const { return HostPort(options_.listen_address, port_); }

void AgentHealthServer::Attach(std::function<AgentObservation()> observe) {
  {
    absl::MutexLock lock(&mu_);
    if (observe_ != nullptr || stopping_) return;
    observe_ = std::move(observe);
  }
  observer_ = std::thread([this] { ObserveLoop(); });
}

void AgentHealthServer::MarkBroken(const std::string& reason) {
  health_.MarkBroken(reason);
  Publish();
}

void AgentHealthServer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (observer_.joinable()) observer_.join();
  if (publisher_.joinable()) publisher_.join();
  {
    absl::MutexLock lock(&publish_mu_);
    stopped_publishing_ = true;
  }
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(absl::Now()));
    server_->Wait();
  }
}

void AgentHealthServer::ObserveLoop() {
  std::function<AgentObservation()> observe;
  {
    absl::MutexLock lock(&mu_);
    observe = observe_;
  }
  while (true) {
    health_.ObservationStarted(clock_->Now());
    const AgentObservation seen = observe();
    health_.ObservationFinished(clock_->Now(), seen);
    absl::MutexLock lock(&mu_);
    observed_ = true;
    auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    // The pause between observations, cut short by Stop().
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping), options_.probe_interval)) return;
  }
}

void AgentHealthServer::PublishLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      // A wedge shows only as time passes with an observation outstanding: the publisher
      // evaluates every probe_interval, and at once after each observation.
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || observed_; };
      mu_.AwaitWithTimeout(absl::Condition(&woken), options_.probe_interval);
      if (stopping_) return;
      observed_ = false;
    }
    Publish();
  }
}

void AgentHealthServer::Publish() {
  const HealthVerdict verdict = health_.Evaluate(clock_->Now());
  absl::MutexLock lock(&publish_mu_);
  if (stopped_publishing_) return;
  if (published_.has_value() && *published_ == verdict) return;
  grpc::HealthCheckServiceInterface* service = server_->GetHealthCheckService();
  // Readiness first: a probe between the two calls never sees the agent not live but ready (a
  // verdict that is not live is never ready).
  service->SetServingStatus(AgentHealth::kReadyService, verdict.ready);
  service->SetServingStatus("", verdict.live);
  const std::string statuses =
      absl::StrCat("live ", verdict.live ? "SERVING" : "NOT_SERVING", ", ready ",
                   verdict.ready ? "SERVING" : "NOT_SERVING", " (", verdict.reason, ")");
  if (verdict.live) {
    Log()->info("health: {}", statuses);
  } else {
    Log()->error("health: {}", statuses);
  }
  published_ = verdict;
}

}  // namespace cohort::agent
