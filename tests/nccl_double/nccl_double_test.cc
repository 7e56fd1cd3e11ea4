// The NCCL double (README.md) in one process, ranks as threads: first that it keeps the NCCL
// semantics cohort's backend relies on (through the C API, as the backend calls it), then
// cohort's NcclBackend on it at world 4. Runs with the double first on LD_LIBRARY_PATH (ctest
// sets it); run by hand without it, every test fails and says so.
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <stdlib.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "agent/comm/backend.h"
#include "agent/comm/nccl_backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/comm/status_matchers.h"
#include "tests/scratch_dir.h"

namespace cohort::agent {
namespace {

using ::cohort::testing::IsOk;
using ::cohort::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(60);

// The rendezvous directory and the control file of this process, set before the double's first
// call reads them.
class DoubleEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    dir_ = std::make_unique<testing::ScratchDir>();
    setenv("COHORT_NCCL_DOUBLE_DIR", (*dir_ / "rendezvous").c_str(), 1);
    setenv("COHORT_NCCL_DOUBLE_CONTROL", (*dir_ / "control").c_str(), 1);
  }
  void TearDown() override { dir_.reset(); }
  static std::string Control() { return std::getenv("COHORT_NCCL_DOUBLE_CONTROL"); }

 private:
  std::unique_ptr<testing::ScratchDir> dir_;
};
const ::testing::Environment* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new DoubleEnvironment());

void WriteControl(const std::string& text) {
  std::ofstream(DoubleEnvironment::Control(), std::ios::trunc) << text;
}

class NcclDoubleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ncclUniqueId id;
    ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
    ASSERT_EQ(std::string(id.internal, 18), "cohort-nccl-double")
        << "the real libnccl is loaded: run with LD_LIBRARY_PATH=<build>/nccl-double";
  }
  void TearDown() override { std::remove(DoubleEnvironment::Control().c_str()); }

  static ncclConfig_t NonBlocking() {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    return config;
  }

  // Polls until the communicator leaves ncclInProgress (or the test's deadline).
  static ncclResult_t Await(ncclComm_t comm) {
    return PollUntil(comm, [](ncclResult_t state) { return state != ncclInProgress; });
  }
  // Polls the communicator's async state until `done` says so (or the test's deadline); returns
  // the last state seen.
  static ncclResult_t PollUntil(ncclComm_t comm, const std::function<bool(ncclResult_t)>& done) {
    const absl::Time deadline = absl::Now() + kWait;
    ncclResult_t state = ncclInProgress;
    while (absl::Now() < deadline) {
      EXPECT_EQ(ncclCommGetAsyncError(comm, &state), ncclSuccess);
      if (done(state)) return state;
      absl::SleepFor(absl::Milliseconds(1));
    }
    return state;
  }

  // Runs fn(rank) on `n` threads at once.
  static void OnRanks(int n, const std::function<void(int)>& fn) {
    std::vector<std::thread> threads;
    for (int r = 0; r < n; ++r) threads.emplace_back([&, r] { fn(r); });
    for (auto& t : threads) t.join();
  }

  // A ready non-blocking communicator of rank r of n on device r.
  static ncclComm_t Init(const ncclUniqueId& id, int n, int r) {
    EXPECT_EQ(cudaSetDevice(r), cudaSuccess);
    ncclConfig_t config = NonBlocking();
    ncclComm_t comm = nullptr;
    EXPECT_EQ(ncclCommInitRankConfig(&comm, n, id, r, &config), ncclInProgress);
    EXPECT_EQ(Await(comm), ncclSuccess) << ncclGetLastError(comm);
    return comm;
  }

  // Waits for the stream with the test's deadline.
  static cudaError_t Sync(cudaStream_t stream) {
    const absl::Time deadline = absl::Now() + kWait;
    cudaError_t e = cudaErrorNotReady;
    while (absl::Now() < deadline && (e = cudaStreamQuery(stream)) == cudaErrorNotReady) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    return e;
  }
};

TEST_F(NcclDoubleTest, InitIsNonBlocking_InProgressUntilTheLastRankJoins) {
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  ncclConfig_t config = NonBlocking();
  ncclComm_t first = nullptr;
  ASSERT_EQ(ncclCommInitRankConfig(&first, 2, id, 0, &config), ncclInProgress);
  ASSERT_NE(first, nullptr);
  ncclResult_t state = ncclSuccess;
  // Rank 1 has not called init: rank 0 cannot have completed, however long it has run.
  ASSERT_EQ(ncclCommGetAsyncError(first, &state), ncclSuccess);
  EXPECT_EQ(state, ncclInProgress);
  ncclComm_t second = nullptr;
  std::thread late([&] { second = Init(id, 2, 1); });
  EXPECT_EQ(Await(first), ncclSuccess);
  late.join();
  int count = 0, rank = -1;
  EXPECT_EQ(ncclCommCount(first, &count), ncclSuccess);
  EXPECT_EQ(ncclCommUserRank(second, &rank), ncclSuccess);
  EXPECT_EQ(count, 2);
  EXPECT_EQ(rank, 1);
  EXPECT_EQ(ncclCommDestroy(first), ncclSuccess);
  EXPECT_EQ(ncclCommDestroy(second), ncclSuccess);
}

TEST_F(NcclDoubleTest, Collectives_OnDeviceBuffersOfFourRanks) {
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  std::vector<std::vector<int64_t>> reduced(4), gathered(4), broadcast(4), exchanged(4);
  OnRanks(4, [&](int r) {
    ncclComm_t comm = Init(id, 4, r);
    cudaStream_t stream;
    ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
    void* buf = nullptr;
    void* all = nullptr;
    ASSERT_EQ(cudaMalloc(&buf, 2 * sizeof(int64_t)), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&all, 8 * sizeof(int64_t)), cudaSuccess);
    const int64_t mine[2] = {r + 1, 10 * (r + 1)};
    ASSERT_EQ(cudaMemcpy(buf, mine, sizeof(mine), cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(ncclAllReduce(buf, buf, 2, ncclInt64, ncclSum, comm, stream), ncclSuccess);
    ASSERT_EQ(Sync(stream), cudaSuccess);
    reduced[r].resize(2);
    cudaMemcpy(reduced[r].data(), buf, 2 * sizeof(int64_t), cudaMemcpyDeviceToHost);
    ASSERT_EQ(cudaMemcpy(buf, mine, sizeof(mine), cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(ncclAllGather(buf, all, 2, ncclInt64, comm, stream), ncclSuccess);
    ASSERT_EQ(Sync(stream), cudaSuccess);
    gathered[r].resize(8);
    cudaMemcpy(gathered[r].data(), all, 8 * sizeof(int64_t), cudaMemcpyDeviceToHost);
    ASSERT_EQ(ncclBroadcast(buf, buf, 2, ncclInt64, 2, comm, stream), ncclSuccess);
    ASSERT_EQ(Sync(stream), cudaSuccess);
    broadcast[r].resize(2);
    cudaMemcpy(broadcast[r].data(), buf, 2 * sizeof(int64_t), cudaMemcpyDeviceToHost);
    // All-to-all as NCCL users write it: sends and receives to every peer (self too) in a group.
    std::vector<int64_t> out(4), in(4, -1);
    for (int p = 0; p < 4; ++p) out[p] = 100 * r + p;
    ASSERT_EQ(cudaMemcpy(all, out.data(), 4 * sizeof(int64_t), cudaMemcpyHostToDevice),
              cudaSuccess);
    void* recv = nullptr;
    ASSERT_EQ(cudaMalloc(&recv, 4 * sizeof(int64_t)), cudaSuccess);
    ASSERT_EQ(ncclGroupStart(), ncclSuccess);
    for (int p = 0; p < 4; ++p) {
      ncclSend(static_cast<int64_t*>(all) + p, 1, ncclInt64, p, comm, stream);
      ncclRecv(static_cast<int64_t*>(recv) + p, 1, ncclInt64, p, comm, stream);
    }
    ASSERT_EQ(ncclGroupEnd(), ncclSuccess);
    ASSERT_EQ(Sync(stream), cudaSuccess);
    cudaMemcpy(in.data(), recv, 4 * sizeof(int64_t), cudaMemcpyDeviceToHost);
    exchanged[r] = in;
    cudaFree(buf);
    cudaFree(all);
    cudaFree(recv);
    cudaStreamDestroy(stream);
    EXPECT_EQ(ncclCommDestroy(comm), ncclSuccess);
  });
  for (int r = 0; r < 4; ++r) {
    SCOPED_TRACE(absl::StrCat("rank ", r));
    EXPECT_THAT(reduced[r], ElementsAre(10, 100));
    EXPECT_THAT(gathered[r], ElementsAre(1, 10, 2, 20, 3, 30, 4, 40));
    EXPECT_THAT(broadcast[r], ElementsAre(3, 30));
    EXPECT_THAT(exchanged[r], ElementsAre(r, 100 + r, 200 + r, 300 + r));
  }
}

TEST_F(NcclDoubleTest, Split_ColourPerGroup_KeyOrders_NoColorGetsNothing) {
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  // Ranks 0 and 2 form colour 5 with reversed keys; rank 1 is alone in colour 9; rank 3 opts out.
  const int colours[4] = {5, 9, 5, NCCL_SPLIT_NOCOLOR};
  const int keys[4] = {1, 0, 0, 0};
  int sizes[4] = {-1, -1, -1, -1}, ranks[4] = {-1, -1, -1, -1};
  int64_t sums[4] = {0, 0, 0, 0};
  bool null_for_nocolor = false;
  OnRanks(4, [&](int r) {
    ncclComm_t world = Init(id, 4, r);
    ncclConfig_t config = NonBlocking();
    ncclComm_t sub = nullptr;
    ASSERT_EQ(ncclCommSplit(world, colours[r], keys[r], &sub, &config), ncclInProgress);
    ASSERT_EQ(Await(world), ncclSuccess);
    if (colours[r] == NCCL_SPLIT_NOCOLOR) {
      null_for_nocolor = sub == nullptr;
    } else {
      ASSERT_NE(sub, nullptr);
      ASSERT_EQ(Await(sub), ncclSuccess) << ncclGetLastError(sub);
      ncclCommCount(sub, &sizes[r]);
      ncclCommUserRank(sub, &ranks[r]);
      void* word = nullptr;
      cudaMalloc(&word, sizeof(int64_t));
      const int64_t v = r;
      cudaMemcpy(word, &v, sizeof(v), cudaMemcpyHostToDevice);
      ASSERT_EQ(ncclAllReduce(word, word, 1, ncclInt64, ncclSum, sub, nullptr), ncclSuccess);
      cudaMemcpy(&sums[r], word, sizeof(int64_t), cudaMemcpyDeviceToHost);
      cudaFree(word);
      EXPECT_EQ(ncclCommDestroy(sub), ncclSuccess);
    }
    EXPECT_EQ(ncclCommDestroy(world), ncclSuccess);
  });
  EXPECT_TRUE(null_for_nocolor);
  EXPECT_THAT(sizes, ElementsAre(2, 1, 2, -1));
  EXPECT_THAT(ranks, ElementsAre(1, 0, 0, -1));  // key first, then parent rank
  EXPECT_THAT(sums, ElementsAre(2, 1, 2, 0));
}

TEST_F(NcclDoubleTest, HostBuffer_RefusedAsNotDeviceMemory) {
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  ncclComm_t comm = Init(id, 1, 0);
  int64_t host = 7;
  EXPECT_EQ(ncclAllReduce(&host, &host, 1, ncclInt64, ncclSum, comm, nullptr), ncclInvalidArgument);
  EXPECT_THAT(ncclGetLastError(nullptr), HasSubstr("is not a valid pointer"));
  void* word = nullptr;
  ASSERT_EQ(cudaMalloc(&word, sizeof(int64_t)), cudaSuccess);
  // Past the end of the allocation is not device memory either.
  EXPECT_EQ(ncclAllReduce(word, word, 2, ncclInt64, ncclSum, comm, nullptr), ncclInvalidArgument);
  EXPECT_EQ(ncclAllReduce(word, word, 1, ncclInt64, ncclSum, comm, nullptr), ncclSuccess);
  cudaFree(word);
  EXPECT_EQ(ncclCommDestroy(comm), ncclSuccess);
}

TEST_F(NcclDoubleTest, UniqueIdUsedTwice_RefusedAtOnce) {
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  ncclComm_t first = Init(id, 1, 0);
  ASSERT_EQ(ncclCommDestroy(first), ncclSuccess);
  ncclConfig_t config = NonBlocking();
  ncclComm_t again = nullptr;
  EXPECT_EQ(ncclCommInitRankConfig(&again, 1, id, 0, &config), ncclInvalidUsage);
  EXPECT_EQ(again, nullptr);
  EXPECT_THAT(ncclGetLastError(nullptr), HasSubstr("already used"));
}

TEST_F(NcclDoubleTest, TwoRanksOnOneDevice_DuplicateGpu) {
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  ncclResult_t results[2];
  std::string errors[2];
  OnRanks(2, [&](int r) {
    ASSERT_EQ(cudaSetDevice(3), cudaSuccess);
    ncclConfig_t config = NonBlocking();
    ncclComm_t comm = nullptr;
    ASSERT_EQ(ncclCommInitRankConfig(&comm, 2, id, r, &config), ncclInProgress);
    results[r] = Await(comm);
    errors[r] = ncclGetLastError(comm);
    ncclCommAbort(comm);
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(results[r], ncclInvalidUsage);
    EXPECT_THAT(errors[r],
                HasSubstr("Duplicate GPU detected : rank 1 and rank 0 both on CUDA device 3"));
  }
}

TEST_F(NcclDoubleTest, AbortFromAnotherThread_EndsAPendingInit) {
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  ncclConfig_t config = NonBlocking();
  ncclComm_t comm = nullptr;
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  ASSERT_EQ(ncclCommInitRankConfig(&comm, 2, id, 0, &config), ncclInProgress);
  // Rank 1 never comes; another thread aborts, and the abort returns (nothing waits for rank 1).
  std::thread aborter([comm] { EXPECT_EQ(ncclCommAbort(comm), ncclSuccess); });
  aborter.join();
}

TEST_F(NcclDoubleTest, AbortFromAnotherThread_EndsAPendingSplit) {
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  ncclComm_t worlds[2];
  OnRanks(2, [&](int r) { worlds[r] = Init(id, 2, r); });
  // Rank 0 splits, rank 1 never does: the split stays in progress until another thread aborts
  // the new communicator.
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  ncclConfig_t config = NonBlocking();
  ncclComm_t sub = nullptr;
  ASSERT_EQ(ncclCommSplit(worlds[0], 0, 0, &sub, &config), ncclInProgress);
  ASSERT_NE(sub, nullptr);
  ncclResult_t state = ncclSuccess;
  ASSERT_EQ(ncclCommGetAsyncError(sub, &state), ncclSuccess);
  EXPECT_EQ(state, ncclInProgress);
  std::thread aborter([sub] { EXPECT_EQ(ncclCommAbort(sub), ncclSuccess); });
  aborter.join();
  // The interrupted split leaves the parent unusable, said so.
  EXPECT_EQ(Await(worlds[0]), ncclInvalidUsage);
  EXPECT_THAT(ncclGetLastError(worlds[0]), HasSubstr("interrupted by ncclCommAbort"));
  for (ncclComm_t w : worlds) EXPECT_EQ(ncclCommAbort(w), ncclSuccess);
}

TEST_F(NcclDoubleTest, AbortFromAnotherThread_EndsAnOperationWaitingForADeadPeer) {
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  ncclComm_t comms[2];
  OnRanks(2, [&](int r) { comms[r] = Init(id, 2, r); });
  // Rank 1 goes away (destroyed: its connections close); rank 0's all-reduce fails like NCCL's
  // with a dead peer: an asynchronous error, and a stream that does not finish.
  ASSERT_EQ(ncclCommDestroy(comms[1]), ncclSuccess);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  void* word = nullptr;
  ASSERT_EQ(cudaMalloc(&word, 8), cudaSuccess);
  ASSERT_EQ(ncclAllReduce(word, word, 1, ncclInt64, ncclSum, comms[0], stream), ncclSuccess);
  EXPECT_EQ(Await(comms[0]), ncclSuccess);  // enqueued; the error comes from the peer
  const ncclResult_t state =
      PollUntil(comms[0], [](ncclResult_t state) { return state != ncclSuccess; });
  EXPECT_EQ(state, ncclRemoteError);
  EXPECT_THAT(ncclGetLastError(comms[0]), HasSubstr("peer rank 1 closed its connection"));
  EXPECT_EQ(cudaStreamQuery(stream), cudaErrorNotReady);
  std::thread aborter([&] { EXPECT_EQ(ncclCommAbort(comms[0]), ncclSuccess); });
  aborter.join();
  EXPECT_EQ(Sync(stream), cudaSuccess);  // the abort ended the operation
  cudaFree(word);
  cudaStreamDestroy(stream);
}

TEST_F(NcclDoubleTest, InjectedAsyncError_HitsTheCommunicatorsReadyThen_NotLaterOnes) {
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  ncclComm_t before = Init(id, 1, 0);
  WriteControl("async_error remote\n");
  ncclResult_t state = ncclSuccess;
  ASSERT_EQ(ncclCommGetAsyncError(before, &state), ncclSuccess);
  EXPECT_EQ(state, ncclRemoteError);
  EXPECT_THAT(ncclGetLastError(before), HasSubstr("injected asynchronous error (remote)"));
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  ncclComm_t after = Init(id, 1, 0);
  ASSERT_EQ(ncclCommGetAsyncError(after, &state), ncclSuccess);
  EXPECT_EQ(state, ncclSuccess);
  ncclCommAbort(before);
  ncclCommDestroy(after);
}

TEST_F(NcclDoubleTest, InjectedInitFailure_EndsInitAndSplitWithThatError) {
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  ncclComm_t world = Init(id, 1, 0);
  WriteControl("fail_init system\n");
  ncclConfig_t config = NonBlocking();
  ncclComm_t sub = nullptr;
  ASSERT_EQ(ncclCommSplit(world, 0, 0, &sub, &config), ncclInProgress);
  EXPECT_EQ(Await(sub), ncclSystemError);
  EXPECT_THAT(ncclGetLastError(sub), HasSubstr("injected split failure"));
  EXPECT_EQ(Await(world), ncclSuccess) << "the parent stays usable";
  ncclCommAbort(sub);
  ncclComm_t second = nullptr;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  ASSERT_EQ(ncclCommInitRankConfig(&second, 1, id, 0, &config), ncclInProgress);
  EXPECT_EQ(Await(second), ncclSystemError);
  ncclCommAbort(second);
  ncclCommDestroy(world);
}

TEST_F(NcclDoubleTest, MismatchedCollectives_InvalidUsageNotGarbage) {
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  ncclResult_t states[2];
  OnRanks(2, [&](int r) {
    ncclComm_t comm = Init(id, 2, r);
    void* buf = nullptr;
    cudaMalloc(&buf, 64);
    cudaStream_t stream;
    cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
    if (r == 0) {
      ncclAllReduce(buf, buf, 2, ncclInt64, ncclSum, comm, stream);
    } else {
      ncclAllReduce(buf, buf, 3, ncclInt64, ncclSum, comm, stream);
    }
    states[r] = PollUntil(comm, [](ncclResult_t state) { return state != ncclSuccess; });
    ncclCommAbort(comm);
    cudaStreamDestroy(stream);
    cudaFree(buf);
  });
  // Rank 0 expects fewer bytes, has a whole frame and sees the mismatch; rank 1 waits for bytes
  // that never come until rank 0 aborts (then its peer is gone).
  EXPECT_EQ(states[0], ncclInvalidUsage);
  EXPECT_THAT(states[1], ::testing::AnyOf(ncclInvalidUsage, ncclRemoteError));
}

// --- cohort's NcclBackend on the double.

class NcclBackendOnDoubleTest : public NcclDoubleTest {
 protected:
  static std::unique_ptr<Backend> MakeNccl(NcclGroupMode mode = NcclGroupMode::kSplitFromWorld) {
    BackendOptions options;
    options.nccl_group_mode = mode;
    options.op_timeout = kWait;
    absl::StatusOr<std::unique_ptr<Backend>> backend = MakeBackend("nccl", options);
    EXPECT_THAT(backend, IsOk());
    return *std::move(backend);
  }
};

TEST_F(NcclBackendOnDoubleTest, WorldOfFour_SplitAndPerGroupIds_VerifyAndDestroy) {
  for (NcclGroupMode mode : {NcclGroupMode::kSplitFromWorld, NcclGroupMode::kPerGroupUniqueId}) {
    SCOPED_TRACE(mode == NcclGroupMode::kSplitFromWorld ? "split" : "per-group ids");
    InMemoryRendezvousStore store;
    int64_t sums[4][2];
    TeardownReport reports[4];
    OnRanks(4, [&](int r) {
      auto backend = MakeNccl(mode);
      absl::StatusOr<std::unique_ptr<Communicator>> world =
          backend->CreateWorld({r, 4, r}, store, absl::Now() + kWait);
      ASSERT_THAT(world, IsOk());
      // tp pairs {0,1} {2,3}; dp pairs {0,2} {1,3}.
      std::vector<GroupRequest> requests = {
          {GroupKind::kTp, r / 2, {r / 2 * 2, r / 2 * 2 + 1}, r % 2},
          {GroupKind::kDp, r % 2, {r % 2, r % 2 + 2}, r / 2}};
      absl::StatusOr<GroupSet> groups =
          backend->CreateGroups(**world, requests, store, absl::Now() + kWait);
      ASSERT_THAT(groups, IsOk());
      for (int k = 0; k < 2; ++k) {
        absl::StatusOr<int64_t> sum = groups->comms[k]->SumOverGroup(r);
        ASSERT_THAT(sum, IsOk());
        sums[r][k] = *sum;
      }
      std::vector<Communicator*> all = {world->get()};
      for (auto& c : groups->comms) all.push_back(c.get());
      reports[r] = backend->DestroyAll(all, /*abort=*/false);
    });
    for (int r = 0; r < 4; ++r) {
      EXPECT_EQ(sums[r][0], r / 2 == 0 ? 1 : 5) << "tp of rank " << r;
      EXPECT_EQ(sums[r][1], r % 2 == 0 ? 2 : 4) << "dp of rank " << r;
      EXPECT_THAT(reports[r].status, IsOk());
    }
  }
}

// The regression test for NcclBackend::CancelBuilds: before it, an init waiting for a rank that
// never comes held the build until its deadline (here 10 minutes, past the test's timeout).
TEST_F(NcclBackendOnDoubleTest, CancelBuilds_EndsAnInitWaitingForAMissingRank) {
  auto backend = MakeNccl();
  InMemoryRendezvousStore store;
  absl::Notification started;
  std::thread canceller([&] {
    // Once rank 0 published the world's id it is inside ncclCommInitRankConfig's wait.
    ASSERT_THAT(store.Get("world/nccl_id", kWait), IsOk());
    backend->CancelBuilds("generation 1 superseded by generation 2");
  });
  absl::StatusOr<std::unique_ptr<Communicator>> world =
      backend->CreateWorld({0, 2, 0}, store, absl::Now() + absl::Minutes(10));
  canceller.join();
  EXPECT_THAT(world.status(),
              StatusIs(absl::StatusCode::kAborted,
                       HasSubstr("nccl world/0: cancelled: generation 1 superseded")));
  // Until ResumeBuilds, a new build fails at once; after it, builds work again.
  EXPECT_THAT(backend->CreateWorld({0, 1, 0}, store, absl::Now() + kWait).status(),
              StatusIs(absl::StatusCode::kAborted));
  backend->ResumeBuilds();
  InMemoryRendezvousStore fresh;
  absl::StatusOr<std::unique_ptr<Communicator>> alone =
      backend->CreateWorld({0, 1, 0}, fresh, absl::Now() + kWait);
  ASSERT_THAT(alone, IsOk());
  EXPECT_THAT(backend->DestroyAll({alone->get()}, /*abort=*/false).status, IsOk());
}

TEST_F(NcclBackendOnDoubleTest, CancelBuilds_EndsASplitWaitingForARank) {
  InMemoryRendezvousStore store;
  std::unique_ptr<Backend> backends[2] = {MakeNccl(), MakeNccl()};
  std::unique_ptr<Communicator> worlds[2];
  OnRanks(2, [&](int r) {
    absl::StatusOr<std::unique_ptr<Communicator>> w =
        backends[r]->CreateWorld({r, 2, r}, store, absl::Now() + kWait);
    ASSERT_THAT(w, IsOk());
    worlds[r] = *std::move(w);
  });
  ASSERT_NE(worlds[0], nullptr);
  // Rank 1 never splits; rank 0's split waits for it until the cancel.
  std::thread canceller([&] {
    // The split is under way once rank 0's world reports ncclInProgress.
    PollUntil(static_cast<ncclComm_t>(worlds[0]->raw_handle()),
              [](ncclResult_t state) { return state == ncclInProgress; });
    backends[0]->CancelBuilds("agent stopping");
  });
  absl::StatusOr<GroupSet> groups = backends[0]->CreateGroups(
      *worlds[0], {{GroupKind::kTp, 0, {0, 1}, 0}}, store, absl::Now() + absl::Minutes(10));
  canceller.join();
  EXPECT_THAT(groups.status(), StatusIs(absl::StatusCode::kAborted,
                                        HasSubstr("nccl tp/0: cancelled: agent stopping")));
  for (int r = 0; r < 2; ++r) worlds[r]->Abort();
}

}  // namespace
}  // namespace cohort::agent
