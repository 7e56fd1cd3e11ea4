// The NCCL backend's own code (non-blocking init and split polled against deadlines, device
// buffers, streams, finalize/destroy/abort) run without a GPU, on a single-process fake NcclApi
// handed in through BackendOptions::nccl_api; and the default, RealNcclApi(), on this machine.
// CPU test (label `comm`); built only when COHORT_WITH_NCCL.
#include "agent/comm/nccl_api.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/comm/backend.h"
#include "agent/comm/nccl_backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/comm/status_matchers.h"

namespace cohort::agent {
namespace {

using ::cohort::testing::IsOk;
using ::cohort::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// NCCL and CUDA for one process and communicators of one rank: device memory is host memory,
// streams complete on the first query after `stream_polls_not_ready` "not ready" answers, and
// init, split and finalize stay ncclInProgress for a configured number of
// ncclCommGetAsyncError polls. Every call is logged by its C name. Handles it did not hand out,
// or that were destroyed or aborted, are refused (ncclInvalidArgument, cudaErrorInvalidValue), so
// a use after release shows up as a failure.
class FakeNcclApi final : public NcclApi {
 public:
  static constexpr int kForever = -1;

  // Set before the backend runs.
  int init_polls_in_progress = 0;  // kForever: init never completes
  int split_polls_in_progress = 0;
  int finalize_polls_in_progress = 0;
  int stream_polls_not_ready = 0;
  cudaError_t set_device_result = cudaSuccess;

  struct InitCall {
    int nranks = 0;
    int rank = 0;
    std::string id;
    int blocking = -1;
    std::string name;
  };
  struct SplitCall {
    int color = 0;
    int key = 0;
    int blocking = -1;
    std::string name;
  };
  struct OpCall {
    std::string op;
    const void* send = nullptr;
    void* recv = nullptr;
    size_t count = 0;
    ncclDataType_t dtype = ncclFloat32;
    ncclRedOp_t red = ncclSum;
  };

  std::vector<std::string> calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  void ClearCalls() {
    absl::MutexLock lock(&mu_);
    calls_.clear();
  }
  std::vector<InitCall> inits() const {
    absl::MutexLock lock(&mu_);
    return inits_;
  }
  std::vector<SplitCall> splits() const {
    absl::MutexLock lock(&mu_);
    return splits_;
  }
  std::vector<OpCall> ops() const {
    absl::MutexLock lock(&mu_);
    return ops_;
  }
  std::vector<unsigned int> stream_flags() const {
    absl::MutexLock lock(&mu_);
    return stream_flags_;
  }
  // The bytes ncclGetUniqueId hands out next.
  std::string NextUniqueId() const {
    absl::MutexLock lock(&mu_);
    return UniqueIdBytes(ids_made_);
  }
  // Communicators not yet destroyed or aborted; streams and allocations not yet freed.
  int live_comms() const {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const auto& [handle, comm] : comms_) n += comm->released ? 0 : 1;
    return n;
  }
  int aborted_comms() const {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const auto& [handle, comm] : comms_) n += comm->aborted ? 1 : 0;
    return n;
  }
  size_t live_streams() const {
    absl::MutexLock lock(&mu_);
    return streams_.size();
  }
  size_t live_allocations() const {
    absl::MutexLock lock(&mu_);
    return allocations_.size();
  }
  // From now on ncclCommGetAsyncError(comm) reports `error`, and ncclGetLastError says `detail`.
  void InjectAsyncError(void* comm, ncclResult_t error, std::string detail) {
    absl::MutexLock lock(&mu_);
    auto it = comms_.find(static_cast<ncclComm_t>(comm));
    ASSERT_NE(it, comms_.end());
    it->second->async_error = error;
    last_error_ = std::move(detail);
  }

  ncclResult_t NcclGetUniqueId(ncclUniqueId* unique_id) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("ncclGetUniqueId");
    const std::string bytes = UniqueIdBytes(ids_made_++);
    std::memcpy(unique_id->internal, bytes.data(), sizeof(unique_id->internal));
    return ncclSuccess;
  }
  ncclResult_t NcclCommInitRankConfig(ncclComm_t* comm, int nranks, ncclUniqueId comm_id, int rank,
                                      ncclConfig_t* config) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("ncclCommInitRankConfig");
    inits_.push_back({nranks, rank, std::string(comm_id.internal, sizeof(comm_id.internal)),
                      config->blocking, config->commName});
    if (nranks != 1 || rank != 0) return ncclInvalidUsage;  // one process, one rank
    *comm = NewComm(init_polls_in_progress);
    return ncclInProgress;
  }
  ncclResult_t NcclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t* newcomm,
                             ncclConfig_t* config) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("ncclCommSplit");
    splits_.push_back({color, key, config->blocking, config->commName});
    if (Live(comm) == nullptr) return ncclInvalidArgument;
    *newcomm = NewComm(split_polls_in_progress);
    return ncclInProgress;
  }
  ncclResult_t NcclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async_error) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("ncclCommGetAsyncError");
    Comm* c = Live(comm);
    if (c == nullptr) return ncclInvalidArgument;
    if (c->polls_in_progress == kForever) {
      *async_error = ncclInProgress;
    } else if (c->polls_in_progress > 0) {
      --c->polls_in_progress;
      *async_error = ncclInProgress;
    } else {
      *async_error = c->async_error;
    }
    return ncclSuccess;
  }
  ncclResult_t NcclCommFinalize(ncclComm_t comm) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("ncclCommFinalize");
    Comm* c = Live(comm);
    if (c == nullptr) return ncclInvalidArgument;
    c->polls_in_progress = finalize_polls_in_progress;
    return ncclInProgress;
  }
  ncclResult_t NcclCommDestroy(ncclComm_t comm) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("ncclCommDestroy");
    Comm* c = Live(comm);
    if (c == nullptr) return ncclInvalidArgument;
    c->released = true;
    return ncclSuccess;
  }
  ncclResult_t NcclCommAbort(ncclComm_t comm) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("ncclCommAbort");
    Comm* c = Live(comm);
    if (c == nullptr) return ncclInvalidArgument;
    c->released = true;
    c->aborted = true;
    return ncclSuccess;
  }

  ncclResult_t NcclAllReduce(const void* sendbuff, void* recvbuff, size_t count,
                             ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                             cudaStream_t stream) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("ncclAllReduce");
    ops_.push_back({"ncclAllReduce", sendbuff, recvbuff, count, datatype, op});
    // Any reduction over one rank is that rank's input.
    return CopyOnStream(sendbuff, recvbuff, count * Size(datatype), comm, stream);
  }
  ncclResult_t NcclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount,
                             ncclDataType_t datatype, ncclComm_t comm,
                             cudaStream_t stream) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("ncclAllGather");
    ops_.push_back({"ncclAllGather", sendbuff, recvbuff, sendcount, datatype, ncclSum});
    return CopyOnStream(sendbuff, recvbuff, sendcount * Size(datatype), comm, stream);
  }
  ncclResult_t NcclBroadcast(const void* sendbuff, void* recvbuff, size_t count,
                             ncclDataType_t datatype, int root, ncclComm_t comm,
                             cudaStream_t stream) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("ncclBroadcast");
    ops_.push_back({"ncclBroadcast", sendbuff, recvbuff, count, datatype, ncclSum});
    if (root != 0) return ncclInvalidArgument;
    return CopyOnStream(sendbuff, recvbuff, count * Size(datatype), comm, stream);
  }
  // Point-to-point with oneself: a send and a receive of one group are matched in order at
  // ncclGroupEnd.
  ncclResult_t NcclSend(const void* sendbuff, size_t count, ncclDataType_t datatype, int peer,
                        ncclComm_t comm, cudaStream_t stream) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("ncclSend");
    if (!in_group_ || peer != 0 || Live(comm) == nullptr || streams_.count(stream) == 0 ||
        !IsDevice(sendbuff, count * Size(datatype))) {
      return ncclInvalidUsage;
    }
    pending_sends_.push_back({sendbuff, count * Size(datatype)});
    group_stream_ = stream;
    return ncclSuccess;
  }
  ncclResult_t NcclRecv(void* recvbuff, size_t count, ncclDataType_t datatype, int peer,
                        ncclComm_t comm, cudaStream_t stream) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("ncclRecv");
    if (!in_group_ || peer != 0 || Live(comm) == nullptr || streams_.count(stream) == 0 ||
        !IsDevice(recvbuff, count * Size(datatype))) {
      return ncclInvalidUsage;
    }
    pending_recvs_.push_back({recvbuff, count * Size(datatype)});
    return ncclSuccess;
  }
  ncclResult_t NcclGroupStart() override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("ncclGroupStart");
    in_group_ = true;
    return ncclSuccess;
  }
  ncclResult_t NcclGroupEnd() override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("ncclGroupEnd");
    in_group_ = false;
    const bool matched = pending_sends_.size() == pending_recvs_.size();
    for (size_t i = 0; matched && i < pending_sends_.size(); ++i) {
      if (pending_sends_[i].second != pending_recvs_[i].second) return ncclInvalidUsage;
      std::memmove(pending_recvs_[i].first, pending_sends_[i].first, pending_sends_[i].second);
    }
    pending_sends_.clear();
    pending_recvs_.clear();
    if (!matched) return ncclInvalidUsage;
    if (group_stream_ != nullptr) streams_[group_stream_] = stream_polls_not_ready;
    return ncclSuccess;
  }

  const char* NcclGetErrorString(ncclResult_t result) override {
    return result == ncclRemoteError ? "fake: remote process exited or there was a network error"
                                     : "fake: nccl error";
  }
  const char* NcclGetLastError(ncclComm_t comm) override {
    (void)comm;
    absl::MutexLock lock(&mu_);
    return last_error_.c_str();  // stable: only InjectAsyncError changes it
  }

  cudaError_t CudaSetDevice(int device) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("cudaSetDevice");
    if (set_device_result != cudaSuccess) return set_device_result;
    return device == 0 ? cudaSuccess : cudaErrorInvalidDevice;
  }
  cudaError_t CudaMalloc(void** dev_ptr, size_t size) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("cudaMalloc");
    auto block = std::make_unique<char[]>(size);
    *dev_ptr = block.get();
    allocations_.emplace(*dev_ptr, std::make_pair(std::move(block), size));
    return cudaSuccess;
  }
  cudaError_t CudaFree(void* dev_ptr) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("cudaFree");
    return allocations_.erase(dev_ptr) == 1 ? cudaSuccess : cudaErrorInvalidValue;
  }
  cudaError_t CudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("cudaMemcpy");
    const bool ok = (kind == cudaMemcpyHostToDevice && IsDevice(dst, count)) ||
                    (kind == cudaMemcpyDeviceToHost && IsDevice(src, count));
    if (!ok) return cudaErrorInvalidValue;
    std::memcpy(dst, src, count);
    return cudaSuccess;
  }
  cudaError_t CudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("cudaStreamCreateWithFlags");
    stream_flags_.push_back(flags);
    *stream = reinterpret_cast<cudaStream_t>(++last_stream_id_);
    streams_[*stream] = 0;
    return cudaSuccess;
  }
  cudaError_t CudaStreamDestroy(cudaStream_t stream) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("cudaStreamDestroy");
    return streams_.erase(stream) == 1 ? cudaSuccess : cudaErrorInvalidValue;
  }
  cudaError_t CudaStreamQuery(cudaStream_t stream) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("cudaStreamQuery");
    auto it = streams_.find(stream);
    if (it == streams_.end()) return cudaErrorInvalidValue;
    if (it->second > 0) {
      --it->second;
      return cudaErrorNotReady;
    }
    return cudaSuccess;
  }

  cudaError_t CudaDeviceGetPCIBusId(char* pci_bus_id, int len, int device) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("cudaDeviceGetPCIBusId");
    if (device != 0) return cudaErrorInvalidDevice;
    std::snprintf(pci_bus_id, static_cast<size_t>(len), "0000:3b:00.0");
    return cudaSuccess;
  }
  cudaError_t CudaGetDeviceProperties(cudaDeviceProp* prop, int device) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("cudaGetDeviceProperties");
    if (device != 0) return cudaErrorInvalidDevice;
    for (int i = 0; i < 16; ++i) prop->uuid.bytes[i] = static_cast<char>(0xa0 + i);
    return cudaSuccess;
  }
  cudaError_t CudaGetLastError() override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("cudaGetLastError");
    return cudaSuccess;
  }
  const char* CudaGetErrorName(cudaError_t error) override {
    return error == cudaErrorNoDevice ? "fakeErrorNoDevice" : "fakeError";
  }
  const char* CudaGetErrorString(cudaError_t error) override {
    (void)error;
    return "fake cuda error";
  }

 private:
  struct Comm {
    int polls_in_progress = 0;
    ncclResult_t async_error = ncclSuccess;
    bool released = false;
    bool aborted = false;
  };

  static std::string UniqueIdBytes(int n) {
    std::string bytes(sizeof(ncclUniqueId::internal), '\0');
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(n * 31 + i);
    return bytes;
  }
  static size_t Size(ncclDataType_t dtype) {
    switch (dtype) {
      case ncclInt8:
      case ncclUint8:
        return 1;
      case ncclInt32:
      case ncclUint32:
      case ncclFloat32:
        return 4;
      case ncclInt64:
      case ncclUint64:
      case ncclFloat64:
        return 8;
      default:
        return 2;
    }
  }

  ncclComm_t NewComm(int polls_in_progress) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto comm = std::make_unique<Comm>();
    comm->polls_in_progress = polls_in_progress;
    ncclComm_t handle = reinterpret_cast<ncclComm_t>(comm.get());
    comms_.emplace(handle, std::move(comm));
    return handle;
  }
  Comm* Live(ncclComm_t comm) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = comms_.find(comm);
    return (it == comms_.end() || it->second->released) ? nullptr : it->second.get();
  }
  bool IsDevice(const void* p, size_t n) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const uintptr_t c = reinterpret_cast<uintptr_t>(p);
    for (const auto& [base, block] : allocations_) {
      const uintptr_t b = reinterpret_cast<uintptr_t>(base);
      if (c >= b && c + n <= b + block.second) return true;
    }
    return false;
  }
  ncclResult_t CopyOnStream(const void* send, void* recv, size_t bytes, ncclComm_t comm,
                            cudaStream_t stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = streams_.find(stream);
    if (Live(comm) == nullptr || it == streams_.end() || !IsDevice(send, bytes) ||
        !IsDevice(recv, bytes)) {
      return ncclInvalidArgument;
    }
    std::memmove(recv, send, bytes);
    it->second = stream_polls_not_ready;
    return ncclSuccess;
  }

  mutable absl::Mutex mu_;
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
  std::vector<InitCall> inits_ ABSL_GUARDED_BY(mu_);
  std::vector<SplitCall> splits_ ABSL_GUARDED_BY(mu_);
  std::vector<OpCall> ops_ ABSL_GUARDED_BY(mu_);
  std::vector<unsigned int> stream_flags_ ABSL_GUARDED_BY(mu_);
  int ids_made_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<ncclComm_t, std::unique_ptr<Comm>> comms_ ABSL_GUARDED_BY(mu_);
  std::map<cudaStream_t, int> streams_ ABSL_GUARDED_BY(mu_);  // -> "not ready" answers left
  uintptr_t last_stream_id_ ABSL_GUARDED_BY(mu_) = 0x1000;
  std::map<void*, std::pair<std::unique_ptr<char[]>, size_t>> allocations_ ABSL_GUARDED_BY(mu_);
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  bool in_group_ ABSL_GUARDED_BY(mu_) = false;
  cudaStream_t group_stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<std::pair<const void*, size_t>> pending_sends_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<void*, size_t>> pending_recvs_ ABSL_GUARDED_BY(mu_);
};

// `n` copies of `name`, to spell out the polls.
std::vector<std::string> Times(int n, const std::string& name) {
  return std::vector<std::string>(static_cast<size_t>(n), name);
}

std::vector<std::string> Concat(std::initializer_list<std::vector<std::string>> parts) {
  std::vector<std::string> all;
  for (const auto& part : parts) all.insert(all.end(), part.begin(), part.end());
  return all;
}

class NcclOnFakeTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> MakeNccl(NcclGroupMode mode = NcclGroupMode::kSplitFromWorld) {
    BackendOptions options;
    options.nccl_api = &fake_;
    options.nccl_group_mode = mode;
    options.op_timeout = absl::Seconds(10);
    absl::StatusOr<std::unique_ptr<Backend>> backend = MakeBackend("nccl", options);
    EXPECT_THAT(backend, IsOk());
    return *std::move(backend);
  }

  // A device buffer of the fake holding `values`.
  template <typename T>
  T* DeviceCopy(const std::vector<T>& values) {
    void* p = nullptr;
    EXPECT_EQ(fake_.CudaMalloc(&p, values.size() * sizeof(T)), cudaSuccess);
    EXPECT_EQ(fake_.CudaMemcpy(p, values.data(), values.size() * sizeof(T), cudaMemcpyHostToDevice),
              cudaSuccess);
    return static_cast<T*>(p);
  }
  template <typename T>
  std::vector<T> Read(const T* p, size_t n) {
    std::vector<T> out(n);
    EXPECT_EQ(fake_.CudaMemcpy(out.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return out;
  }

  FakeNcclApi fake_;  // outlives the backend and the communicators of each test
  InMemoryRendezvousStore store_;
};

TEST_F(NcclOnFakeTest, MakeBackend_UsesTheApiOfTheOptions) {
  std::unique_ptr<Backend> backend = MakeNccl();
  auto* nccl = dynamic_cast<NcclBackend*>(backend.get());
  ASSERT_NE(nccl, nullptr);
  EXPECT_EQ(&nccl->api(), &fake_);
}

// The whole life of a world of one: non-blocking init polled until it completes, the verification
// sum staged through device memory, orderly finalize + destroy, and nothing left behind.
TEST_F(NcclOnFakeTest, WorldOfOne_InitInProgress_PollsUntilReady_VerifiesAndDestroys) {
  fake_.init_polls_in_progress = 3;
  fake_.finalize_polls_in_progress = 2;
  fake_.stream_polls_not_ready = 2;
  std::unique_ptr<Backend> backend = MakeNccl();
  const std::string id = fake_.NextUniqueId();

  absl::StatusOr<std::unique_ptr<Communicator>> world =
      backend->CreateWorld({0, 1, 0}, store_, absl::Now() + absl::Seconds(10));
  ASSERT_THAT(world, IsOk());
  Communicator& w = **world;
  EXPECT_EQ(w.state(), CommState::kReady);
  EXPECT_NE(w.raw_handle(), nullptr);
  // Rank 0 made the id, published it, and initialised with it: one rank, non-blocking, named.
  absl::StatusOr<std::string> published = store_.Get("world/nccl_id", absl::ZeroDuration());
  ASSERT_THAT(published, IsOk());
  EXPECT_EQ(*published, id);
  ASSERT_EQ(fake_.inits().size(), 1u);
  EXPECT_EQ(fake_.inits()[0].id, id);
  EXPECT_EQ(fake_.inits()[0].nranks, 1);
  EXPECT_EQ(fake_.inits()[0].rank, 0);
  EXPECT_EQ(fake_.inits()[0].blocking, 0);
  EXPECT_EQ(fake_.inits()[0].name, "cohort world/0");
  EXPECT_THAT(fake_.stream_flags(), ElementsAre(cudaStreamNonBlocking));
  // Three "in progress" answers, then success; the stream and scratch word only after that.
  EXPECT_THAT(
      fake_.calls(),
      ElementsAreArray(Concat({{"cudaSetDevice", "ncclGetUniqueId", "ncclCommInitRankConfig"},
                               Times(4, "ncclCommGetAsyncError"),
                               {"cudaSetDevice", "cudaStreamCreateWithFlags", "cudaMalloc"}})));

  fake_.ClearCalls();
  absl::StatusOr<int64_t> sum = w.SumOverGroup(42);
  ASSERT_THAT(sum, IsOk());
  EXPECT_EQ(*sum, 42);
  // Host value -> device word -> all-reduce on the stream (polled until the stream is done, the
  // async state checked between polls) -> host; the word freed.
  EXPECT_THAT(fake_.calls(),
              ElementsAreArray(Concat({{"cudaSetDevice", "cudaMalloc", "cudaMemcpy",
                                        "cudaSetDevice", "ncclAllReduce", "ncclCommGetAsyncError"},
                                       {"cudaStreamQuery", "ncclCommGetAsyncError"},
                                       {"cudaStreamQuery", "ncclCommGetAsyncError"},
                                       {"cudaStreamQuery", "cudaMemcpy", "cudaFree"}})));
  ASSERT_EQ(fake_.ops().size(), 1u);
  const FakeNcclApi::OpCall op = fake_.ops()[0];  // a copy: ops() returns a new vector
  EXPECT_EQ(op.count, 1u);
  EXPECT_EQ(op.dtype, ncclInt64);
  EXPECT_EQ(op.red, ncclSum);
  EXPECT_EQ(op.send, op.recv);  // in place

  fake_.ClearCalls();
  EXPECT_THAT(w.Destroy(), IsOk());
  EXPECT_EQ(w.state(), CommState::kDestroyed);
  EXPECT_THAT(fake_.calls(),
              ElementsAreArray(Concat({{"cudaSetDevice", "ncclCommFinalize"},
                                       Times(3, "ncclCommGetAsyncError"),
                                       {"ncclCommDestroy", "cudaStreamDestroy", "cudaFree"}})));
  EXPECT_EQ(fake_.live_comms(), 0);
  EXPECT_EQ(fake_.aborted_comms(), 0);
  EXPECT_EQ(fake_.live_streams(), 0u);
  EXPECT_EQ(fake_.live_allocations(), 0u);
}

// A peer that never arrives keeps init in progress: CreateWorld gives up at its deadline and
// aborts the half-made communicator instead of waiting for NCCL's own timeout.
TEST_F(NcclOnFakeTest, WorldOfOne_InitNeverCompletes_DeadlineExceededAndAborted) {
  fake_.init_polls_in_progress = FakeNcclApi::kForever;
  std::unique_ptr<Backend> backend = MakeNccl();
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<Communicator>> world =
      backend->CreateWorld({0, 1, 0}, store_, start + absl::Milliseconds(200));
  const absl::Duration took = absl::Now() - start;
  EXPECT_THAT(world, StatusIs(absl::StatusCode::kDeadlineExceeded,
                              HasSubstr("not every one of the 1 ranks joined; aborted")));
  EXPECT_GE(took, absl::Milliseconds(200));
  EXPECT_LT(took, absl::Seconds(10));
  const std::vector<std::string> calls = fake_.calls();
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.back(), "ncclCommAbort");
  EXPECT_EQ(fake_.aborted_comms(), 1);
  EXPECT_EQ(fake_.live_comms(), 0);
  EXPECT_EQ(fake_.live_streams(), 0u);
  EXPECT_EQ(fake_.live_allocations(), 0u);
}

TEST_F(NcclOnFakeTest, NoDevice_FailedPreconditionWithTheApisText_NoNcclCall) {
  fake_.set_device_result = cudaErrorNoDevice;
  std::unique_ptr<Backend> backend = MakeNccl();
  EXPECT_THAT(backend->CreateWorld({0, 1, 0}, store_, absl::Now() + absl::Seconds(10)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("cudaSetDevice: fakeErrorNoDevice: fake cuda error")));
  EXPECT_THAT(fake_.calls(), ElementsAre("cudaSetDevice"));
}

// Every op of a world of one, on device buffers of the fake.
TEST_F(NcclOnFakeTest, WorldOfOne_EveryOpRunsOnTheStream) {
  std::unique_ptr<Backend> backend = MakeNccl();
  absl::StatusOr<std::unique_ptr<Communicator>> world =
      backend->CreateWorld({0, 1, 0}, store_, absl::Now() + absl::Seconds(10));
  ASSERT_THAT(world, IsOk());
  Communicator& w = **world;

  float* f = DeviceCopy<float>({1.0f, 2.0f});
  EXPECT_THAT(w.AllReduce(f, 2, DataType::kFloat32, ReduceOp::kMax), IsOk());
  EXPECT_THAT(w.Broadcast(f, 2, DataType::kFloat32, 0), IsOk());
  EXPECT_THAT(Read(f, 2), ElementsAre(1.0f, 2.0f));
  EXPECT_THAT(w.Barrier(), IsOk());
  int32_t* in = DeviceCopy<int32_t>({7, 8});
  int32_t* out = DeviceCopy<int32_t>({0, 0});
  EXPECT_THAT(w.AllGather(in, out, 2, DataType::kInt32), IsOk());
  EXPECT_THAT(Read(out, 2), ElementsAre(7, 8));
  int32_t* out2 = DeviceCopy<int32_t>({0, 0});
  EXPECT_THAT(w.AllToAll(in, out2, 2, DataType::kInt32), IsOk());
  EXPECT_THAT(Read(out2, 2), ElementsAre(7, 8));

  std::vector<std::string> ops;
  for (const FakeNcclApi::OpCall& op : fake_.ops()) ops.push_back(op.op);
  EXPECT_THAT(ops, ElementsAre("ncclAllReduce", "ncclBroadcast", "ncclAllReduce", "ncclAllGather"));
  EXPECT_EQ(fake_.ops()[0].red, ncclMax);
  EXPECT_EQ(fake_.ops()[2].dtype, ncclInt32);  // the barrier's scratch word
  const std::vector<std::string> calls = fake_.calls();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "ncclGroupStart"), 1);
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "ncclSend"), 1);
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "ncclRecv"), 1);
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "ncclGroupEnd"), 1);

  for (void* p : std::vector<void*>{f, in, out, out2}) EXPECT_EQ(fake_.CudaFree(p), cudaSuccess);
  EXPECT_THAT(w.Destroy(), IsOk());
  EXPECT_EQ(fake_.live_allocations(), 0u);
}

// Groups split from the world: each split is non-blocking and polled on the parent and the child;
// abort tears every communicator down.
TEST_F(NcclOnFakeTest, CreateGroups_SplitFromWorld_PolledThenAbortedInParallel) {
  fake_.split_polls_in_progress = 2;
  std::unique_ptr<Backend> backend = MakeNccl();
  absl::StatusOr<std::unique_ptr<Communicator>> world =
      backend->CreateWorld({0, 1, 0}, store_, absl::Now() + absl::Seconds(10));
  ASSERT_THAT(world, IsOk());

  fake_.ClearCalls();
  std::vector<GroupRequest> requests = {
      {GroupKind::kTp, 0, {0}, 0}, {GroupKind::kDp, 0, {0}, 0}, {GroupKind::kPp, 0, {0}, 0}};
  absl::StatusOr<GroupSet> groups =
      backend->CreateGroups(**world, requests, store_, absl::Now() + absl::Seconds(10));
  ASSERT_THAT(groups, IsOk());
  ASSERT_EQ(groups->comms.size(), 3u);
  const std::vector<std::string> one_split =
      Concat({{"ncclCommSplit"},
              Times(1 + 3, "ncclCommGetAsyncError"),
              {"cudaSetDevice", "cudaStreamCreateWithFlags", "cudaMalloc"}});
  EXPECT_THAT(fake_.calls(),
              ElementsAreArray(Concat({{"cudaSetDevice"}, one_split, one_split, one_split})));
  const std::vector<FakeNcclApi::SplitCall> splits = fake_.splits();
  ASSERT_EQ(splits.size(), 3u);
  EXPECT_EQ(splits[0].name, "cohort tp/0");
  EXPECT_EQ(splits[1].name, "cohort dp/0");
  EXPECT_EQ(splits[2].name, "cohort pp/0");
  for (const FakeNcclApi::SplitCall& split : splits) {
    EXPECT_EQ(split.color, 0);
    EXPECT_EQ(split.key, 0);
    EXPECT_EQ(split.blocking, 0);
  }
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(groups->timings[k].method, "split");
    absl::StatusOr<int64_t> sum = groups->comms[k]->SumOverGroup(5);
    ASSERT_THAT(sum, IsOk());
    EXPECT_EQ(*sum, 5);
  }

  std::vector<Communicator*> all = {world->get()};
  for (auto& c : groups->comms) all.push_back(c.get());
  TeardownReport report = backend->DestroyAll(all, /*abort=*/true);
  EXPECT_THAT(report.status, IsOk());
  // DestroyAll(abort) aborts, then marks destroyed: every communicator went through ncclCommAbort.
  for (Communicator* c : all) EXPECT_EQ(c->state(), CommState::kDestroyed);
  EXPECT_EQ(fake_.aborted_comms(), 4);
  EXPECT_EQ(fake_.live_comms(), 0);
  EXPECT_EQ(fake_.live_streams(), 0u);
  EXPECT_EQ(fake_.live_allocations(), 0u);
}

// An asynchronous error after READY (a peer died) surfaces through AsyncError and the next op,
// with the text of the api that reported it.
TEST_F(NcclOnFakeTest, AsyncErrorAfterReady_IsUnavailable_AndFailsTheNextOp) {
  std::unique_ptr<Backend> backend = MakeNccl();
  absl::StatusOr<std::unique_ptr<Communicator>> world =
      backend->CreateWorld({0, 1, 0}, store_, absl::Now() + absl::Seconds(10));
  ASSERT_THAT(world, IsOk());
  Communicator& w = **world;
  EXPECT_THAT(w.AsyncError(), IsOk());

  fake_.InjectAsyncError(w.raw_handle(), ncclRemoteError, "peer 1 vanished");
  EXPECT_THAT(w.AsyncError(),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("fake: remote process exited or there was a network error "
                                 "(peer 1 vanished)")));
  EXPECT_THAT(w.SumOverGroup(1), StatusIs(absl::StatusCode::kUnavailable));
  w.Abort();
  EXPECT_EQ(fake_.aborted_comms(), 1);
  EXPECT_EQ(fake_.live_allocations(), 0u);
}

TEST_F(NcclOnFakeTest, DeviceIdentity_ThroughTheApi) {
  DeviceIdentity identity = NcclDeviceIdentity(fake_, 0);
  EXPECT_EQ(identity.pci_bus_id, "0000:3b:00.0");
  EXPECT_EQ(identity.gpu_uuid, "GPU-a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf");
  EXPECT_THAT(fake_.calls(),
              ElementsAre("cudaDeviceGetPCIBusId", "cudaGetDeviceProperties", "cudaGetLastError"));
  EXPECT_THAT(NcclDeviceIdentity(fake_, -1).pci_bus_id, IsEmpty());
}

// Without BackendOptions::nccl_api the backend calls the real libraries, which on a machine
// without a GPU or driver report no device, as before the seam.
TEST(NcclRealApi, IsTheDefault_AndReportsNoDeviceWithoutOne) {
  absl::StatusOr<std::unique_ptr<Backend>> backend = MakeBackend("nccl", BackendOptions());
  ASSERT_THAT(backend, IsOk());
  auto* nccl = dynamic_cast<NcclBackend*>(backend->get());
  ASSERT_NE(nccl, nullptr);
  EXPECT_EQ(&nccl->api(), &RealNcclApi());

  const cudaError_t probe = RealNcclApi().CudaSetDevice(0);
  RealNcclApi().CudaGetLastError();
  if (probe == cudaSuccess) GTEST_SKIP() << "a CUDA device is visible: the gpu tests cover it";
  DeviceIdentity identity = NcclDeviceIdentity(0);
  EXPECT_THAT(identity.pci_bus_id, IsEmpty());
  EXPECT_THAT(identity.gpu_uuid, IsEmpty());
  InMemoryRendezvousStore store;
  EXPECT_THAT((*backend)->CreateWorld({0, 1, 0}, store, absl::Now() + absl::Seconds(10)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("cudaSetDevice")));
  EXPECT_FALSE(store.Contains("world/nccl_id"));
}

}  // namespace
}  // namespace cohort::agent
