// NCCL backend, world of one rank on GPU 0 (two ranks cannot share a GPU up to NCCL 2.29).
// Labelled `gpu`. Without a visible CUDA device the tests skip, unless COHORT_REQUIRE_GPU=1
// (set it on GPU hosts so a broken driver fails instead of skipping).
#include "agent/comm/nccl_backend.h"

#include <cuda_runtime_api.h>

#include <cstdlib>
#include <memory>
#include <vector>

#include "agent/comm/backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/comm/status_matchers.h"

namespace cohort::agent {
namespace {

using ::cohort::testing::IsOk;
using ::cohort::testing::StatusIs;
using ::testing::ElementsAre;

constexpr absl::Duration kCreateTimeout = absl::Seconds(60);

// Device buffer holding `values`, copied back with Read().
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(const std::vector<T>& values) : n_(values.size()) {
    EXPECT_EQ(cudaMalloc(&ptr_, n_ * sizeof(T)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(ptr_, values.data(), n_ * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DeviceBuffer() { cudaFree(ptr_); }
  T* get() { return static_cast<T*>(ptr_); }
  std::vector<T> Read() const {
    std::vector<T> out(n_);
    EXPECT_EQ(cudaMemcpy(out.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return out;
  }

 private:
  size_t n_;
  void* ptr_ = nullptr;
};

class NcclTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
      const char* require = std::getenv("COHORT_REQUIRE_GPU");
      if (require != nullptr && std::string(require) == "1") {
        FAIL() << "no CUDA device: " << cudaGetErrorString(e);
      }
      GTEST_SKIP() << "no CUDA device visible (" << cudaGetErrorString(e) << ")";
    }
  }

  std::unique_ptr<Backend> MakeNccl(NcclGroupMode mode = NcclGroupMode::kSplitFromWorld) {
    BackendOptions options;
    options.nccl_group_mode = mode;
    options.op_timeout = absl::Seconds(30);
    absl::StatusOr<std::unique_ptr<Backend>> backend = MakeBackend("nccl", options);
    EXPECT_THAT(backend, IsOk());
    return *std::move(backend);
  }
};

TEST_F(NcclTest, WorldOfOne_CreateAllReduceSplitDestroy) {
  auto backend = MakeNccl();
  InMemoryRendezvousStore store;
  absl::StatusOr<std::unique_ptr<Communicator>> world =
      backend->CreateWorld({0, 1, 0}, store, absl::Now() + kCreateTimeout);
  ASSERT_THAT(world, IsOk());
  Communicator& w = **world;
  EXPECT_EQ(w.state(), CommState::kReady);
  EXPECT_NE(w.raw_handle(), nullptr);
  EXPECT_TRUE(store.Contains("world/nccl_id"));

  DeviceBuffer<float> buf({1.0f, 2.0f});
  EXPECT_THAT(w.AllReduce(buf.get(), 2, DataType::kFloat32, ReduceOp::kSum), IsOk());
  EXPECT_THAT(buf.Read(), ElementsAre(1.0f, 2.0f));
  EXPECT_THAT(w.Broadcast(buf.get(), 2, DataType::kFloat32, 0), IsOk());
  EXPECT_THAT(w.Barrier(), IsOk());
  DeviceBuffer<int32_t> out({0, 0});
  DeviceBuffer<int32_t> in({7, 8});
  EXPECT_THAT(w.AllGather(in.get(), out.get(), 2, DataType::kInt32), IsOk());
  EXPECT_THAT(out.Read(), ElementsAre(7, 8));
  DeviceBuffer<int32_t> out2({0, 0});
  EXPECT_THAT(w.AllToAll(in.get(), out2.get(), 2, DataType::kInt32), IsOk());
  EXPECT_THAT(out2.Read(), ElementsAre(7, 8));

  std::vector<GroupRequest> requests = {
      {GroupKind::kTp, 0, {0}, 0}, {GroupKind::kDp, 0, {0}, 0}, {GroupKind::kPp, 0, {0}, 0}};
  absl::StatusOr<GroupSet> groups =
      backend->CreateGroups(w, requests, store, absl::Now() + kCreateTimeout);
  ASSERT_THAT(groups, IsOk());
  ASSERT_EQ(groups->comms.size(), 3u);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(groups->timings[k].method, "split");
    DeviceBuffer<int64_t> v({5});
    EXPECT_THAT(groups->comms[k]->AllReduce(v.get(), 1, DataType::kInt64, ReduceOp::kSum), IsOk());
    EXPECT_THAT(v.Read(), ElementsAre(5));
  }

  std::vector<Communicator*> all = {&w};
  for (auto& c : groups->comms) all.push_back(c.get());
  TeardownReport report = backend->DestroyAll(all, /*abort=*/false);
  EXPECT_THAT(report.status, IsOk());
  for (Communicator* c : all) EXPECT_EQ(c->state(), CommState::kDestroyed);
}

// The verification sum takes a host value and stages it through device memory; the registry
// reads the device's identity and the NCCL version.
TEST_F(NcclTest, SumOverGroup_HostValueThroughDeviceMemory_AndDeviceIdentity) {
  auto backend = MakeNccl();
  EXPECT_TRUE(backend->has_data_plane());
  EXPECT_EQ(backend->version(), CompiledNcclVersion());
  InMemoryRendezvousStore store;
  absl::StatusOr<std::unique_ptr<Communicator>> world =
      backend->CreateWorld({0, 1, 0}, store, absl::Now() + kCreateTimeout);
  ASSERT_THAT(world, IsOk());

  absl::StatusOr<int64_t> sum = (*world)->SumOverGroup(41);
  ASSERT_THAT(sum, IsOk());
  EXPECT_EQ(*sum, 41);

  const DeviceIdentity identity = QueryDeviceIdentity(0);
  EXPECT_NE(identity.pci_bus_id, "");
  EXPECT_THAT(identity.gpu_uuid, ::testing::StartsWith("GPU-"));
  EXPECT_THAT(backend->DestroyAll({world->get()}, /*abort=*/false).status, IsOk());
}

TEST_F(NcclTest, PerGroupUniqueIds_PublishAndAbortInParallel) {
  auto backend = MakeNccl(NcclGroupMode::kPerGroupUniqueId);
  InMemoryRendezvousStore store;
  absl::StatusOr<std::unique_ptr<Communicator>> world =
      backend->CreateWorld({0, 1, 0}, store, absl::Now() + kCreateTimeout);
  ASSERT_THAT(world, IsOk());
  absl::StatusOr<GroupSet> groups =
      backend->CreateGroups(**world, {{GroupKind::kTp, 0, {0}, 0}, {GroupKind::kSp, 0, {0}, 0}},
                            store, absl::Now() + kCreateTimeout);
  ASSERT_THAT(groups, IsOk());
  EXPECT_TRUE(store.Contains("tp/0/nccl_id"));
  EXPECT_TRUE(store.Contains("sp/0/nccl_id"));
  EXPECT_EQ(groups->timings[0].method, "unique_id");
  std::vector<Communicator*> all = {world->get()};
  for (auto& c : groups->comms) all.push_back(c.get());
  TeardownReport report = backend->DestroyAll(all, /*abort=*/true);
  EXPECT_THAT(report.status, IsOk());
  for (Communicator* c : all) EXPECT_EQ(c->state(), CommState::kDestroyed);
}

TEST_F(NcclTest, MissingRank_InitDeadlineExceeded) {
  auto backend = MakeNccl();
  InMemoryRendezvousStore store;
  const absl::Time start = absl::Now();
  // World of 2 on one GPU, rank 1 never joins: the non-blocking init is aborted at the deadline.
  EXPECT_THAT(backend->CreateWorld({0, 2, 0}, store, start + absl::Seconds(2)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST_F(NcclTest, Abort_FromAnotherThreadIsPrompt) {
  auto backend = MakeNccl();
  InMemoryRendezvousStore store;
  absl::StatusOr<std::unique_ptr<Communicator>> world =
      backend->CreateWorld({0, 1, 0}, store, absl::Now() + kCreateTimeout);
  ASSERT_THAT(world, IsOk());
  const absl::Time start = absl::Now();
  (*world)->Abort();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ((*world)->state(), CommState::kAborted);
  EXPECT_THAT((*world)->Barrier(), StatusIs(absl::StatusCode::kAborted));
}

}  // namespace
}  // namespace cohort::agent
