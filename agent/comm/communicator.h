// One communicator: the handle an agent holds for one group (world, tp group 3, ...).
//
// Backends (backend.h) create communicators; this class owns what every backend shares: the
// group's identity, argument checks, the state machine, timeouts, op serialization and
// Abort/Destroy bookkeeping. Backends implement the protected Do*/Interrupt/Release hooks.
//
// State machine (state()):
//
//   kCreating --(backend finished init)--> kReady --(op failed: timeout, peer lost)--> kError
//                                            |  \                                     |  |
//                                            |   `-------------- Abort() -----------. |  |
//                                            |                                       v v |
//                                            |                                 kAborted  |
//                                            |                                       |   |
//                                            `---------------- Destroy() ------------+---'
//                                                                                    v
//                                                                               kDestroyed
//
// kCreating is only seen inside a backend: CreateWorld/CreateGroups hand out ready communicators.
// kError means the transport is poisoned (Gloo closes every pair of a context after an op
// timeout; NCCL has no recovery either); the only ways out are Abort() and Destroy().
//
// Threading: ops may be called from any thread; the communicator runs one op at a time (a second
// concurrent op waits, bounded by its own timeout). Abort() may be called from any thread at any
// time, including while an op is blocked in another thread: it unblocks that op. Destroy() must
// not race with ops (it fails with FAILED_PRECONDITION while one is in flight).
//
// Buffers: host memory for Gloo and none, device memory (of the communicator's device) for NCCL.
// A count of 0 is a no-op that succeeds without communicating (on every rank alike).

#ifndef COHORT_AGENT_COMM_COMMUNICATOR_H_
#define COHORT_AGENT_COMM_COMMUNICATOR_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/layout.h"

namespace cohort::agent {

enum class DataType : int { kFloat32, kFloat64, kInt32, kInt64, kUInt8 };
size_t DataTypeSize(DataType dtype);
absl::string_view DataTypeName(DataType dtype);

enum class ReduceOp : int { kSum, kMax, kMin, kProd };
absl::string_view ReduceOpName(ReduceOp op);

enum class CommState : int { kCreating, kReady, kError, kAborted, kDestroyed };
absl::string_view CommStateName(CommState state);

// Which group a communicator serves and where this rank sits in it.
struct GroupSpec {
  GroupKind kind = GroupKind::kWorld;
  int group_index = 0;
  std::vector<int> ranks;  // global ranks of the group, ascending
  int rank_in_group = 0;   // index of this rank in `ranks`
};

// "tp/3" (kind name / group index): used in store keys, logs and error messages.
std::string GroupLabel(GroupKind kind, int group_index);

// How long forming one communicator took (reported to the coordinator with READY).
struct GroupTiming {
  GroupKind kind = GroupKind::kWorld;
  int group_index = 0;
  int group_size = 1;
  // "full_mesh" (Gloo context), "split" (ncclCommSplit), "unique_id" (ncclCommInitRankConfig),
  // "local" (size-1 group, no network), "none" (backend none).
  std::string method;
  absl::Duration store_wait;  // part of `total` spent blocked on the rendezvous store
  absl::Duration total;       // create / split / connect, wall time
};

class Communicator {
 public:
  // Unset = the communicator's default_timeout().
  using Timeout = std::optional<absl::Duration>;

  virtual ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  const GroupSpec& group() const { return group_; }
  GroupKind kind() const { return group_.kind; }
  int group_index() const { return group_.group_index; }
  int rank() const { return group_.rank_in_group; }
  int size() const { return static_cast<int>(group_.ranks.size()); }
  // Global ranks of the group, ascending.
  const std::vector<int>& ranks() const { return group_.ranks; }
  absl::Duration default_timeout() const { return default_timeout_; }
  const GroupTiming& creation_timing() const { return timing_; }

  // "gloo", "nccl", "none".
  virtual absl::string_view backend_name() const = 0;
  // Whether ops move data between the ranks: false for backend none, whose groups of more than
  // one rank answer every op with UNIMPLEMENTED (so there is nothing to verify or check).
  virtual bool has_data_plane() const { return true; }
  // ncclComm_t (NCCL), gloo::Context* (Gloo), nullptr (none, or once released). Borrowed: valid
  // until Abort()/Destroy() returns; do not tear it down yourself.
  virtual void* raw_handle() const = 0;

  // The backend's asynchronous error, e.g. ncclCommGetAsyncError (a peer that died, a network
  // failure), without running an operation. OK when there is none, or once released.
  absl::Status AsyncError() const;

  // --- Operations ------------------------------------------------------------------------------
  // Common error contract of every op below:
  //   INVALID_ARGUMENT    null buffer with count > 0, root/peer out of range, send/recv to self;
  //                       the communicator is unchanged.
  //   UNIMPLEMENTED       the backend has no data plane for this group (none, size > 1); unchanged.
  //   ABORTED             Abort() was called (before or during the op).
  //   FAILED_PRECONDITION the communicator is in kError or kDestroyed (the message carries the
  //                       error that poisoned it).
  //   DEADLINE_EXCEEDED   the op (or the wait for a concurrent op) did not finish in time; the
  //                       communicator moves to kError.
  //   UNAVAILABLE / INTERNAL  transport failure (e.g. a peer closed its connection); kError.

  // In place: buf[i] = op over all ranks of buf[i].
  absl::Status AllReduce(void* buf, size_t count, DataType dtype, ReduceOp op,
                         Timeout timeout = {});
  // out (count * size() elements) = concatenation of every rank's `in` (count elements), in rank
  // order.
  absl::Status AllGather(const void* in, void* out, size_t count, DataType dtype,
                         Timeout timeout = {});
  // In place from group rank `root`.
  absl::Status Broadcast(void* buf, size_t count, DataType dtype, int root, Timeout timeout = {});
  absl::Status Barrier(Timeout timeout = {});
  // Point to point with group rank `peer`; messages between a pair are matched in order.
  absl::Status Send(const void* buf, size_t count, DataType dtype, int peer, Timeout timeout = {});
  absl::Status Recv(void* buf, size_t count, DataType dtype, int peer, Timeout timeout = {});
  // in and out hold count_per_peer * size() elements; block j of `in` goes to rank j, and block j
  // of `out` comes from rank j.
  absl::Status AllToAll(const void* in, void* out, size_t count_per_peer, DataType dtype,
                        Timeout timeout = {});

  // The sum of `value` over the group: the verification all-reduce of a build and of a check.
  // Takes a host value whatever the backend's buffers are (the NCCL communicator stages it through
  // device memory), so callers need no CUDA.
  // Errors: as AllReduce; INTERNAL when staging through device memory fails.
  virtual absl::StatusOr<int64_t> SumOverGroup(int64_t value);

  // --- Lifecycle -------------------------------------------------------------------------------
  // Fails in-flight ops (they return ABORTED promptly), makes every later op fail with ABORTED,
  // waits (bounded, a few seconds) for in-flight ops to leave, then releases the transport the
  // fast way (ncclCommAbort; closing Gloo's sockets). Idempotent; safe from any thread. During a
  // Destroy() it asks the orderly teardown to give up and abort instead.
  void Abort();
  // The first half of Abort(): fails in-flight and later ops (as Abort) and returns at once,
  // leaving the release (which may be slow: ncclCommAbort) to a later Abort() or Destroy(). For
  // a caller that must report the abort before the resources are freed.
  void AbortOps();
  // Whether releasing this communicator can wait (for peers, a device, a proxy thread): callers
  // that release several at once then give each its own thread. False ("none": nothing to
  // release): they are released one after another on the caller's thread, with no thread
  // starts, which were most of a "none" teardown (40,000 of them for 4,096 simulated agents in
  // one process took 15 s).
  virtual bool release_waits() const { return true; }

  // Orderly teardown (ncclCommFinalize + ncclCommDestroy; closing Gloo's context). If it does not
  // finish within `timeout` (default: default_timeout()) it falls back to abort. Destroying an
  // aborted or failed communicator only marks it destroyed (releasing what Abort left).
  // Errors: FAILED_PRECONDITION while an op is in flight (call Abort() instead);
  //         DEADLINE_EXCEEDED when it had to fall back to abort (it is destroyed nonetheless).
  absl::Status Destroy(Timeout timeout = {});

  CommState state() const;
  // The error that moved the communicator to kError or kAborted; OK otherwise.
  absl::Status last_error() const;

  // Ops currently running or waiting to run (for inspection: "is a collective stuck?").
  int ops_in_flight() const;
  // Waits until at least `n` ops are in flight; false on timeout. Lets tests act on a blocked op
  // without sleeping.
  bool AwaitOpsInFlight(int n, absl::Duration timeout) const;

 protected:
  Communicator(GroupSpec group, absl::Duration default_timeout);

  // kCreating -> kReady; called by the backend once the transport is up.
  void MarkReady(GroupTiming timing);

  // Waits up to `duration` or until Abort() is called; returns true if aborting. Polling loops
  // (NCCL has no completion callback) use it as their pause so that Abort wakes them at once.
  bool PauseUnlessAborting(absl::Duration duration) const;
  bool aborting() const;

  // Derived destructors call this first: releases the transport if nobody did (orderly when ready,
  // abort otherwise). It cannot live in ~Communicator because Release is virtual.
  void ReleaseOnDestruction();

  // "gloo tp/3 rank 1/2: " prefix for messages.
  std::string Describe() const;

  // --- Backend hooks. Arguments are already validated; count > 0; `timeout` > 0. At most one
  // Do* runs at a time. They may run concurrently with Interrupt().
  virtual absl::Status DoAllReduce(void* buf, size_t count, DataType dtype, ReduceOp op,
                                   absl::Duration timeout) = 0;
  virtual absl::Status DoAllGather(const void* in, void* out, size_t count, DataType dtype,
                                   absl::Duration timeout) = 0;
  virtual absl::Status DoBroadcast(void* buf, size_t count, DataType dtype, int root,
                                   absl::Duration timeout) = 0;
  virtual absl::Status DoBarrier(absl::Duration timeout) = 0;
  virtual absl::Status DoSend(const void* buf, size_t count, DataType dtype, int peer,
                              absl::Duration timeout) = 0;
  virtual absl::Status DoRecv(void* buf, size_t count, DataType dtype, int peer,
                              absl::Duration timeout) = 0;
  virtual absl::Status DoAllToAll(const void* in, void* out, size_t count_per_peer, DataType dtype,
                                  absl::Duration timeout) = 0;
  // Makes in-flight Do* calls return promptly with an error. Must be thread-safe against them.
  // Called at most once, never concurrently with Release.
  virtual void Interrupt() = 0;
  // Backends with an asynchronous error channel override this; called under the release lock,
  // so the transport is alive.
  virtual absl::Status DoAsyncError() const { return absl::OkStatus(); }
  // Frees the transport. Never called while a Do* runs; called at most once. `abort` asks for the
  // fast path; otherwise teardown is orderly and must give up (falling back to abort) at
  // `deadline` or when aborting() turns true, returning DEADLINE_EXCEEDED / ABORTED.
  virtual absl::Status Release(bool abort, absl::Time deadline) = 0;

 private:
  // Runs one op: state check, serialization, timeout, error classification.
  absl::Status RunOp(absl::string_view name, Timeout timeout,
                     absl::FunctionRef<absl::Status(absl::Duration)> op);
  absl::Status ReleaseOnce(bool abort, absl::Time deadline);

  const GroupSpec group_;
  const absl::Duration default_timeout_;
  GroupTiming timing_;  // written once by MarkReady before the communicator is handed out

  mutable absl::Mutex mu_;
  CommState state_ ABSL_GUARDED_BY(mu_) = CommState::kCreating;
  absl::Status last_error_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool aborting_ ABSL_GUARDED_BY(mu_) = false;

  // Serializes ops: collectives must be issued in the same order on every rank, and the
  // backends' per-op state (Gloo tags, the NCCL stream) is not meant for concurrent use.
  absl::Mutex op_mu_;

  // Serializes Release between Abort, Destroy and the destructor.
  mutable absl::Mutex release_mu_;
  bool released_ ABSL_GUARDED_BY(release_mu_) = false;
};

}  // namespace cohort::agent

#endif  // COHORT_AGENT_COMM_COMMUNICATOR_H_
