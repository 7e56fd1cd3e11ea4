#include "agent/generation_runner.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/generation_protos.h"
#include "common/logging.h"

namespace cohort::agent {
namespace {

int64_t Micros(absl::Duration d) { return absl::ToInt64Microseconds(d); }

}  // namespace

GenerationRunner::GenerationRunner(GenerationRunnerOptions options, StoreFactory stores,
                                   SendFn send)
    : options_(std::move(options)), stores_(std::move(stores)), send_(std::move(send)) {}

GenerationRunner::~GenerationRunner() {
  CancelBuilds("agent stopping");
  ReleaseAll();
}

absl::StatusOr<Backend*> GenerationRunner::GetBackend(const std::string& name, v1::InitMode mode) {
  absl::MutexLock lock(&backends_mu_);
  const std::string key = absl::StrCat(name, "/", v1::InitMode_Name(mode));
  auto it = backends_.find(key);
  if (it != backends_.end()) return it->second.get();
  BackendOptions options = options_.backend_options;
  options.gloo_host = options_.host_address;
  options.build_step_hook = options_.build_step_hook;
  options.nccl_group_mode = mode == v1::INIT_MODE_PER_GROUP_ID ? NcclGroupMode::kPerGroupUniqueId
                                                               : NcclGroupMode::kSplitFromWorld;
  absl::StatusOr<std::unique_ptr<Backend>> backend = options_.backend_factory
                                                         ? options_.backend_factory(name, options)
                                                         : MakeBackend(name, options);
  if (!backend.ok()) return backend.status();
  Backend* raw = backend->get();
  backends_[key] = *std::move(backend);
  return raw;
}

absl::Status GenerationRunner::Release(const std::vector<std::shared_ptr<Communicator>>& comms,
                                       bool abort) {
  if (comms.empty()) return absl::OkStatus();
  std::vector<Communicator*> raw;
  for (const auto& c : comms) raw.push_back(c.get());
  absl::StatusOr<Backend*> backend = GetBackend(std::string(comms.front()->backend_name()));
  if (!backend.ok()) return backend.status();
  return (*backend)->DestroyAll(raw, abort).status;
}

void GenerationRunner::Build(const v1::Plan& plan) {
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + absl::Milliseconds(plan.deadline_ms());
  const int64_t generation = plan.generation();
  v1::AgentMessage out;
  v1::GenerationReport* report = out.mutable_report();
  report->set_generation(generation);

  std::shared_ptr<Communicator> world;
  bool reuse = false;
  {
    absl::MutexLock lock(&mu_);
    rank_ = plan.rank();
    world_size_ = plan.world_size();
    building_generation_ = generation;
    abort_building_ = false;
    reuse = plan.reuse_world() && world_ != nullptr &&
            world_generation_ == plan.reuse_world_generation() &&
            world_backend_ == plan.backend() && world_->state() == CommState::kReady;
    if (reuse) world = world_;
  }
  // Whether the coordinator aborted this build since it started (AbortNow cancelled it), or
  // aborted this generation before it started.
  auto aborted = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return abort_building_ || aborted_generation_ >= generation ||
           latest_plan_generation_ > generation;
  };
  // Reports the failure and releases `built` (the communicators of this build, published or
  // not). Must be called without mu_ held: it takes it.
  auto fail = [&](const std::string& error, std::vector<std::shared_ptr<Communicator>> built) {
    Log()->error("{}: generation {} failed: {}", options_.identity, generation, error);
    {
      // Unpublish first, so that nothing else hands them out while they are released.
      absl::MutexLock lock(&mu_);
      auto is_built = [&built](const std::shared_ptr<Communicator>& c) {
        return std::find(built.begin(), built.end(), c) != built.end();
      };
      groups_comms_.erase(std::remove_if(groups_comms_.begin(), groups_comms_.end(), is_built),
                          groups_comms_.end());
      if (world_ != nullptr && is_built(world_)) world_.reset();
    }
    report->set_ok(false);
    report->set_error(error);
    report->set_total_us(Micros(absl::Now() - start));
    if (!built.empty()) {
      std::vector<Communicator*> raw;
      for (auto& c : built) raw.push_back(c.get());
      absl::StatusOr<Backend*> b = GetBackend(plan.backend(), plan.init_mode());
      if (b.ok()) (*b)->DestroyAll(raw, /*abort=*/true);
    }
    {
      absl::MutexLock lock(&mu_);
      failed_[generation] = absl::AbortedError(error);
    }
    Send(out);
  };

  absl::StatusOr<Backend*> backend = GetBackend(plan.backend(), plan.init_mode());
  if (!backend.ok()) return fail(std::string(backend.status().message()), {});
  std::unique_ptr<RendezvousStore> store = stores_(plan.pool(), generation);
  // Unregisters the store (under mu_) before it goes away, whichever way the build ends.
  struct StoreRegistration {
    GenerationRunner* runner;
    ~StoreRegistration() {
      absl::MutexLock lock(&runner->mu_);
      runner->building_store_ = nullptr;
    }
  } registration{this};
  {
    absl::MutexLock lock(&mu_);
    if (aborted_generation_ >= generation) {
      Log()->info("{}: generation {} was aborted before it started; not building it",
                  options_.identity, generation);
      return;
    }
    if (latest_plan_generation_ > generation) {
      Log()->info(
          "{}: generation {} was superseded by generation {} before it started; not "
          "building it",
          options_.identity, generation, latest_plan_generation_);
      failed_[generation] =
          absl::AbortedError(absl::StrCat("superseded by generation ", latest_plan_generation_));
      return;
    }
    (*backend)->ResumeBuilds();
    building_store_ = store.get();  // an abort from here on ends its waits
  }

  auto progress = [&](const std::string& phase, int done, int total) {
    v1::AgentMessage p;
    p.mutable_progress()->set_generation(generation);
    p.mutable_progress()->set_phase(phase);
    p.mutable_progress()->set_groups_done(done);
    p.mutable_progress()->set_groups_total(total);
    Send(p);
  };
  const int total_groups = plan.layout().group_sets_size();

  if (!reuse) {
    // A world left from an earlier generation cannot serve this one.
    std::shared_ptr<Communicator> old;
    {
      absl::MutexLock lock(&mu_);
      old = std::move(world_);
    }
    if (old != nullptr) (*backend)->DestroyAll({old.get()}, /*abort=*/false);
    WorldSpec spec;
    spec.rank = plan.rank();
    spec.world_size = plan.world_size();
    spec.device_index = std::max(0, options_.device);
    progress("world", 0, total_groups);
    Step("world");
    absl::StatusOr<std::unique_ptr<Communicator>> created =
        (*backend)->CreateWorld(spec, *store, deadline);
    if (!created.ok()) return fail(absl::StrCat("world: ", created.status().message()), {});
    world = std::shared_ptr<Communicator>(*std::move(created));
    bool was_aborted = false;
    {
      absl::MutexLock lock(&mu_);
      was_aborted = aborted();
      if (!was_aborted) {
        world_ = world;  // visible to AbortNow from here on
        world_generation_ = generation;
        world_backend_ = plan.backend();
      }
    }
    // An abort that came while the world was forming did not see it: release it here.
    if (was_aborted) return fail("aborted by the coordinator while building the world", {world});
  }

  absl::StatusOr<std::vector<GroupSpec>> requests = GroupRequests(plan);
  if (!requests.ok()) return fail(std::string(requests.status().message()), {world});
  progress("groups", 1, total_groups);
  Step("groups");
  absl::StatusOr<agent::GroupSet> built =
      (*backend)->CreateGroups(*world, *requests, *store, deadline);
  if (!built.ok()) return fail(absl::StrCat("groups: ", built.status().message()), {world});

  Step("groups built");
  std::vector<std::shared_ptr<Communicator>> comms;
  for (auto& c : built->comms) comms.emplace_back(std::move(c));
  bool was_aborted = false;
  {
    absl::MutexLock lock(&mu_);
    was_aborted = aborted();
    if (!was_aborted) groups_comms_ = comms;  // visible to AbortNow from here on
  }
  // An abort that came while the groups were forming did not see them: release them here (fail
  // takes mu_, so not under it).
  if (was_aborted) {
    comms.push_back(world);
    return fail("aborted by the coordinator while building the groups", comms);
  }
  // Verification: every group all-reduces the global rank; the sum must match the layout. A
  // backend without a data plane (none) has nothing to verify.
  std::vector<std::shared_ptr<Communicator>> all = {world};
  all.insert(all.end(), comms.begin(), comms.end());
  const bool verify = plan.verify() && (*backend)->has_data_plane();
  if (verify) progress("verifying", total_groups, total_groups);
  for (const auto& comm : all) {
    v1::GroupReport* g = AddGroupReport(*comm, report->mutable_groups());
    if (comm->kind() == GroupKind::kWorld && reuse) g->set_create_us(0);  // not built this time
    if (verify) {
      Step(absl::StrCat("verify ", GroupKindName(comm->kind())));
      const absl::Time v0 = absl::Now();
      absl::StatusOr<int64_t> sum = comm->SumOverGroup(plan.rank());
      g->set_verify_us(Micros(absl::Now() - v0));
      const int64_t expected = ExpectedSum(*comm);
      if (!sum.ok() || *sum != expected) {
        const std::string error =
            !sum.ok() ? absl::StrCat("verifying ", GroupKindName(comm->kind()), " group ",
                                     comm->group_index(), ": ", sum.status().message())
                      : absl::StrCat("verification of ", GroupKindName(comm->kind()), " group ",
                                     comm->group_index(), " summed ", *sum, ", expected ", expected,
                                     ": the communicator does not match the layout");
        g->set_state(v1::COMM_STATE_ERROR);
        g->set_error(error);
        return fail(error, all);
      }
      g->set_verify_sum(*sum);
    }
    g->set_state(v1::COMM_STATE_READY);
  }
  auto map = std::make_shared<GroupMap>();
  map->generation = generation;
  map->rank = plan.rank();
  map->world_size = plan.world_size();
  for (const auto& comm : all) map->groups[comm->kind()] = std::make_shared<Group>(comm);
  Step("report");
  report->set_ok(true);
  report->set_total_us(Micros(absl::Now() - start));
  {
    absl::MutexLock lock(&mu_);
    // An abort that came after the last verification (or with verification off) has interrupted
    // the communicators: the generation is not READY, whatever the checks said.
    was_aborted = aborted();
    if (!was_aborted) {
      groups_ = map;
      ready_generation_ = generation;
      ready_plan_ = plan;
      ready_report_ = *report;
      generation_status_ = absl::OkStatus();
    }
  }
  if (was_aborted) return fail("aborted by the coordinator while reporting READY", all);
  Log()->info("{}: generation {} READY as rank {} in {} ms ({} groups)", options_.identity,
              generation, plan.rank(), absl::ToInt64Milliseconds(absl::Now() - start), all.size());
  Send(out);
}

void GenerationRunner::TearDown(const v1::Teardown& teardown) {
  const absl::Time start = absl::Now();
  const bool everything = teardown.scope() == v1::DESTROY_SCOPE_ALL;
  std::vector<std::shared_ptr<Communicator>> comms;
  {
    absl::MutexLock lock(&mu_);
    comms = std::move(groups_comms_);
    groups_comms_.clear();
    if (everything && world_ != nullptr) {
      comms.push_back(std::move(world_));
      world_.reset();
    }
    groups_.reset();
  }
  v1::AgentMessage out;
  v1::TeardownReport* r = out.mutable_teardown();
  r->set_generation(teardown.generation());
  r->set_scope(teardown.scope());
  for (const auto& c : comms) {
    AddGroupReport(*c, r->mutable_groups())
        ->set_state(teardown.abort() ? v1::COMM_STATE_ABORTED : v1::COMM_STATE_DESTROYED);
  }
  auto mark_torn_down = [&] {
    absl::MutexLock lock(&mu_);
    torn_down_generation_ = std::max(torn_down_generation_, teardown.generation());
    if (everything) world_torn_down_ = true;
    if (teardown.abort()) {
      failed_[teardown.generation()] = absl::AbortedError(teardown.reason());
    }
  };
  absl::Status status;
  if (teardown.abort()) {
    // The coordinator waits for every survivor's report before it moves on: report as soon as
    // every communicator is interrupted (AbortNow did that already; again here for any that it
    // did not see), and free them after, which is the slow part (closing sockets, ncclCommAbort).
    std::vector<std::thread> interrupts;
    for (auto& c : comms) {
      if (c->state() != CommState::kAborted && c->state() != CommState::kDestroyed) {
        interrupts.emplace_back([c] { c->AbortOps(); });
      }
    }
    for (auto& t : interrupts) t.join();
    r->set_ok(true);  // aborting is allowed to leave errors behind
    r->set_teardown_us(Micros(absl::Now() - start));
    mark_torn_down();
    Send(out);
    status = Release(comms, /*abort=*/true);
  } else {
    status = Release(comms, /*abort=*/false);
    mark_torn_down();
    // An orderly destroy must not leave errors behind.
    r->set_ok(status.ok());
    r->set_error(std::string(status.message()));
    r->set_teardown_us(Micros(absl::Now() - start));
    Send(out);
  }
  Log()->info("{}: {} {} communicators of generation {} in {} ms{}", options_.identity,
              teardown.abort() ? "aborted" : "destroyed", comms.size(), teardown.generation(),
              absl::ToInt64Milliseconds(absl::Now() - start),
              status.ok() ? "" : absl::StrCat(" (", status.message(), ")"));
}

void GenerationRunner::Check(const v1::Check& check) {
  std::shared_ptr<const GroupMap> groups;
  {
    absl::MutexLock lock(&mu_);
    groups = groups_;
  }
  v1::AgentMessage out;
  v1::GroupStates* states = out.mutable_group_states();
  states->set_generation(check.generation());
  if (groups == nullptr || groups->generation != check.generation()) {
    Send(out);  // nothing of that generation here: an empty answer says so
    return;
  }
  for (const auto& [kind, group] : groups->groups) {
    Communicator& comm = group->comm();
    v1::GroupReport* g = AddGroupReport(comm, states->mutable_groups());
    if (!options_.allow_checks) {
      g->set_state(ToProto(comm.state()));
      g->set_error(
          "check refused: the engine embedding this agent does not allow checks on the "
          "communicators it uses (AgentOptions::allow_checks)");
      continue;
    }
    const absl::Time v0 = absl::Now();
    if (!comm.has_data_plane()) {
      // Nothing to all-reduce over (backend none): the group is as READY as it can be.
      g->set_verify_us(Micros(absl::Now() - v0));
      g->set_state(v1::COMM_STATE_READY);
      continue;
    }
    absl::StatusOr<int64_t> sum = comm.SumOverGroup(groups->rank);
    g->set_verify_us(Micros(absl::Now() - v0));
    const int64_t expected = ExpectedSum(comm);
    if (sum.ok() && *sum == expected) {
      g->set_state(v1::COMM_STATE_READY);
      g->set_verify_sum(*sum);
    } else {
      g->set_state(comm.state() == CommState::kAborted ? v1::COMM_STATE_ABORTED
                                                       : v1::COMM_STATE_ERROR);
      g->set_error(sum.ok() ? absl::StrCat("check summed ", *sum, ", expected ", expected)
                            : std::string(sum.status().message()));
      g->set_async_error(std::string(comm.last_error().message()));
    }
  }
  Send(out);
}

void GenerationRunner::ReleaseAll() {
  // Orderly teardown of whatever is left, in parallel.
  std::vector<std::shared_ptr<Communicator>> comms;
  {
    absl::MutexLock lock(&mu_);
    comms = groups_comms_;
    if (world_ != nullptr) comms.push_back(world_);
    groups_comms_.clear();
    world_.reset();
    groups_.reset();
  }
  (void)Release(comms, /*abort=*/false);
}

void GenerationRunner::AbortNow(const v1::Teardown& teardown) {
  std::vector<std::shared_ptr<Communicator>> comms;
  std::vector<std::function<void(const absl::Status&)>> callbacks;
  {
    absl::MutexLock lock(&mu_);
    abort_building_ = true;
    aborted_generation_ = std::max(aborted_generation_, teardown.generation());
    comms = groups_comms_;
    if (world_ != nullptr) comms.push_back(world_);
    callbacks = abort_callbacks_;
    // A build in progress may be waiting on a peer that is gone: cut it short (under mu_, so
    // a build starting now either sees aborted_generation_ or is cancelled).
    CancelBuildLocked(teardown.reason());
  }
  // AbortOps() interrupts blocked operations (safe while they run) and returns; the worker
  // reports the abort, then releases the communicators (TearDown), which is the slow part
  // (ncclCommAbort). One thread per communicator, so that a failure reaches every group at once
  // (AbortOps waits for a release already under way); none where a release never waits.
  std::vector<std::thread> aborts;
  aborts.reserve(comms.size());
  for (auto& c : comms) {
    if (c->release_waits()) {
      aborts.emplace_back([c] { c->AbortOps(); });
    } else {
      c->AbortOps();
    }
  }
  for (auto& t : aborts) t.join();
  const absl::Status why = absl::AbortedError(teardown.reason());
  {
    absl::MutexLock lock(&mu_);
    generation_status_ = why;
  }
  for (auto& cb : callbacks) cb(why);
}

void GenerationRunner::NotePlan(int64_t generation) {
  absl::MutexLock lock(&mu_);
  if (generation <= latest_plan_generation_) return;
  latest_plan_generation_ = generation;
  // A plan for a newer generation means the coordinator gave up the one being built (e.g. a
  // restarted coordinator that could not restore it): its peers may have given it up too, and a
  // connect waiting for them would hold this agent until the old deadline. Cancelling when no
  // build runs is harmless: the next build resumes first.
  if (building_generation_ < latest_plan_generation_) {
    CancelBuildLocked(absl::StrCat("generation ", building_generation_,
                                   " superseded by generation ", latest_plan_generation_));
  }
}

void GenerationRunner::CancelBuilds(const std::string& reason) {
  absl::MutexLock lock(&mu_);
  CancelBuildLocked(reason);
}

void GenerationRunner::CancelBuildLocked(const std::string& reason) {
  {
    absl::MutexLock backends_lock(&backends_mu_);
    for (auto& [name, backend] : backends_) backend->CancelBuilds(reason);
  }
  // After the backends: a store wait that ends now finds its backend cancelled already, and the
  // build ends with the cancel, not with a store error.
  if (building_store_ != nullptr) building_store_->Cancel(absl::AbortedError(reason));
}

void GenerationRunner::ReportGroupStateChanges() {
  std::shared_ptr<const GroupMap> groups;
  {
    absl::MutexLock lock(&mu_);
    groups = groups_;
  }
  if (groups == nullptr) return;
  v1::AgentMessage out;
  v1::GroupStates* states = out.mutable_group_states();
  states->set_generation(groups->generation);
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [kind, group] : groups->groups) {
      const Communicator& comm = group->comm();
      const absl::Status async = comm.AsyncError();
      // An asynchronous error makes a ready communicator an errored one for inspection.
      const CommState now =
          comm.state() == CommState::kReady && !async.ok() ? CommState::kError : comm.state();
      const auto key = std::make_pair(groups->generation, static_cast<int>(kind));
      auto it = reported_states_.find(key);
      if (it != reported_states_.end() ? it->second == now : now == CommState::kReady) continue;
      reported_states_[key] = now;
      v1::GroupReport* g = AddGroupReport(comm, states->mutable_groups());
      g->set_state(ToProto(now));
      g->set_async_error(std::string(!async.ok() ? async.message() : comm.last_error().message()));
    }
  }
  // Only changes go out: a quiet pool costs one heartbeat per interval and nothing more.
  if (states->groups_size() > 0) Send(out);
}

v1::HeldState GenerationRunner::Held() const {
  absl::MutexLock lock(&mu_);
  v1::HeldState held;
  if (world_ == nullptr) return held;
  held.set_holding(true);
  // The world it holds, not the assignment of its last join: a coordinator that restarted
  // without a state file answers that join before it knows the world (world_size 0), and the
  // next coordinator refused a held world of 0 (two restarts in a row made every agent exit).
  held.set_rank(world_->rank());
  held.set_world_size(world_->size());
  held.set_generation(groups_ != nullptr ? ready_generation_ : world_generation_);
  *held.mutable_config() = ready_plan_.config();
  held.set_backend(world_backend_);
  held.set_init_mode(ready_plan_.init_mode());
  held.set_world_only(groups_ == nullptr);
  if (groups_ != nullptr) *held.mutable_groups() = ready_report_.groups();
  return held;
}

void GenerationRunner::SetAssignment(int rank, int world_size) {
  absl::MutexLock lock(&mu_);
  rank_ = rank;
  world_size_ = world_size;
}

void GenerationRunner::SetRank(int rank) {
  absl::MutexLock lock(&mu_);
  rank_ = rank;
}

int GenerationRunner::rank() const {
  absl::MutexLock lock(&mu_);
  return rank_;
}

int GenerationRunner::world_size() const {
  absl::MutexLock lock(&mu_);
  return world_size_;
}

int64_t GenerationRunner::ready_generation() const {
  absl::MutexLock lock(&mu_);
  return ready_generation_;
}

int64_t GenerationRunner::current_generation() const {
  absl::MutexLock lock(&mu_);
  return std::max(building_generation_, ready_generation_);
}

void GenerationRunner::SessionEnded(absl::Status why) {
  absl::MutexLock lock(&mu_);
  session_over_ = true;
  session_end_ = std::move(why);
}

int GenerationRunner::HeldCommunicators() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(groups_comms_.size()) + (world_ != nullptr ? 1 : 0);
}

std::shared_ptr<const GroupMap> GenerationRunner::groups() const {
  absl::MutexLock lock(&mu_);
  return groups_;
}

void GenerationRunner::OnAbort(std::function<void(const absl::Status&)> callback) {
  absl::MutexLock lock(&mu_);
  abort_callbacks_.push_back(std::move(callback));
}

absl::Status GenerationRunner::generation_status() const {
  absl::MutexLock lock(&mu_);
  return generation_status_;
}

absl::StatusOr<int64_t> GenerationRunner::WaitForReady(absl::Duration timeout,
                                                       int64_t min_generation) {
  absl::MutexLock lock(&mu_);
  auto done = [this, min_generation]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return ready_generation_ >= min_generation ||
           failed_.lower_bound(min_generation) != failed_.end() || session_over_;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&done), timeout)) {
    return absl::DeadlineExceededError(absl::StrCat("no generation >= ", min_generation,
                                                    " became READY within ",
                                                    absl::FormatDuration(timeout)));
  }
  if (ready_generation_ >= min_generation) return ready_generation_;
  auto failed = failed_.lower_bound(min_generation);
  if (failed != failed_.end()) return failed->second;
  return session_end_.ok() ? absl::UnavailableError("session ended") : session_end_;
}

absl::Status GenerationRunner::WaitForTeardown(absl::Duration timeout, int64_t generation,
                                               bool world_too) {
  absl::MutexLock lock(&mu_);
  auto done = [this, generation, world_too]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return torn_down_generation_ >= generation && (!world_too || world_torn_down_);
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&done), timeout)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "generation ", generation, " was not torn down within ", absl::FormatDuration(timeout)));
  }
  return absl::OkStatus();
}

}  // namespace cohort::agent
