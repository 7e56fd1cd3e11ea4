#include "agent/agent.h"

#include <unistd.h>

#include <algorithm>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/cohort_config.h"
#include "common/logging.h"

namespace cohort::agent {
namespace {

// The join request every attempt of this agent starts from.
v1::JoinRequest JoinTemplate(const AgentOptions& options) {
  v1::JoinRequest request;
  request.set_pool(options.pool);
  request.set_identity(options.identity);
  request.set_incarnation(options.incarnation);
  v1::DeviceInfo* device = request.mutable_device();
  device->set_gpu_index(options.device);
  const DeviceIdentity identity = QueryDeviceIdentity(options.device);
  if (!identity.pci_bus_id.empty()) device->set_pci_bus_id(identity.pci_bus_id);
  if (!identity.gpu_uuid.empty()) device->set_gpu_uuid(identity.gpu_uuid);
  device->set_host_address(options.host_address);
  device->set_hostname(LocalHostname());
  for (const std::string& b : options.backends) request.add_backends(b);
  if (options.rank_hint.has_value()) request.set_rank_hint(*options.rank_hint);
  request.set_agent_version(COHORT_VERSION);
  request.set_nccl_version(CompiledNcclVersion());
  request.set_accepts_rank_runs(true);
  return request;
}

GenerationRunnerOptions RunnerOptions(const AgentOptions& options) {
  GenerationRunnerOptions runner;
  runner.identity = options.identity;
  runner.device = options.device;
  runner.host_address = options.host_address;
  runner.backend_options = options.backend_options;
  runner.allow_checks = options.allow_checks;
  runner.build_step_hook = options.build_step_hook;
  runner.backend_factory = options.backend_factory;
  return runner;
}

}  // namespace

absl::StatusOr<int64_t> SumOverGroup(Communicator& comm, int64_t value) {
  return comm.SumOverGroup(value);
}

Agent::Agent(AgentOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(AgentOptions options) {
  if (options.identity.empty()) {
    std::shared_ptr<IdentityProvider> provider = options.identity_provider;
    if (provider == nullptr) provider = std::make_shared<HostnameDeviceIdentity>(options.device);
    absl::StatusOr<std::string> identity = provider->Identity();
    if (!identity.ok()) {
      return absl::Status(identity.status().code(),
                          absl::StrCat("agent identity: ", identity.status().message()));
    }
    options.identity = *std::move(identity);
  }
  if (options.incarnation.empty()) {
    absl::BitGen gen;
    options.incarnation = absl::StrFormat("%d-%d-%06x", getpid(), absl::ToUnixMillis(absl::Now()),
                                          absl::Uniform<uint32_t>(gen, 0, 1u << 24));
  }
  if (options.backends.empty()) options.backends = CompiledBackends();
  if (options.channel == nullptr) {
    if (absl::Status s =
            options.transport_security.Validate(TransportSecurityOptions::Side::kClient);
        !s.ok()) {
      return s;
    }
  }
  std::unique_ptr<Agent> agent(new Agent(std::move(options)));
  Agent* a = agent.get();
  std::shared_ptr<grpc::Channel> channel = a->options_.channel;
  if (channel == nullptr)
    channel =
        CreateCoordinatorChannel(a->options_.coordinator_address, a->options_.transport_security);
  a->client_ = std::make_unique<CoordinatorClient>(channel, a->options_.rpc_timeout);
  CoordinatorClient* client = a->client_.get();
  a->runner_ = std::make_unique<GenerationRunner>(
      RunnerOptions(a->options_),
      // A plan arrives on the session it belongs to: the current session id names this member.
      [a, client](const std::string& pool, int64_t generation) {
        return std::make_unique<CoordinatorRendezvousStore>(client, pool, generation,
                                                            a->session_->session_id());
      },
      [a](const v1::AgentMessage& message) { a->session_->Send(message); });
  a->timers_ = std::make_unique<TimerQueue>(Clock::Real());
  a->timers_->Start();
  SessionOptions session;
  session.join = JoinTemplate(a->options_);
  session.coordinator_address = a->options_.coordinator_address;
  session.connect_timeout = a->options_.connect_timeout;
  SessionListener* listener = a;  // the private base, reachable here
  a->session_ = std::make_unique<Session>(std::move(session), client, listener, Clock::Real(),
                                          a->timers_.get());
  if (absl::Status s = a->session_->Join(); !s.ok()) return s;
  a->session_->Start();
  a->worker_thread_ = std::thread([a] { a->WorkerLoop(); });
  return agent;
}

Agent::~Agent() { Stop(); }

void Agent::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
  }
  // The session ends first: no abort from the coordinator may race the teardown below, and
  // nothing of this agent's own ending (a build cut short) reaches the coordinator, which sees
  // the session close.
  if (session_ != nullptr) session_->Interrupt();
  // A build in progress would hold the worker until its deadline: cut it short.
  if (runner_ != nullptr) runner_->CancelBuilds("agent stopping");
  if (session_ != nullptr) session_->Stop();
  if (worker_thread_.joinable()) worker_thread_.join();
  if (timers_ != nullptr) timers_->Stop();
  // Orderly teardown of whatever is left, in parallel.
  if (runner_ != nullptr) runner_->ReleaseAll();
}

absl::Status Agent::Leave(const std::string& reason, absl::Duration timeout) {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return absl::FailedPreconditionError("the agent has already stopped");
    leaving_ = true;
  }
  Log()->info("{}: leaving the pool ({}); telling the coordinator", options_.identity, reason);
  const absl::Status told = session_->Leave(reason, timeout);
  if (told.ok()) {
    Log()->info("{}: the coordinator recorded the leave; tearing communicators down",
                options_.identity);
  } else {
    Log()->warn("{}: {}; tearing communicators down all the same", options_.identity,
                std::string(told.message()));
  }
  Stop();
  return told;
}

void Agent::WorkerLoop() {
  while (true) {
    v1::CoordinatorMessage message;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !work_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      message = std::move(work_.front());
      work_.pop_front();
    }
    if (message.has_plan()) runner_->Build(message.plan());
    if (message.has_teardown()) runner_->TearDown(message.teardown());
    if (message.has_check()) runner_->Check(message.check());
  }
}

v1::HeldState Agent::Held() { return runner_->Held(); }

void Agent::OnJoined(const v1::JoinResponse& response) {
  runner_->SetAssignment(response.rank(), response.world_size());
}

void Agent::OnMessage(const v1::CoordinatorMessage& message) {
  switch (message.kind_case()) {
    case v1::CoordinatorMessage::kPlan:
    case v1::CoordinatorMessage::kCheck:
    case v1::CoordinatorMessage::kTeardown: {
      if (message.has_teardown() && message.teardown().abort()) {
        runner_->AbortNow(message.teardown());
      }
      if (message.has_plan()) runner_->NotePlan(message.plan().generation());
      absl::MutexLock lock(&mu_);
      work_.push_back(message);
      break;
    }
    case v1::CoordinatorMessage::kRankAssignment: {
      const int rank = message.rank_assignment().rank();
      runner_->SetRank(rank);
      Log()->info("{}: assigned {}", options_.identity,
                  rank >= 0 ? absl::StrCat("rank ", rank) : std::string("standby"));
      break;
    }
    case v1::CoordinatorMessage::kClosed: {
      bool leaving = false;
      {
        absl::MutexLock lock(&mu_);
        leaving = leaving_;
      }
      if (leaving) {
        Log()->info("{}: {}", options_.identity, message.closed().reason());
      } else {
        Log()->warn("{}: coordinator closed the session: {}", options_.identity,
                    message.closed().reason());
      }
      break;
    }
    default:
      break;
  }
}

int64_t Agent::HeartbeatGeneration() { return runner_->ready_generation(); }

void Agent::AfterHeartbeat() { runner_->ReportGroupStateChanges(); }

void Agent::OnSessionLost(const absl::Status& why) {
  v1::Teardown abort;
  abort.set_scope(v1::DESTROY_SCOPE_ALL);
  abort.set_abort(true);
  abort.set_reason(absl::StrCat("coordinator unreachable: ", why.message()));
  abort.set_generation(runner_->current_generation());
  runner_->AbortNow(abort);
  runner_->TearDown(abort);
}

void Agent::OnSessionOver(const absl::Status& why) {
  runner_->SessionEnded(why);
  absl::MutexLock lock(&mu_);
  stopping_ = true;
}

int Agent::rank() const { return runner_->rank(); }

int Agent::world_size() const { return runner_->world_size(); }

int Agent::HeldCommunicators() const { return runner_->HeldCommunicators(); }

std::shared_ptr<const GroupMap> Agent::groups() const { return runner_->groups(); }

void Agent::OnAbort(std::function<void(const absl::Status&)> callback) {
  runner_->OnAbort(std::move(callback));
}

absl::Status Agent::generation_status() const { return runner_->generation_status(); }

absl::StatusOr<int64_t> Agent::WaitForReady(absl::Duration timeout, int64_t min_generation) {
  return runner_->WaitForReady(timeout, min_generation);
}

absl::Status Agent::WaitForTeardown(absl::Duration timeout, int64_t generation, bool world_too) {
  return runner_->WaitForTeardown(timeout, generation, world_too);
}

absl::Status Agent::Wait() { return session_->Wait(); }

AgentObservation Agent::Observe() const {
  AgentObservation seen;
  {
    // Nothing to read here: taking the lock is the check (the worker and the session thread
    // take it for every message).
    absl::MutexLock lock(&mu_);
  }
  seen.session = session_->state();
  seen.rank = runner_->rank();
  seen.ready_generation = runner_->ready_generation();
  return seen;
}

}  // namespace cohort::agent
