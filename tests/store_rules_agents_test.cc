// Real agents (in process, Gloo, over gRPC) against a coordinator that requires a session in
// every store call: the agents send their session id, every key they write is their own rank's
// and every key they read is of their groups (otherwise the build would fail), the pool reaches
// READY, and inspection lists the key names.
#include <memory>

#include "common/layout_proto.h"
#include "coordinator/policy.h"
#include "coordinator/store_access.h"
#include "gmock/gmock.h"
#include "tests/inprocess_pool.h"

namespace cohort::testing {
namespace {

// Allows every action (there is no TLS here to prove identities) but enforces the store's
// rules on every remote store call, as a coordinator with a policy does.
class StoreSessionRequired final : public coordinator::Authorizer {
 public:
  absl::Status Authorize(const coordinator::Caller&, coordinator::Action,
                         const std::string&) const override {
    return absl::OkStatus();
  }
  bool RequiresStoreSession() const override { return true; }
};

class StoreRulesAgentsTest : public InProcessPoolTest {
 protected:
  coordinator::ServerOptions ServerOptionsForTest() const override {
    coordinator::ServerOptions options;
    options.coordinator.authorizer = std::make_shared<StoreSessionRequired>();
    return options;
  }
};

TEST_F(StoreRulesAgentsTest, GlooPoolOfFour_AgentsKeysFitTheOwnershipRules) {
  StartAgents(4);
  const ParallelConfig config{.world_size = 4, .data_parallel_size = 2, .tensor_parallel_size = 2};
  v1::InitializeRequest init;
  *init.mutable_config() = ToProto(config);
  init.mutable_options()->set_backend("gloo");
  ASSERT_TRUE(client_->Initialize(init).ok());
  absl::StatusOr<v1::PoolState> ready = WaitFor([](const v1::PoolState& s) {
    return s.phase() == v1::POOL_PHASE_READY || s.phase() == v1::POOL_PHASE_FAILED;
  });
  ASSERT_TRUE(ready.ok()) << ready.status();
  ASSERT_EQ(ready->phase(), v1::POOL_PHASE_READY) << ready->error();
  EXPECT_TRUE(server_->coordinator().AccessDenials().empty());

  // Every key the agents wrote fits the scheme; the world's and the tp groups' are there.
  absl::StatusOr<v1::PoolState> state = client_->GetState("default");
  ASSERT_TRUE(state.ok()) << state.status();
  absl::StatusOr<Layout> layout = Layout::Build(config);
  ASSERT_TRUE(layout.ok());
  EXPECT_GT(state->store_key_count(), 0);
  for (const std::string& key : state->store_keys()) {
    EXPECT_TRUE(coordinator::ScopeOfKey(*layout, key).ok()) << key;
  }
  EXPECT_THAT(state->store_keys(), ::testing::IsSupersetOf({"world/0/0", "world/0/3", "tp/1/1"}));

  // A store call without a session is refused from outside the process.
  v1::KvGetRequest get;
  get.set_generation(state->generation());
  get.add_keys("world/0/0");
  absl::StatusOr<v1::KvGetResponse> anonymous = client_->KvGet(get);
  EXPECT_EQ(anonymous.status().code(), absl::StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace cohort::testing
