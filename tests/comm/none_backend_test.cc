// Backend-independent behaviour (factory, request validation, the Communicator state machine and
// argument checks, DestroyAll), exercised through the none backend.
#include "agent/comm/none_backend.h"

#include <memory>
#include <vector>

#include "agent/comm/backend.h"
#include "common/cohort_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/comm/status_matchers.h"

namespace cohort::agent {
namespace {

using ::cohort::testing::IsOk;
using ::cohort::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::unique_ptr<Backend> MakeNone() {
  absl::StatusOr<std::unique_ptr<Backend>> backend = MakeBackend("none", BackendOptions());
  EXPECT_THAT(backend, IsOk());
  return *std::move(backend);
}

std::unique_ptr<Communicator> World(Backend& backend, int rank, int size) {
  InMemoryRendezvousStore store;
  absl::StatusOr<std::unique_ptr<Communicator>> world =
      backend.CreateWorld({rank, size, 0}, store, absl::Now() + absl::Seconds(1));
  EXPECT_THAT(world, IsOk());
  return *std::move(world);
}

TEST(MakeBackend, UnknownName_InvalidArgument) {
  EXPECT_THAT(MakeBackend("mpi", BackendOptions()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("gloo, nccl, none")));
}

TEST(MakeBackend, Nccl_MatchesBuildConfiguration) {
  absl::StatusOr<std::unique_ptr<Backend>> backend = MakeBackend("nccl", BackendOptions());
  if (COHORT_WITH_NCCL) {
    ASSERT_THAT(backend, IsOk());
    EXPECT_EQ((*backend)->name(), "nccl");
  } else {
    EXPECT_THAT(backend, StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("COHORT_WITH_NCCL")));
  }
}

TEST(MakeBackend, GlooUnresolvableHost_InvalidArgument) {
  BackendOptions options;
  options.gloo_host = "no-such-host.invalid";
  EXPECT_THAT(MakeBackend("gloo", options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no-such-host.invalid")));
}

TEST(MakeBackend, GlooUnknownInterface_InvalidArgument) {
  BackendOptions options;
  options.gloo_interface = "nosuchif0";
  EXPECT_THAT(MakeBackend("gloo", options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nosuchif0")));
}

TEST(MakeBackend, NonPositiveTimeout_InvalidArgument) {
  BackendOptions options;
  options.op_timeout = absl::ZeroDuration();
  EXPECT_THAT(MakeBackend("none", options), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(None, CreateWorld_HasRanksAndSize) {
  auto backend = MakeNone();
  auto world = World(*backend, 2, 4);
  EXPECT_EQ(world->rank(), 2);
  EXPECT_EQ(world->size(), 4);
  EXPECT_THAT(world->ranks(), ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(world->state(), CommState::kReady);
  EXPECT_EQ(world->backend_name(), "none");
  EXPECT_EQ(world->raw_handle(), nullptr);
}

TEST(None, CreateWorld_BadSpec_InvalidArgument) {
  auto backend = MakeNone();
  InMemoryRendezvousStore store;
  EXPECT_THAT(backend->CreateWorld({4, 4, 0}, store, absl::Now()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(backend->CreateWorld({0, 0, 0}, store, absl::Now()),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(None, CreateGroups_ReturnsGroupsAndTimings) {
  auto backend = MakeNone();
  auto world = World(*backend, 3, 4);
  InMemoryRendezvousStore store;
  std::vector<GroupRequest> requests = {{GroupKind::kTp, 1, {2, 3}, 1},
                                        {GroupKind::kDp, 3, {3}, 0}};
  absl::StatusOr<GroupSet> set =
      backend->CreateGroups(*world, requests, store, absl::Now() + absl::Seconds(1));
  ASSERT_THAT(set, IsOk());
  ASSERT_EQ(set->comms.size(), 2u);
  EXPECT_EQ(set->comms[0]->kind(), GroupKind::kTp);
  EXPECT_EQ(set->comms[0]->group_index(), 1);
  EXPECT_EQ(set->comms[0]->rank(), 1);
  EXPECT_THAT(set->comms[0]->ranks(), ElementsAre(2, 3));
  ASSERT_EQ(set->timings.size(), 2u);
  EXPECT_EQ(set->timings[1].kind, GroupKind::kDp);
  EXPECT_EQ(set->timings[1].method, "none");
  EXPECT_EQ(store.size(), 0u);
}

TEST(ValidateGroupRequests, RejectsMalformedRequests) {
  auto backend = MakeNone();
  auto world = World(*backend, 1, 4);
  auto check = [&](GroupRequest r) { return ValidateGroupRequests(*world, {r}); };
  EXPECT_THAT(check({GroupKind::kTp, 0, {0, 1}, 1}), IsOk());
  EXPECT_THAT(check({GroupKind::kTp, 0, {1, 0}, 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ascending")));
  EXPECT_THAT(check({GroupKind::kTp, 0, {0, 1}, 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank_in_group")));
  EXPECT_THAT(check({GroupKind::kTp, 0, {1, 7}, 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("outside the world")));
  EXPECT_THAT(check({GroupKind::kTp, 0, {}, 0}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(check({GroupKind::kTp, -1, {1}, 0}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      ValidateGroupRequests(*world, {{GroupKind::kTp, 0, {1}, 0}, {GroupKind::kTp, 1, {1}, 0}}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
}

TEST(None, SizeOneGroup_OpsActLocally) {
  auto backend = MakeNone();
  auto world = World(*backend, 0, 1);
  std::vector<int32_t> buf = {1, 2, 3};
  EXPECT_THAT(world->AllReduce(buf.data(), 3, DataType::kInt32, ReduceOp::kSum), IsOk());
  EXPECT_THAT(buf, ElementsAre(1, 2, 3));
  std::vector<int32_t> out(3);
  EXPECT_THAT(world->AllGather(buf.data(), out.data(), 3, DataType::kInt32), IsOk());
  EXPECT_THAT(out, ElementsAre(1, 2, 3));
  std::vector<int32_t> out2(3);
  EXPECT_THAT(world->AllToAll(buf.data(), out2.data(), 3, DataType::kInt32), IsOk());
  EXPECT_THAT(out2, ElementsAre(1, 2, 3));
  EXPECT_THAT(world->Broadcast(buf.data(), 3, DataType::kInt32, 0), IsOk());
  EXPECT_THAT(world->Barrier(), IsOk());
}

TEST(None, LargerGroup_OpsUnimplementedAndStayReady) {
  auto backend = MakeNone();
  auto world = World(*backend, 0, 2);
  float x = 1;
  EXPECT_THAT(world->AllReduce(&x, 1, DataType::kFloat32, ReduceOp::kSum),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("no data plane")));
  EXPECT_THAT(world->Barrier(), StatusIs(absl::StatusCode::kUnimplemented));
  EXPECT_THAT(world->Send(&x, 1, DataType::kFloat32, 1),
              StatusIs(absl::StatusCode::kUnimplemented));
  EXPECT_EQ(world->state(), CommState::kReady);
}

TEST(Communicator, BadArguments_InvalidArgumentAndStayReady) {
  auto backend = MakeNone();
  auto world = World(*backend, 0, 2);
  float x = 1;
  EXPECT_THAT(world->Broadcast(&x, 1, DataType::kFloat32, 2),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("root")));
  EXPECT_THAT(world->Send(&x, 1, DataType::kFloat32, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("self")));
  EXPECT_THAT(world->Recv(&x, 1, DataType::kFloat32, -1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(world->AllReduce(nullptr, 1, DataType::kFloat32, ReduceOp::kSum),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
  EXPECT_THAT(world->Barrier(absl::ZeroDuration()), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(world->state(), CommState::kReady);
}

TEST(Communicator, ZeroCount_IsANoOp) {
  auto backend = MakeNone();
  auto world = World(*backend, 0, 2);  // would be UNIMPLEMENTED if it communicated
  EXPECT_THAT(world->AllReduce(nullptr, 0, DataType::kFloat32, ReduceOp::kSum), IsOk());
  EXPECT_THAT(world->AllGather(nullptr, nullptr, 0, DataType::kUInt8), IsOk());
}

TEST(Communicator, Abort_LaterOpsFailAborted) {
  auto backend = MakeNone();
  auto world = World(*backend, 0, 1);
  world->Abort();
  world->Abort();  // idempotent
  EXPECT_EQ(world->state(), CommState::kAborted);
  EXPECT_THAT(world->last_error(), StatusIs(absl::StatusCode::kAborted));
  EXPECT_THAT(world->Barrier(), StatusIs(absl::StatusCode::kAborted));
  EXPECT_THAT(world->Destroy(), IsOk());
  EXPECT_EQ(world->state(), CommState::kDestroyed);
}

TEST(Communicator, Destroy_LaterOpsFailPrecondition) {
  auto backend = MakeNone();
  auto world = World(*backend, 0, 1);
  EXPECT_THAT(world->Destroy(), IsOk());
  EXPECT_THAT(world->Destroy(), IsOk());
  EXPECT_EQ(world->state(), CommState::kDestroyed);
  EXPECT_THAT(world->Barrier(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(None, DestroyAll_DestroysEveryCommunicator) {
  auto backend = MakeNone();
  auto world = World(*backend, 0, 1);
  auto other = World(*backend, 0, 1);
  TeardownReport report = backend->DestroyAll({world.get(), nullptr, other.get()}, false);
  EXPECT_THAT(report.status, IsOk());
  ASSERT_EQ(report.per_comm.size(), 3u);
  EXPECT_EQ(world->state(), CommState::kDestroyed);
  EXPECT_EQ(other->state(), CommState::kDestroyed);
}

TEST(None, DestroyAll_AbortMarksDestroyed) {
  auto backend = MakeNone();
  auto world = World(*backend, 0, 1);
  TeardownReport report = backend->DestroyAll({world.get()}, true);
  EXPECT_THAT(report.status, IsOk());
  EXPECT_EQ(world->state(), CommState::kDestroyed);
  EXPECT_THAT(world->last_error(), StatusIs(absl::StatusCode::kAborted));
}

TEST(Registry, CompiledBackends_MatchBuildConfiguration) {
  if (COHORT_WITH_NCCL) {
    EXPECT_THAT(CompiledBackends(), ElementsAre("nccl", "gloo", "none"));
    EXPECT_NE(CompiledNcclVersion(), "");
  } else {
    EXPECT_THAT(CompiledBackends(), ElementsAre("gloo", "none"));
    EXPECT_EQ(CompiledNcclVersion(), "");
  }
}

TEST(Registry, QueryDeviceIdentity_NoDevice_IsEmpty) {
  const DeviceIdentity identity = QueryDeviceIdentity(-1);
  EXPECT_EQ(identity.pci_bus_id, "");
  EXPECT_EQ(identity.gpu_uuid, "");
}

TEST(NoneBackend, HasNoDataPlane_SumOverGroupUnimplemented) {
  std::unique_ptr<Backend> backend = MakeNone();
  EXPECT_FALSE(backend->has_data_plane());
  std::unique_ptr<Communicator> world = World(*backend, 0, 2);
  EXPECT_FALSE(world->has_data_plane());
  EXPECT_THAT(world->SumOverGroup(1), StatusIs(absl::StatusCode::kUnimplemented));
  EXPECT_EQ(world->state(), CommState::kReady);
}

// Its communicators release nothing, so DestroyAll and an abort start no thread for them; the
// teardown still reports each one destroyed (or aborted).
TEST(NoneBackend, ReleaseNeverWaits_DestroyAllInline) {
  std::unique_ptr<Backend> backend = MakeNone();
  std::unique_ptr<Communicator> a = World(*backend, 0, 2);
  std::unique_ptr<Communicator> b = World(*backend, 0, 2);
  EXPECT_FALSE(a->release_waits());
  TeardownReport report = backend->DestroyAll({a.get(), nullptr, b.get()}, /*abort=*/false);
  EXPECT_THAT(report.status, IsOk());
  EXPECT_EQ(a->state(), CommState::kDestroyed);
  EXPECT_EQ(b->state(), CommState::kDestroyed);
  std::unique_ptr<Communicator> c = World(*backend, 0, 2);
  report = backend->DestroyAll({c.get()}, /*abort=*/true);
  EXPECT_THAT(report.status, IsOk());
  EXPECT_EQ(c->state(), CommState::kDestroyed);
}

}  // namespace
}  // namespace cohort::agent
