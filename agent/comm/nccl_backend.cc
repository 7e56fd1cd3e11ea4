#include "agent/comm/nccl_backend.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/comm/nccl_api.h"
#include "agent/comm/nccl_status.h"

namespace cohort::agent {
namespace {

// Poll interval of NCCL's async state and of the stream: short at first (inits and small ops
// finish in tens of microseconds to milliseconds), capped so a long op costs little CPU.
constexpr absl::Duration kFirstPoll = absl::Microseconds(50);
constexpr absl::Duration kMaxPoll = absl::Milliseconds(1);

// Pause between polls; returns true to give up (abort requested).
using PauseFn = absl::FunctionRef<bool(absl::Duration)>;

absl::Status Annotate(const absl::Status& s, absl::string_view prefix) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(prefix, s.message()));
}

// Polls `comm` until it leaves ncclInProgress (NCCL's documented way to wait on a non-blocking
// communicator: there is no completion callback).
// Errors: the NCCL error it settled on; DEADLINE_EXCEEDED; ABORTED if `pause` says so.
absl::Status AwaitComm(NcclApi& api, ncclComm_t comm, absl::Time deadline, absl::string_view what,
                       PauseFn pause) {
  absl::Duration interval = kFirstPoll;
  for (;;) {
    ncclResult_t state = ncclInProgress;
    if (absl::Status s = NcclToStatus(api, api.NcclCommGetAsyncError(comm, &state),
                                      "ncclCommGetAsyncError(comm, &state)", comm);
        !s.ok()) {
      return s;
    }
    if (state == ncclSuccess) return absl::OkStatus();
    if (state != ncclInProgress) return NcclToStatus(api, state, what, comm);
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(what, " did not complete by the deadline"));
    }
    if (pause(std::min(interval, deadline - now))) {
      return absl::AbortedError(absl::StrCat(what, ": aborted while waiting"));
    }
    interval = std::min(interval * 2, kMaxPoll);
  }
}

ncclConfig_t NonBlockingConfig(const char* name) {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  // Non-blocking: init/split/finalize return ncclInProgress at once and we poll against our own
  // deadline; a stuck init can then be aborted in under a millisecond instead of hanging.
  config.blocking = 0;
  config.commName = name;  // shows up in NCCL's logs
  return config;
}

std::string IdToBytes(const ncclUniqueId& id) {
  return std::string(reinterpret_cast<const char*>(&id), sizeof(id));
}

absl::StatusOr<ncclUniqueId> IdFromBytes(absl::string_view bytes, absl::string_view key) {
  ncclUniqueId id;
  if (bytes.size() != sizeof(id)) {
    return absl::InvalidArgumentError(absl::StrCat("store key '", key, "' holds ", bytes.size(),
                                                   " bytes, not an ncclUniqueId (", sizeof(id),
                                                   ")"));
  }
  std::memcpy(&id, bytes.data(), sizeof(id));
  return id;
}

// Creation waits pause with `pause`, which the backend's CancelBuilds interrupts.
absl::StatusOr<ncclComm_t> InitRank(NcclApi& api, const ncclUniqueId& id, int nranks, int rank,
                                    absl::Time deadline, const std::string& name, PauseFn pause) {
  ncclConfig_t config = NonBlockingConfig(name.c_str());
  ncclComm_t comm = nullptr;
  // The call first: it sets `comm`, which the error text reads (argument order is unspecified).
  const ncclResult_t started = api.NcclCommInitRankConfig(&comm, nranks, id, rank, &config);
  absl::Status s = NcclToStatus(api, started, "ncclCommInitRankConfig", comm);
  if (s.ok()) s = AwaitComm(api, comm, deadline, "ncclCommInitRankConfig", pause);
  if (!s.ok()) {
    if (comm != nullptr) api.NcclCommAbort(comm);
    if (s.code() == absl::StatusCode::kDeadlineExceeded) {
      return absl::DeadlineExceededError(
          absl::StrCat(s.message(), " (not every one of the ", nranks, " ranks joined; aborted)"));
    }
    return s;
  }
  return comm;
}

absl::StatusOr<ncclComm_t> Split(NcclApi& api, ncclComm_t parent, int color, int key,
                                 absl::Time deadline, const std::string& name, PauseFn pause) {
  ncclConfig_t config = NonBlockingConfig(name.c_str());
  ncclComm_t comm = nullptr;
  absl::Status s = NcclToStatus(api, api.NcclCommSplit(parent, color, key, &comm, &config),
                                "ncclCommSplit", parent);
  // Non-blocking split: both the parent and the new communicator report progress through their
  // async state.
  if (s.ok()) s = AwaitComm(api, parent, deadline, "ncclCommSplit (parent)", pause);
  if (s.ok() && comm == nullptr) s = absl::InternalError("ncclCommSplit returned no communicator");
  if (s.ok()) s = AwaitComm(api, comm, deadline, "ncclCommSplit", pause);
  if (!s.ok()) {
    if (comm != nullptr) api.NcclCommAbort(comm);
    return s;
  }
  return comm;
}

ncclDataType_t ToNccl(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
      return ncclFloat32;
    case DataType::kFloat64:
      return ncclFloat64;
    case DataType::kInt32:
      return ncclInt32;
    case DataType::kInt64:
      return ncclInt64;
    case DataType::kUInt8:
      return ncclUint8;
  }
  return ncclFloat32;
}

ncclRedOp_t ToNccl(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kMax:
      return ncclMax;
    case ReduceOp::kMin:
      return ncclMin;
    case ReduceOp::kProd:
      return ncclProd;
  }
  return ncclSum;
}

class NcclCommunicator final : public Communicator {
 public:
  // Takes ownership of the ready `comm`; creates the stream and the barrier scratch word. On
  // failure aborts `comm`.
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> Wrap(NcclApi& api, GroupSpec group,
                                                                absl::Duration timeout, int device,
                                                                ncclComm_t comm,
                                                                GroupTiming timing) {
    std::unique_ptr<NcclCommunicator> c(
        new NcclCommunicator(api, std::move(group), timeout, device, comm));
    absl::Status s = CudaToStatus(api, api.CudaSetDevice(device), "cudaSetDevice");
    if (s.ok()) {
      s = CudaToStatus(api, api.CudaStreamCreateWithFlags(&c->stream_, cudaStreamNonBlocking),
                       "cudaStreamCreateWithFlags");
    }
    if (s.ok()) {
      s = CudaToStatus(api, api.CudaMalloc(reinterpret_cast<void**>(&c->scratch_), sizeof(int32_t)),
                       "cudaMalloc");
    }
    if (!s.ok()) {
      c->Abort();
      return s;
    }
    c->MarkReady(std::move(timing));
    return c;
  }

  ~NcclCommunicator() override { ReleaseOnDestruction(); }

  absl::string_view backend_name() const override { return "nccl"; }

  absl::Status DoAsyncError() const override {
    ncclResult_t state = ncclSuccess;
    if (ncclResult_t r = api_.NcclCommGetAsyncError(comm_, &state); r != ncclSuccess) {
      return NcclToStatus(api_, r, "ncclCommGetAsyncError", comm_);
    }
    if (state == ncclSuccess || state == ncclInProgress) return absl::OkStatus();
    return NcclToStatus(api_, state, "asynchronous error", comm_);
  }
  void* raw_handle() const override { return raw_.load(); }
  int device() const { return device_; }

  // NCCL's buffers are device memory: the value goes through a device word.
  absl::StatusOr<int64_t> SumOverGroup(int64_t value) override {
    if (absl::Status s = CudaToStatus(api_, api_.CudaSetDevice(device_), "cudaSetDevice(device_)");
        !s.ok()) {
      return s;
    }
    void* word = nullptr;
    if (absl::Status s = CudaToStatus(api_, api_.CudaMalloc(&word, sizeof(int64_t)),
                                      "cudaMalloc(&word, sizeof(int64_t))");
        !s.ok()) {
      return s;
    }
    absl::Status s =
        CudaToStatus(api_, api_.CudaMemcpy(word, &value, sizeof(value), cudaMemcpyHostToDevice),
                     "cudaMemcpy to the verification word");
    if (s.ok()) s = AllReduce(word, 1, DataType::kInt64, ReduceOp::kSum);
    if (s.ok()) {
      s = CudaToStatus(api_, api_.CudaMemcpy(&value, word, sizeof(value), cudaMemcpyDeviceToHost),
                       "cudaMemcpy from the verification word");
    }
    api_.CudaFree(word);
    if (!s.ok()) return s;
    return value;
  }
  ncclComm_t comm() const { return comm_; }

 protected:
  absl::Status DoAllReduce(void* buf, size_t count, DataType dtype, ReduceOp op,
                           absl::Duration timeout) override {
    return Run("ncclAllReduce", timeout, [&] {
      return api_.NcclAllReduce(buf, buf, count, ToNccl(dtype), ToNccl(op), comm_, stream_);
    });
  }

  absl::Status DoAllGather(const void* in, void* out, size_t count, DataType dtype,
                           absl::Duration timeout) override {
    return Run("ncclAllGather", timeout,
               [&] { return api_.NcclAllGather(in, out, count, ToNccl(dtype), comm_, stream_); });
  }

  absl::Status DoBroadcast(void* buf, size_t count, DataType dtype, int root,
                           absl::Duration timeout) override {
    return Run("ncclBroadcast", timeout, [&] {
      return api_.NcclBroadcast(buf, buf, count, ToNccl(dtype), root, comm_, stream_);
    });
  }

  absl::Status DoBarrier(absl::Duration timeout) override {
    // NCCL has no barrier: a one-word all-reduce completes only when every rank contributed.
    return Run("ncclAllReduce (barrier)", timeout, [&] {
      return api_.NcclAllReduce(scratch_, scratch_, 1, ncclInt32, ncclSum, comm_, stream_);
    });
  }

  absl::Status DoSend(const void* buf, size_t count, DataType dtype, int peer,
                      absl::Duration timeout) override {
    return Run("ncclSend", timeout,
               [&] { return api_.NcclSend(buf, count, ToNccl(dtype), peer, comm_, stream_); });
  }

  absl::Status DoRecv(void* buf, size_t count, DataType dtype, int peer,
                      absl::Duration timeout) override {
    return Run("ncclRecv", timeout,
               [&] { return api_.NcclRecv(buf, count, ToNccl(dtype), peer, comm_, stream_); });
  }

  absl::Status DoAllToAll(const void* in, void* out, size_t count_per_peer, DataType dtype,
                          absl::Duration timeout) override {
    const size_t block = count_per_peer * DataTypeSize(dtype);
    return Run("ncclSend/ncclRecv (all-to-all)", timeout, [&] {
      ncclResult_t r = api_.NcclGroupStart();
      if (r != ncclSuccess) return r;
      ncclResult_t first = ncclSuccess;
      auto keep = [&](ncclResult_t x) {
        if (first == ncclSuccess && x != ncclSuccess && x != ncclInProgress) first = x;
      };
      for (int peer = 0; peer < size(); ++peer) {
        keep(api_.NcclSend(static_cast<const char*>(in) + peer * block, count_per_peer,
                           ToNccl(dtype), peer, comm_, stream_));
        keep(api_.NcclRecv(static_cast<char*>(out) + peer * block, count_per_peer, ToNccl(dtype),
                           peer, comm_, stream_));
      }
      r = api_.NcclGroupEnd();  // always close the group, even after an error inside it
      return first != ncclSuccess ? first : r;
    });
  }

  // Nothing to do: every wait of an op is a poll whose pause Abort() interrupts (aborting()).
  void Interrupt() override {}

  absl::Status Release(bool abort, absl::Time deadline) override {
    raw_.store(nullptr);
    if (comm_ == nullptr) return absl::OkStatus();
    absl::Status status = CudaToStatus(api_, api_.CudaSetDevice(device_), "cudaSetDevice");
    bool do_abort = abort;
    if (!abort) {
      // Orderly: finalize flushes outstanding work and quiesces the proxy (non-blocking, polled),
      // after which ncclCommDestroy frees locally without blocking.
      status = NcclToStatus(api_, api_.NcclCommFinalize(comm_), "ncclCommFinalize", comm_);
      if (status.ok()) {
        status = AwaitComm(api_, comm_, deadline, "ncclCommFinalize",
                           [this](absl::Duration d) { return PauseUnlessAborting(d); });
      }
      if (status.ok()) {
        status = NcclToStatus(api_, api_.NcclCommDestroy(comm_), "ncclCommDestroy", comm_);
      } else {
        do_abort = true;
        status = Annotate(status, "orderly teardown failed, aborted instead: ");
      }
    }
    if (do_abort) {
      absl::Status s = NcclToStatus(api_, api_.NcclCommAbort(comm_), "ncclCommAbort", nullptr);
      if (status.ok()) status = s;
    }
    comm_ = nullptr;
    if (stream_ != nullptr) api_.CudaStreamDestroy(stream_);
    if (scratch_ != nullptr) api_.CudaFree(scratch_);
    stream_ = nullptr;
    scratch_ = nullptr;
    return Annotate(status, Describe());
  }

 private:
  NcclCommunicator(NcclApi& api, GroupSpec group, absl::Duration timeout, int device,
                   ncclComm_t comm)
      : Communicator(std::move(group), timeout),
        api_(api),
        device_(device),
        comm_(comm),
        raw_(comm) {}

  // Enqueues one op on the stream and waits until the stream has run it.
  absl::Status Run(absl::string_view what, absl::Duration timeout,
                   absl::FunctionRef<ncclResult_t()> enqueue) {
    const absl::Time deadline = absl::Now() + timeout;
    auto pause = [this](absl::Duration d) { return PauseUnlessAborting(d); };
    // The current device is per thread and ops may come from any thread.
    if (absl::Status s = CudaToStatus(api_, api_.CudaSetDevice(device_), "cudaSetDevice(device_)");
        !s.ok()) {
      return s;
    }
    if (absl::Status s = NcclToStatus(api_, enqueue(), what, comm_); !s.ok()) return s;
    // A non-blocking communicator may still be enqueueing (ncclInProgress).
    if (absl::Status s = AwaitComm(api_, comm_, deadline, what, pause); !s.ok()) return s;
    absl::Duration interval = kFirstPoll;
    for (;;) {
      const cudaError_t e = api_.CudaStreamQuery(stream_);
      if (e == cudaSuccess) return absl::OkStatus();
      if (e != cudaErrorNotReady) return CudaToStatus(api_, e, absl::StrCat(what, " (stream)"));
      // A peer that died shows up here, not on the stream.
      ncclResult_t state = ncclSuccess;
      if (absl::Status s = NcclToStatus(api_, api_.NcclCommGetAsyncError(comm_, &state),
                                        "ncclCommGetAsyncError(comm_, &state)", comm_);
          !s.ok()) {
        return s;
      }
      if (state != ncclSuccess && state != ncclInProgress) {
        return NcclToStatus(api_, state, what, comm_);
      }
      const absl::Time now = absl::Now();
      if (now >= deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat(what, " did not complete within ", absl::FormatDuration(timeout)));
      }
      if (pause(std::min(interval, deadline - now))) {
        return absl::AbortedError(absl::StrCat(what, ": aborted"));
      }
      interval = std::min(interval * 2, kMaxPoll);
    }
  }

  NcclApi& api_;
  const int device_;
  ncclComm_t comm_;
  cudaStream_t stream_ = nullptr;
  int32_t* scratch_ = nullptr;
  std::atomic<void*> raw_;
};

}  // namespace

std::string NcclVersion() {
  return absl::StrFormat("%d.%d.%d", NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH);
}

DeviceIdentity NcclDeviceIdentity(int device) { return NcclDeviceIdentity(RealNcclApi(), device); }

DeviceIdentity NcclDeviceIdentity(NcclApi& api, int device) {
  DeviceIdentity identity;
  if (device < 0) return identity;
  char bus[64] = {0};
  if (api.CudaDeviceGetPCIBusId(bus, sizeof(bus), device) == cudaSuccess) {
    identity.pci_bus_id = bus;
  }
  cudaDeviceProp prop;
  if (api.CudaGetDeviceProperties(&prop, device) == cudaSuccess) {
    std::string uuid = "GPU-";
    for (int i = 0; i < 16; ++i) {
      absl::StrAppendFormat(&uuid, "%02x", static_cast<unsigned char>(prop.uuid.bytes[i]));
      if (i == 3 || i == 5 || i == 7 || i == 9) uuid += "-";
    }
    identity.gpu_uuid = uuid;
  }
  api.CudaGetLastError();  // clear the sticky "no device" error for later calls
  return identity;
}

std::string GroupNcclIdKey(GroupKind kind, int group_index) {
  return absl::StrCat(GroupLabel(kind, group_index), "/nccl_id");
}

absl::StatusOr<std::string> NewNcclUniqueId() { return NewNcclUniqueId(RealNcclApi()); }

absl::StatusOr<std::string> NewNcclUniqueId(NcclApi& api) {
  ncclUniqueId id;
  if (absl::Status s = NcclToStatus(api, api.NcclGetUniqueId(&id), "ncclGetUniqueId(&id)", nullptr);
      !s.ok()) {
    return s;
  }
  return IdToBytes(id);
}

NcclBackend::NcclBackend(BackendOptions options)
    : Backend(std::move(options)),
      api_(this->options().nccl_api != nullptr ? *this->options().nccl_api : RealNcclApi()) {}

void NcclBackend::CancelBuilds(const std::string& reason) {
  absl::MutexLock lock(&cancel_mu_);
  cancelled_ = reason;
}

void NcclBackend::ResumeBuilds() {
  absl::MutexLock lock(&cancel_mu_);
  cancelled_.reset();
}

bool NcclBackend::PauseUnlessCancelled(absl::Duration d) {
  absl::MutexLock lock(&cancel_mu_);
  auto cancelled = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(cancel_mu_) { return cancelled_.has_value(); };
  cancel_mu_.AwaitWithTimeout(absl::Condition(&cancelled), d);
  return cancelled_.has_value();
}

absl::Status NcclBackend::BuildError(const absl::Status& s, absl::string_view label) {
  absl::MutexLock lock(&cancel_mu_);
  // A cancel decides how the build ended, whatever the wait it interrupted reported (an ABORTED
  // poll, or a store read cut short).
  if (cancelled_.has_value()) {
    return absl::AbortedError(absl::StrCat(label, "cancelled: ", *cancelled_));
  }
  if (s.ok()) return absl::AbortedError(absl::StrCat(label, "cancelled"));  // resumed since
  return Annotate(s, label);
}

absl::StatusOr<std::unique_ptr<Backend>> MakeNcclBackend(const BackendOptions& options) {
  return std::make_unique<NcclBackend>(options);
}

namespace {

// Rank `rank_in_group` 0 creates and publishes the id under `key`; the others wait for it.
absl::StatusOr<ncclUniqueId> ExchangeId(NcclApi& api, RendezvousStore& store, absl::string_view key,
                                        bool creator, absl::Time deadline,
                                        absl::Duration* store_wait) {
  if (creator) {
    absl::StatusOr<std::string> id = NewNcclUniqueId(api);
    if (!id.ok()) return id.status();
    if (absl::Status s = store.Set(key, *id); !s.ok()) return s;
    return IdFromBytes(*id, key);
  }
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> bytes =
      store.Get(key, std::max(deadline - absl::Now(), absl::ZeroDuration()));
  *store_wait += absl::Now() - start;
  if (!bytes.ok()) return bytes.status();
  return IdFromBytes(*bytes, key);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> NcclBackend::CreateWorld(const WorldSpec& spec,
                                                                       RendezvousStore& store,
                                                                       absl::Time deadline) {
  if (absl::Status s = ValidateWorldSpec(spec); !s.ok()) return s;
  const absl::Time start = absl::Now();
  const std::string label = "nccl world/0: ";
  auto pause = [this](absl::Duration d) { return PauseUnlessCancelled(d); };
  if (pause(absl::ZeroDuration())) return BuildError(absl::OkStatus(), label);
  if (absl::Status s = CudaToStatus(api_, api_.CudaSetDevice(spec.device_index), "cudaSetDevice");
      !s.ok()) {
    return Annotate(s, absl::StrCat(label, "device ", spec.device_index, ": "));
  }
  GroupTiming timing;
  timing.kind = GroupKind::kWorld;
  timing.group_size = spec.world_size;
  timing.method = "unique_id";
  absl::StatusOr<ncclUniqueId> id =
      ExchangeId(api_, store, kWorldNcclIdKey, spec.rank == 0, deadline, &timing.store_wait);
  if (!id.ok()) return BuildError(id.status(), label);
  absl::StatusOr<ncclComm_t> comm =
      InitRank(api_, *id, spec.world_size, spec.rank, deadline, "cohort world/0", pause);
  if (!comm.ok()) return BuildError(comm.status(), label);
  timing.total = absl::Now() - start;
  absl::StatusOr<std::unique_ptr<NcclCommunicator>> wrapped = NcclCommunicator::Wrap(
      api_, WorldGroup(spec), options().op_timeout, spec.device_index, *comm, std::move(timing));
  if (!wrapped.ok()) return Annotate(wrapped.status(), label);
  return std::unique_ptr<Communicator>(*std::move(wrapped));
}

absl::StatusOr<GroupSet> NcclBackend::CreateGroups(Communicator& world,
                                                   const std::vector<GroupRequest>& requests,
                                                   RendezvousStore& store, absl::Time deadline) {
  if (absl::Status s = ValidateGroupRequests(world, requests); !s.ok()) return s;
  auto* nccl_world = dynamic_cast<NcclCommunicator*>(&world);
  if (nccl_world == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "nccl: CreateGroups needs an NCCL world communicator, got backend ", world.backend_name()));
  }
  if (world.state() != CommState::kReady || nccl_world->comm() == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("nccl: the world communicator is ",
                                                      CommStateName(world.state()), ", not ready"));
  }
  if (absl::Status s =
          CudaToStatus(api_, api_.CudaSetDevice(nccl_world->device()), "cudaSetDevice");
      !s.ok()) {
    return Annotate(s, "nccl: ");
  }

  GroupSet set;
  auto fail = [&](const GroupRequest& r, const absl::Status& s) {
    std::vector<Communicator*> created;
    for (auto& c : set.comms) created.push_back(c.get());
    DestroyAll(created, /*abort=*/true);
    return BuildError(s, absl::StrCat("nccl ", GroupLabel(r.kind, r.group_index), ": "));
  };
  auto pause = [this](absl::Duration d) { return PauseUnlessCancelled(d); };
  // Sequential on purpose: a split is collective over the whole world, and every rank issues the
  // kinds in the same order, so rank A's k-th split meets rank B's k-th split.
  for (const GroupRequest& r : requests) {
    if (pause(absl::ZeroDuration())) return fail(r, absl::OkStatus());
    const absl::Time start = absl::Now();
    const std::string name = absl::StrCat("cohort ", GroupLabel(r.kind, r.group_index));
    GroupTiming timing;
    timing.kind = r.kind;
    timing.group_index = r.group_index;
    timing.group_size = static_cast<int>(r.ranks.size());
    absl::StatusOr<ncclComm_t> comm;
    if (options().nccl_group_mode == NcclGroupMode::kSplitFromWorld) {
      timing.method = "split";
      comm = Split(api_, nccl_world->comm(), r.group_index, r.rank_in_group, deadline, name, pause);
    } else {
      timing.method = "unique_id";
      absl::StatusOr<ncclUniqueId> id =
          ExchangeId(api_, store, GroupNcclIdKey(r.kind, r.group_index), r.rank_in_group == 0,
                     deadline, &timing.store_wait);
      if (!id.ok()) return fail(r, id.status());
      comm = InitRank(api_, *id, static_cast<int>(r.ranks.size()), r.rank_in_group, deadline, name,
                      pause);
    }
    if (!comm.ok()) return fail(r, comm.status());
    timing.total = absl::Now() - start;
    absl::StatusOr<std::unique_ptr<NcclCommunicator>> wrapped =
        NcclCommunicator::Wrap(api_, r, options().op_timeout, nccl_world->device(), *comm, timing);
    if (!wrapped.ok()) return fail(r, wrapped.status());
    set.timings.push_back(timing);
    set.comms.push_back(*std::move(wrapped));
  }
  return set;
}

}  // namespace cohort::agent
