// Aborts racing a build, with in-process agents (Gloo, loopback) against an in-process
// coordinator: an abort that lands at any step of a build (waiting on the rendezvous store too)
// ends that generation on the agent (no crash, no hang, nothing of it kept) and the next
// generation becomes READY. And every teardown reports the communicators it released
// (TeardownReport.groups).
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/layout_proto.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/client_interceptor.h"
#include "tests/inprocess_pool.h"

namespace cohort::testing {
namespace {

constexpr int kWorld = 4;
constexpr int kVictim = kWorld - 1;
const ParallelConfig kConfig{
    .world_size = kWorld, .data_parallel_size = 2, .tensor_parallel_size = 2};
constexpr absl::Duration kWait = absl::Seconds(30);
// A hung agent (e.g. a lock taken twice by one thread: every later call blocks on it) must fail
// the test, not stall it until the harness gives up.
constexpr absl::Duration kWatchdog = absl::Seconds(120);

v1::InitializeRequest InitRequest(const ParallelConfig& config) {
  v1::InitializeRequest init;
  *init.mutable_config() = ToProto(config);
  return init;
}

// Aborts the process with a message if the test is still running at the deadline.
class Watchdog {
 public:
  explicit Watchdog(std::string what)
      : thread_([this, what = std::move(what)] {
          if (!done_.WaitForNotificationWithTimeout(kWatchdog)) {
            std::fprintf(stderr, "watchdog: %s still running after %s: an agent hangs\n",
                         what.c_str(), absl::FormatDuration(kWatchdog).c_str());
            std::abort();
          }
        }) {}
  ~Watchdog() {
    done_.Notify();
    thread_.join();
  }

 private:
  absl::Notification done_;
  std::thread thread_;
};

// Counts one agent's aborts (its OnAbort callback).
class AbortCounter {
 public:
  void Add() {
    absl::MutexLock lock(&mu_);
    ++n_;
  }
  bool AwaitAtLeast(int n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return n_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }

 private:
  absl::Mutex mu_;
  int n_ ABSL_GUARDED_BY(mu_) = 0;
};

struct StepCase {
  std::string name;
  // The build step of rank 0 (AgentOptions::build_step_hook) at which the abort lands.
  std::string step;
  // Match every step starting with `step` (the backend's "connected <kind>/<index>", except the
  // world's, which is not between group kinds).
  bool prefix = false;
};

void PrintTo(const StepCase& c, std::ostream* os) { *os << c.name; }

bool Matches(const StepCase& c, std::string_view step) {
  const std::string s(step);  // Debian's absl::string_view is not std::string_view
  if (!c.prefix) return s == c.step;
  return absl::StartsWith(s, c.step) && !absl::StartsWith(s, "connected world");
}

class AbortDuringBuildTest : public InProcessPoolTest,
                             public ::testing::WithParamInterface<StepCase> {
 protected:
  void SetUp() override {
    // Debug builds: a lock taken twice by one thread aborts at once (Release builds hang; the
    // watchdog catches that).
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kAbort);
    InProcessPoolTest::SetUp();
  }
  void TearDown() override {
    if (victim_stop_.joinable()) victim_stop_.join();
    InProcessPoolTest::TearDown();
  }

  std::thread victim_stop_;
  // The hook's state lives as long as the agents (they are stopped in TearDown).
  AbortCounter rank0_aborts_;
  absl::Mutex hook_mu_;
  bool fired_ ABSL_GUARDED_BY(hook_mu_) = false;
  bool injected_ ABSL_GUARDED_BY(hook_mu_) = false;
};

TEST_P(AbortDuringBuildTest, NoCrashNoHang_GenerationFailed_NothingKept_NextGenerationReady) {
  const StepCase& c = GetParam();
  Watchdog watchdog(c.name);
  // Rank 0's hook: at the chosen step of the first build, the victim leaves (its session closes,
  // as with kill -9), so the coordinator fails the generation and tells every survivor to abort.
  // The hook returns once rank 0's abort has landed: the build resumes with the abort behind it.
  auto hook = [this, &c](std::string_view step) {
    {
      absl::MutexLock lock(&hook_mu_);
      if (fired_ || !Matches(c, step)) return;
      fired_ = true;
    }
    victim_stop_ = std::thread([this] { agents_[kVictim]->Stop(); });
    EXPECT_TRUE(rank0_aborts_.AwaitAtLeast(1, kWait)) << "no abort reached rank 0 at " << step;
    absl::MutexLock lock(&hook_mu_);
    injected_ = true;
  };
  StartAgents(kWorld, [&](int r, agent::AgentOptions& options) {
    if (r == 0) options.build_step_hook = hook;
  });
  ASSERT_EQ(agents_.size(), static_cast<size_t>(kWorld));
  agent::Agent& rank0 = *agents_[0];
  rank0.OnAbort([this](const absl::Status&) { rank0_aborts_.Add(); });

  ASSERT_TRUE(client_->Initialize(InitRequest(kConfig)).ok());
  {
    absl::MutexLock lock(&hook_mu_);
    ASSERT_TRUE(hook_mu_.AwaitWithTimeout(absl::Condition(&injected_), kWait))
        << "rank 0 never reached step '" << c.step << "'";
  }

  // Generation 1 failed on rank 0 with the abort, whatever step it was at.
  absl::StatusOr<int64_t> ready = rank0.WaitForReady(kWait, 1);
  ASSERT_FALSE(ready.ok()) << "rank 0 declared generation " << *ready
                           << " READY after the coordinator aborted it";
  EXPECT_EQ(ready.status().code(), absl::StatusCode::kAborted) << ready.status();
  EXPECT_EQ(rank0.generation_status().code(), absl::StatusCode::kAborted)
      << rank0.generation_status();
  // It tore everything of generation 1 down and holds nothing of it.
  ASSERT_TRUE(rank0.WaitForTeardown(kWait, 1, /*world_too=*/true).ok());
  EXPECT_EQ(rank0.HeldCommunicators(), 0);
  EXPECT_EQ(rank0.groups(), nullptr);

  // The victim comes back (a restarted process, same identity): the next generation is built.
  victim_stop_.join();
  absl::StatusOr<std::unique_ptr<agent::Agent>> back = StartAgent(kVictim);
  ASSERT_TRUE(back.ok()) << back.status();
  agents_[kVictim] = *std::move(back);
  for (int r = 0; r < kWorld; ++r) {
    absl::StatusOr<int64_t> next = agents_[r]->WaitForReady(kWait, 2);
    ASSERT_TRUE(next.ok()) << "rank " << r << ": " << next.status();
  }
  std::shared_ptr<const agent::GroupMap> groups = rank0.groups();
  ASSERT_NE(groups, nullptr);
  EXPECT_GE(groups->generation, 2);
  EXPECT_EQ(rank0.HeldCommunicators(), static_cast<int>(groups->groups.size()));
  EXPECT_TRUE(rank0.generation_status().ok()) << rank0.generation_status();
}

INSTANTIATE_TEST_SUITE_P(
    EveryStep, AbortDuringBuildTest,
    ::testing::Values(StepCase{"BeforeTheWorld", "world"}, StepCase{"BeforeTheGroups", "groups"},
                      StepCase{"BetweenGroupKinds", "connected ", /*prefix=*/true},
                      StepCase{"AfterTheGroupsWereBuilt", "groups built"},
                      StepCase{"DuringVerification", "verify world"},
                      StepCase{"BetweenVerifications", "verify tp"},
                      StepCase{"WhileReportingReady", "report"}),
    [](const ::testing::TestParamInfo<StepCase>& info) { return info.param.name; });

// --- An abort while the build waits on the rendezvous store
// ----------------------------------------

class AbortDuringStoreWaitTest : public InProcessPoolTest {
 protected:
  AbortCounter rank0_aborts_;
  absl::Mutex hook_mu_;
  bool fired_ ABSL_GUARDED_BY(hook_mu_) = false;
};

// A destroy of a pool that is still building tells every member to abort (Teardown{abort}), but
// unlike a lost member it leaves the store's waits to their deadline. Rank 1 waits on the store
// for rank 0's world address, which rank 0 (held at its "world" step until rank 1 waits and the
// abort reached rank 0) never publishes; the generation's deadline is 10 minutes away, so only the
// abort can end that wait in time.
TEST_F(AbortDuringStoreWaitTest, DestroyWhileBuilding_EndsAWaitForAPeerWithTheAbort) {
  Watchdog watchdog("AbortDuringStoreWaitTest");
  auto hook = [this](std::string_view step) {
    {
      absl::MutexLock lock(&hook_mu_);
      if (fired_ || step != "world") return;
      fired_ = true;
    }
    // Rank 1 has published its own address: it waits for rank 0's (or is about to).
    agent::CoordinatorRendezvousStore store(client_.get(), "default", 1);
    EXPECT_TRUE(store.Get("world/0/1", kWait).ok()) << "rank 1 never published its address";
    v1::DestroyRequest destroy;
    destroy.set_scope(v1::DESTROY_SCOPE_ALL);
    EXPECT_TRUE(client_->Destroy(destroy).ok());
    EXPECT_TRUE(rank0_aborts_.AwaitAtLeast(1, kWait)) << "no abort reached rank 0";
  };
  StartAgents(2, [&](int r, agent::AgentOptions& options) {
    if (r == 0) options.build_step_hook = hook;
  });
  ASSERT_EQ(agents_.size(), 2u);
  agents_[0]->OnAbort([this](const absl::Status&) { rank0_aborts_.Add(); });
  const ParallelConfig config{.world_size = 2, .tensor_parallel_size = 2};
  v1::InitializeRequest init = InitRequest(config);
  init.mutable_options()->set_deadline_ms(absl::ToInt64Milliseconds(absl::Minutes(10)));
  ASSERT_TRUE(client_->Initialize(init).ok());

  absl::StatusOr<int64_t> ready = agents_[1]->WaitForReady(kWait, 1);
  ASSERT_FALSE(ready.ok()) << "generation " << *ready << " READY on rank 1";
  EXPECT_EQ(ready.status().code(), absl::StatusCode::kAborted) << ready.status();
  EXPECT_THAT(std::string(ready.status().message()), ::testing::HasSubstr("destroy requested"));
  ASSERT_TRUE(agents_[1]->WaitForTeardown(kWait, 1, /*world_too=*/true).ok());
  EXPECT_EQ(agents_[1]->HeldCommunicators(), 0);

  // The pool was destroyed; the next generation is built.
  ASSERT_TRUE(
      WaitFor([](const v1::PoolState& s) { return s.phase() == v1::POOL_PHASE_DESTROYED; }).ok());
  ASSERT_TRUE(client_->Initialize(InitRequest(config)).ok());
  for (int r = 0; r < 2; ++r) {
    absl::StatusOr<int64_t> next = agents_[r]->WaitForReady(kWait, 2);
    ASSERT_TRUE(next.ok()) << "rank " << r << ": " << next.status();
  }
}

// --- TeardownReport.groups ----------------------------------------------------------------------

// The teardown reports one agent sent on its session stream.
class TeardownRecorder {
 public:
  void Add(const v1::TeardownReport& report) {
    absl::MutexLock lock(&mu_);
    reports_.push_back(report);
  }
  // The report of `generation` and `scope`, waiting for it up to `timeout`.
  std::optional<v1::TeardownReport> Await(int64_t generation, v1::DestroyScope scope,
                                          absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    const v1::TeardownReport* found = nullptr;
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const v1::TeardownReport& r : reports_) {
        if (r.generation() == generation && r.scope() == scope) found = &r;
      }
      return found != nullptr;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&done), timeout)) return std::nullopt;
    return *found;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::TeardownReport> reports_ ABSL_GUARDED_BY(mu_);
};

class RecordingInterceptor final : public grpc::experimental::Interceptor {
 public:
  RecordingInterceptor(TeardownRecorder* recorder, bool session)
      : recorder_(recorder), session_(session) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (session_ && methods->QueryInterceptionHookPoint(
                        grpc::experimental::InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      const auto* message = static_cast<const v1::AgentMessage*>(methods->GetSendMessage());
      if (message != nullptr && message->has_teardown()) recorder_->Add(message->teardown());
    }
    methods->Proceed();
  }

 private:
  TeardownRecorder* const recorder_;
  const bool session_;
};

class RecordingFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit RecordingFactory(TeardownRecorder* recorder) : recorder_(recorder) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* info) override {
    return new RecordingInterceptor(recorder_, absl::EndsWith(info->method(), "/Session"));
  }

 private:
  TeardownRecorder* const recorder_;
};

// "tp/0 rank 1/2" for each communicator of the map (all of them, or all but the world).
std::set<std::string> Describe(const agent::GroupMap& map, bool with_world) {
  std::set<std::string> out;
  for (const auto& [kind, group] : map.groups) {
    if (kind == GroupKind::kWorld && !with_world) continue;
    const agent::Communicator& c = group->comm();
    out.insert(absl::StrCat(GroupKindName(c.kind()), "/", c.group_index(), " rank ", c.rank(), "/",
                            c.size()));
  }
  return out;
}

// The same for a report's groups, each of which must be in `state`.
std::set<std::string> Describe(const v1::TeardownReport& report, v1::CommState state) {
  std::set<std::string> out;
  for (const v1::GroupReport& g : report.groups()) {
    absl::StatusOr<GroupKind> kind = FromProto(g.kind());
    EXPECT_TRUE(kind.ok()) << g.ShortDebugString();
    EXPECT_EQ(g.state(), state) << g.ShortDebugString();
    out.insert(absl::StrCat(kind.ok() ? GroupKindName(*kind) : "?", "/", g.index(), " rank ",
                            g.rank_in_group(), "/", g.size()));
  }
  return out;
}

class TeardownReportTest : public InProcessPoolTest {
 protected:
  TeardownRecorder recorder_;  // outlives the agents, whose channel reports to it
};

TEST_F(TeardownReportTest, ListsEveryCommunicatorReleased_DestroyedOrAborted) {
  Watchdog watchdog("TeardownReportTest");
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<RecordingFactory>(&recorder_));
  std::shared_ptr<grpc::Channel> recorded = grpc::experimental::CreateCustomChannelWithInterceptors(
      server_->address(), grpc::InsecureChannelCredentials(), grpc::ChannelArguments(),
      std::move(factories));
  StartAgents(2, [&](int r, agent::AgentOptions& options) {
    if (r == 0) options.channel = recorded;
  });
  ASSERT_EQ(agents_.size(), 2u);
  const ParallelConfig config{.world_size = 2, .tensor_parallel_size = 2};

  // Generation 1: an orderly model-parallel destroy releases every group but the world.
  ASSERT_TRUE(client_->Initialize(InitRequest(config)).ok());
  // READY at the coordinator too: a destroy before that would abort instead.
  ASSERT_TRUE(WaitFor([](const v1::PoolState& s) {
                return s.phase() == v1::POOL_PHASE_READY && s.generation() == 1;
              }).ok());
  std::shared_ptr<const agent::GroupMap> first = agents_[0]->groups();
  ASSERT_NE(first, nullptr);
  v1::DestroyRequest destroy;
  destroy.set_scope(v1::DESTROY_SCOPE_MODEL_PARALLEL);
  ASSERT_TRUE(client_->Destroy(destroy).ok());
  std::optional<v1::TeardownReport> destroyed =
      recorder_.Await(1, v1::DESTROY_SCOPE_MODEL_PARALLEL, kWait);
  ASSERT_TRUE(destroyed.has_value());
  EXPECT_TRUE(destroyed->ok()) << destroyed->error();
  EXPECT_EQ(Describe(*destroyed, v1::COMM_STATE_DESTROYED), Describe(*first, /*with_world=*/false));
  ASSERT_TRUE(
      WaitFor([](const v1::PoolState& s) { return s.phase() == v1::POOL_PHASE_DESTROYED; }).ok());

  // Generation 2 (the world reused): the peer leaves, and the abort releases everything.
  ASSERT_TRUE(client_->Initialize(InitRequest(config)).ok());
  ASSERT_TRUE(agents_[0]->WaitForReady(kWait, 2).ok());
  std::shared_ptr<const agent::GroupMap> second = agents_[0]->groups();
  ASSERT_NE(second, nullptr);
  agents_[1]->Stop();
  std::optional<v1::TeardownReport> aborted = recorder_.Await(2, v1::DESTROY_SCOPE_ALL, kWait);
  ASSERT_TRUE(aborted.has_value());
  EXPECT_EQ(Describe(*aborted, v1::COMM_STATE_ABORTED), Describe(*second, /*with_world=*/true));
}

}  // namespace
}  // namespace cohort::testing
