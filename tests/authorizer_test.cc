// The Caller / Authorizer seam: every entry point asks the Authorizer with the caller, the
// action and the pool before it touches state; a refusal is returned as it is and changes
// nothing. The default allows everything.
#include "coordinator/authorizer.h"

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "common/clock.h"
#include "common/layout_proto.h"
#include "common/timer_queue.h"
#include "coordinator/coordinator.h"
#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

// Records every question; refuses `denied_action` to callers named "intruder".
class RecordingAuthorizer : public Authorizer {
 public:
  explicit RecordingAuthorizer(Action denied_action) : denied_action_(denied_action) {}
  absl::Status Authorize(const Caller& caller, Action action,
                         const std::string& pool) const override {
    absl::MutexLock lock(&mu_);
    asked_.emplace_back(caller.identity, action, pool);
    if (caller.identity == "intruder" && action == denied_action_) {
      return absl::PermissionDeniedError("intruders may not");
    }
    return absl::OkStatus();
  }
  std::vector<std::tuple<std::string, Action, std::string>> asked() const {
    absl::MutexLock lock(&mu_);
    return asked_;
  }

 private:
  const Action denied_action_;
  mutable absl::Mutex mu_;
  mutable std::vector<std::tuple<std::string, Action, std::string>> asked_ ABSL_GUARDED_BY(mu_);
};

class NullSink : public SessionSink {
 public:
  void Send(const v1::CoordinatorMessage&) override {}
  void Close(const absl::Status&) override {}
};

const Caller kIntruder{"intruder", false, "ipv4:10.0.0.9:1234"};
const Caller kOperator{"operator", true, "ipv4:10.0.0.1:1234"};

class AuthorizerTest : public ::testing::Test {
 protected:
  void Build(Action denied) {
    auto authorizer = std::make_shared<RecordingAuthorizer>(denied);
    authorizer_ = authorizer.get();
    CoordinatorOptions options;
    options.authorizer = std::move(authorizer);
    coordinator_ = std::make_unique<Coordinator>(options, &clock_, &timers_);
  }
  v1::JoinRequest JoinOf(const std::string& identity, const std::string& pool = "") {
    v1::JoinRequest request;
    request.set_identity(identity);
    request.set_incarnation("inc-1");
    request.set_pool(pool);
    return request;
  }

  FakeClock clock_;
  TimerQueue timers_{&clock_};
  RecordingAuthorizer* authorizer_ = nullptr;
  std::unique_ptr<Coordinator> coordinator_;
};

TEST_F(AuthorizerTest, Join_AskedWithCallerActionAndPool_RefusalChangesNothing) {
  Build(Action::kJoin);
  EXPECT_EQ(coordinator_->Join(JoinOf("a", "p"), kIntruder).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(coordinator_->GetState("p").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(coordinator_->Join(JoinOf("a", "p"), kOperator).ok());
  const auto asked = authorizer_->asked();
  ASSERT_GE(asked.size(), 2u);
  EXPECT_EQ(asked.front(),
            std::make_tuple(std::string("intruder"), Action::kJoin, std::string("p")));
  EXPECT_EQ(asked.back(),
            std::make_tuple(std::string("operator"), Action::kJoin, std::string("p")));
  EXPECT_EQ(coordinator_->RefusalCounts().at("authorization"), 1);
}

TEST_F(AuthorizerTest, Initialize_Refused_PoolNotCreated_DefaultPoolNamed) {
  Build(Action::kInitialize);
  v1::InitializeRequest request;
  ParallelConfig config;
  config.world_size = 1;
  *request.mutable_config() = ToProto(config);
  EXPECT_EQ(coordinator_->Initialize(request, kIntruder).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(std::get<2>(authorizer_->asked().back()), "default");
  EXPECT_TRUE(coordinator_->ListPools()->empty());
  EXPECT_TRUE(coordinator_->Initialize(request, kOperator).ok());
}

TEST_F(AuthorizerTest, Attach_AskedForJoinOnTheSessionsPool) {
  Build(Action::kJoin);
  absl::StatusOr<v1::JoinResponse> joined = coordinator_->Join(JoinOf("a", "p"), kOperator);
  ASSERT_TRUE(joined.ok());
  NullSink sink;
  EXPECT_EQ(coordinator_->Attach(joined->session_id(), &sink, kIntruder).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(std::get<2>(authorizer_->asked().back()), "p");
  EXPECT_TRUE(coordinator_->Attach(joined->session_id(), &sink, kOperator).ok());
}

TEST_F(AuthorizerTest, Reads_RefusedOrFiltered) {
  Build(Action::kRead);
  ASSERT_TRUE(coordinator_->Join(JoinOf("a", "p"), kOperator).ok());
  EXPECT_EQ(coordinator_->GetState("p", std::nullopt, std::nullopt, kIntruder).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(coordinator_->GetEvents("p", 0, 0, kIntruder).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(coordinator_->ListPools(kIntruder).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(coordinator_->ListPools(kOperator)->size(), 1u);
  std::optional<absl::Status> waited;
  coordinator_->WaitForState(
      "p", 0, clock_.Now() + absl::Seconds(1),
      [&](absl::StatusOr<v1::PoolState> s) { waited = s.status(); }, kIntruder);
  ASSERT_TRUE(waited.has_value());
  EXPECT_EQ(waited->code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(AuthorizerTest, StoreDestroyCheckDelete_AskedWithTheirActions) {
  Build(Action::kDeletePool);
  ASSERT_TRUE(coordinator_->Join(JoinOf("a", "p"), kOperator).ok());
  v1::KvSetRequest set;
  set.set_pool("p");
  set.add_entries()->set_key("k");
  (void)coordinator_->KvSet(set, kOperator);
  v1::DestroyRequest destroy;
  destroy.set_pool("p");
  (void)coordinator_->Destroy(destroy, kOperator);
  v1::CheckRequest check;
  check.set_pool("p");
  (void)coordinator_->Check(check, kOperator);
  EXPECT_EQ(coordinator_->DeletePool("p", true, kIntruder).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(coordinator_->GetState("p").ok());  // still there
  std::vector<Action> actions;
  for (const auto& [who, action, pool] : authorizer_->asked()) actions.push_back(action);
  EXPECT_THAT(actions, ::testing::IsSupersetOf({Action::kStore, Action::kDestroy, Action::kCheck,
                                                Action::kDeletePool}));
}

TEST(AllowAll, AllowsEveryoneEverything) {
  AllowAll allow;
  EXPECT_TRUE(allow.Authorize(kIntruder, Action::kDeletePool, "p").ok());
  EXPECT_TRUE(allow.Authorize(Caller::InProcess(), Action::kInitialize, "").ok());
  EXPECT_EQ(ActionName(Action::kDeletePool), "delete-pool");
}

}  // namespace
}  // namespace cohort::coordinator
