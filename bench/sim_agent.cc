#include "bench/sim_agent.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/comm/backend.h"
#include "agent/identity.h"
#include "common/clock.h"
#include "common/cohort_config.h"

namespace cohort::bench {

void SimTracker::Record(Event event, int64_t generation, absl::Time at) {
  absl::MutexLock lock(&mu_);
  times_[{event, generation}].push_back(at);
}

int SimTracker::WaitFor(Event event, int64_t generation, int count, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = times_.find({event, generation});
    return it != times_.end() && static_cast<int>(it->second.size()) >= count;
  };
  mu_.AwaitWithDeadline(absl::Condition(&enough), deadline);
  auto it = times_.find({event, generation});
  return it == times_.end() ? 0 : static_cast<int>(it->second.size());
}

std::vector<absl::Time> SimTracker::Times(Event event, int64_t generation) {
  absl::MutexLock lock(&mu_);
  auto it = times_.find({event, generation});
  return it == times_.end() ? std::vector<absl::Time>() : it->second;
}

void SimTracker::NotePlanBytes(size_t bytes) {
  absl::MutexLock lock(&mu_);
  max_plan_bytes_ = std::max(max_plan_bytes_, bytes);
}

size_t SimTracker::max_plan_bytes() {
  absl::MutexLock lock(&mu_);
  return max_plan_bytes_;
}

namespace {

// As the agent's own join request (agent.cc), for a CPU-only agent offering backend none.
v1::JoinRequest JoinTemplate(const std::string& identity, const std::string& pool, int rank_hint) {
  v1::JoinRequest request;
  request.set_pool(pool);
  request.set_identity(identity);
  request.set_incarnation(absl::StrCat(getpid(), "-", identity));
  v1::DeviceInfo* device = request.mutable_device();
  device->set_gpu_index(-1);
  device->set_host_address("127.0.0.1");
  device->set_hostname(agent::LocalHostname());
  request.add_backends("none");
  if (rank_hint >= 0) request.set_rank_hint(rank_hint);
  request.set_agent_version(COHORT_VERSION);
  request.set_nccl_version(agent::CompiledNcclVersion());
  request.set_accepts_rank_runs(true);
  return request;
}

agent::GenerationRunnerOptions RunnerOptions(const std::string& identity) {
  agent::GenerationRunnerOptions options;
  options.identity = identity;
  options.device = -1;
  return options;
}

}  // namespace

SimAgent::SimAgent(std::string identity, std::string pool, int rank_hint,
                   std::shared_ptr<grpc::Channel> channel, TimerQueue* timers, SimTracker* tracker)
    : tracker_(tracker),
      client_(std::move(channel)),
      runner_(
          RunnerOptions(identity),
          [this](const std::string& p, int64_t generation) {
            return std::make_unique<agent::CoordinatorRendezvousStore>(&client_, p, generation,
                                                                       session_->session_id());
          },
          [this](const v1::AgentMessage& message) { session_->Send(message); }) {
  agent::SessionOptions options;
  options.join = JoinTemplate(identity, pool, rank_hint);
  options.coordinator_address = "bench";
  agent::SessionListener* listener = this;  // the private base, reachable here
  session_ = std::make_unique<agent::Session>(std::move(options), &client_, listener, Clock::Real(),
                                              timers);
}

SimAgent::~SimAgent() { Stop(); }

absl::Status SimAgent::JoinAndStart() {
  if (absl::Status s = session_->Join(); !s.ok()) return s;
  session_->Start();
  return absl::OkStatus();
}

void SimAgent::Kill() { session_->Interrupt(); }

void SimAgent::Stop() {
  session_->Interrupt();
  runner_.CancelBuilds("agent stopping");
  session_->Stop();
  runner_.ReleaseAll();
}

void SimAgent::OnJoined(const v1::JoinResponse& response) {
  runner_.SetAssignment(response.rank(), response.world_size());
}

// Agent::OnMessage and Agent::WorkerLoop in one: the work runs here, in order.
void SimAgent::OnMessage(const v1::CoordinatorMessage& message) {
  const absl::Time now = absl::Now();
  switch (message.kind_case()) {
    case v1::CoordinatorMessage::kPlan: {
      const int64_t generation = message.plan().generation();
      tracker_->Record(SimTracker::Event::kPlan, generation, now);
      tracker_->NotePlanBytes(message.ByteSizeLong());
      runner_.NotePlan(generation);
      runner_.Build(message.plan());
      if (runner_.ready_generation() == generation) {
        tracker_->Record(SimTracker::Event::kReady, generation, absl::Now());
      }
      break;
    }
    case v1::CoordinatorMessage::kTeardown: {
      const v1::Teardown& teardown = message.teardown();
      if (teardown.abort()) {
        tracker_->Record(SimTracker::Event::kAbort, teardown.generation(), now);
        runner_.AbortNow(teardown);
      }
      runner_.TearDown(teardown);
      tracker_->Record(SimTracker::Event::kTornDown, teardown.generation(), absl::Now());
      break;
    }
    case v1::CoordinatorMessage::kCheck:
      runner_.Check(message.check());
      break;
    case v1::CoordinatorMessage::kRankAssignment:
      runner_.SetRank(message.rank_assignment().rank());
      break;
    default:
      break;
  }
}

void SimAgent::OnSessionLost(const absl::Status& why) {
  v1::Teardown abort;
  abort.set_scope(v1::DESTROY_SCOPE_ALL);
  abort.set_abort(true);
  abort.set_reason(absl::StrCat("coordinator unreachable: ", why.message()));
  abort.set_generation(runner_.current_generation());
  runner_.AbortNow(abort);
  runner_.TearDown(abort);
}

}  // namespace cohort::bench
