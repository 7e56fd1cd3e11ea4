#include "agent/comm/communicator.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace cohort::agent {
namespace {

// How long Abort() waits for interrupted ops to leave before releasing the transport. Interrupted
// ops return within milliseconds; if one does not, releasing under it would be a use-after-free,
// so Abort leaks the transport instead (and logs it).
constexpr absl::Duration kAbortDrainTimeout = absl::Seconds(5);
// Upper bound for the abort path of Release (NCCL's abort takes ~0.5 s per communicator).
constexpr absl::Duration kAbortReleaseTimeout = absl::Seconds(10);

// Errors that say "this call was wrong", not "the transport is broken": they leave the state alone.
bool LeavesStateAlone(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInvalidArgument ||
         s.code() == absl::StatusCode::kUnimplemented;
}

}  // namespace

size_t DataTypeSize(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
      return 4;
    case DataType::kFloat64:
      return 8;
    case DataType::kInt32:
      return 4;
    case DataType::kInt64:
      return 8;
    case DataType::kUInt8:
      return 1;
  }
  return 0;
}

absl::string_view DataTypeName(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
      return "float32";
    case DataType::kFloat64:
      return "float64";
    case DataType::kInt32:
      return "int32";
    case DataType::kInt64:
      return "int64";
    case DataType::kUInt8:
      return "uint8";
  }
  return "unknown";
}

absl::string_view ReduceOpName(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kMin:
      return "min";
    case ReduceOp::kProd:
      return "prod";
  }
  return "unknown";
}

absl::string_view CommStateName(CommState state) {
  switch (state) {
    case CommState::kCreating:
      return "creating";
    case CommState::kReady:
      return "ready";
    case CommState::kError:
      return "error";
    case CommState::kAborted:
      return "aborted";
    case CommState::kDestroyed:
      return "destroyed";
  }
  return "unknown";
}

std::string GroupLabel(GroupKind kind, int group_index) {
  return absl::StrCat(GroupKindName(kind), "/", group_index);
}

Communicator::Communicator(GroupSpec group, absl::Duration default_timeout)
    : group_(std::move(group)), default_timeout_(default_timeout) {
  timing_.kind = group_.kind;
  timing_.group_index = group_.group_index;
  timing_.group_size = size();
}

Communicator::~Communicator() = default;

void Communicator::MarkReady(GroupTiming timing) {
  timing_ = std::move(timing);
  absl::MutexLock lock(&mu_);
  if (state_ == CommState::kCreating) state_ = CommState::kReady;
}

std::string Communicator::Describe() const {
  return absl::StrCat(backend_name(), " ", GroupLabel(group_.kind, group_.group_index), " rank ",
                      rank(), "/", size(), ": ");
}

CommState Communicator::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

absl::Status Communicator::last_error() const {
  absl::MutexLock lock(&mu_);
  return last_error_;
}

int Communicator::ops_in_flight() const {
  absl::MutexLock lock(&mu_);
  return in_flight_;
}

bool Communicator::AwaitOpsInFlight(int n, absl::Duration timeout) const {
  auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ >= n; };
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

bool Communicator::aborting() const {
  absl::MutexLock lock(&mu_);
  return aborting_;
}

bool Communicator::PauseUnlessAborting(absl::Duration duration) const {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&aborting_), duration);
}

absl::Status Communicator::RunOp(absl::string_view name, Timeout timeout_arg,
                                 absl::FunctionRef<absl::Status(absl::Duration)> op) {
  const absl::Duration timeout = timeout_arg.value_or(default_timeout_);
  if (timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        Describe(), name, ": timeout must be positive, got ", absl::FormatDuration(timeout)));
  }
  const absl::Time deadline = absl::Now() + timeout;
  {
    absl::MutexLock lock(&mu_);
    switch (state_) {
      case CommState::kReady:
        break;
      case CommState::kAborted:
        return absl::AbortedError(absl::StrCat(Describe(), name, ": communicator was aborted"));
      case CommState::kError:
        return absl::FailedPreconditionError(absl::StrCat(
            Describe(), name, ": communicator failed earlier: ", last_error_.message()));
      case CommState::kCreating:
      case CommState::kDestroyed:
        return absl::FailedPreconditionError(
            absl::StrCat(Describe(), name, ": communicator is ", CommStateName(state_)));
    }
    ++in_flight_;
  }

  absl::Status status;
  // Wait our turn, bounded by this op's own deadline.
  if (!op_mu_.LockWhenWithDeadline(absl::Condition::kTrue, deadline)) {
    op_mu_.Unlock();
    status = absl::DeadlineExceededError(
        absl::StrCat(Describe(), name, ": another op held the communicator past the timeout (",
                     absl::FormatDuration(timeout), ")"));
  } else {
    if (aborting()) {
      status = absl::AbortedError("aborted before the op started");
    } else {
      status = op(std::max(deadline - absl::Now(), absl::Milliseconds(1)));
    }
    op_mu_.Unlock();
  }

  absl::MutexLock lock(&mu_);
  --in_flight_;
  if (status.ok()) return status;
  if (aborting_ || state_ == CommState::kAborted) {
    return absl::AbortedError(
        absl::StrCat(Describe(), name, ": aborted while in flight (", status.message(), ")"));
  }
  if (LeavesStateAlone(status)) return status;
  status = absl::Status(status.code(), absl::StrCat(Describe(), name, ": ", status.message()));
  if (state_ == CommState::kReady) {
    state_ = CommState::kError;
    last_error_ = status;
    Log()->warn("{}", status.ToString());
  }
  return status;
}

namespace {

// Validates a buffer argument: null is only fine when nothing is transferred.
absl::Status CheckBuffer(const void* p, absl::string_view what) {
  if (p == nullptr) return absl::InvalidArgumentError(absl::StrCat(what, " is null"));
  return absl::OkStatus();
}

absl::Status CheckRank(int r, int size, absl::string_view what) {
  if (r < 0 || r >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", r, " is out of range for a group of ", size));
  }
  return absl::OkStatus();
}

// count * factor fits size_t (the byte count of the largest buffer of the op).
absl::Status CheckCount(size_t count, DataType dtype, size_t factor) {
  const size_t elem = DataTypeSize(dtype);
  if (elem == 0) return absl::InvalidArgumentError("unknown data type");
  if (count > std::numeric_limits<size_t>::max() / elem / std::max<size_t>(factor, 1)) {
    return absl::InvalidArgumentError(absl::StrCat("count ", count, " overflows"));
  }
  return absl::OkStatus();
}

}  // namespace

#define COHORT_COMM_CHECK(expr)                                                  \
  do {                                                                           \
    if (absl::Status _s = (expr); !_s.ok()) {                                    \
      return absl::InvalidArgumentError(absl::StrCat(Describe(), _s.message())); \
    }                                                                            \
  } while (0)

absl::Status Communicator::AllReduce(void* buf, size_t count, DataType dtype, ReduceOp op,
                                     Timeout timeout) {
  COHORT_COMM_CHECK(CheckCount(count, dtype, 1));
  if (count == 0) return absl::OkStatus();
  COHORT_COMM_CHECK(CheckBuffer(buf, "AllReduce buffer"));
  return RunOp("AllReduce", timeout,
               [&](absl::Duration t) { return DoAllReduce(buf, count, dtype, op, t); });
}

absl::StatusOr<int64_t> Communicator::SumOverGroup(int64_t value) {
  if (absl::Status s = AllReduce(&value, 1, DataType::kInt64, ReduceOp::kSum); !s.ok()) return s;
  return value;
}

absl::Status Communicator::AllGather(const void* in, void* out, size_t count, DataType dtype,
                                     Timeout timeout) {
  COHORT_COMM_CHECK(CheckCount(count, dtype, size()));
  if (count == 0) return absl::OkStatus();
  COHORT_COMM_CHECK(CheckBuffer(in, "AllGather input"));
  COHORT_COMM_CHECK(CheckBuffer(out, "AllGather output"));
  return RunOp("AllGather", timeout,
               [&](absl::Duration t) { return DoAllGather(in, out, count, dtype, t); });
}

absl::Status Communicator::Broadcast(void* buf, size_t count, DataType dtype, int root,
                                     Timeout timeout) {
  COHORT_COMM_CHECK(CheckCount(count, dtype, 1));
  COHORT_COMM_CHECK(CheckRank(root, size(), "Broadcast root"));
  if (count == 0) return absl::OkStatus();
  COHORT_COMM_CHECK(CheckBuffer(buf, "Broadcast buffer"));
  return RunOp("Broadcast", timeout,
               [&](absl::Duration t) { return DoBroadcast(buf, count, dtype, root, t); });
}

absl::Status Communicator::Barrier(Timeout timeout) {
  return RunOp("Barrier", timeout, [&](absl::Duration t) { return DoBarrier(t); });
}

absl::Status Communicator::Send(const void* buf, size_t count, DataType dtype, int peer,
                                Timeout timeout) {
  COHORT_COMM_CHECK(CheckCount(count, dtype, 1));
  COHORT_COMM_CHECK(CheckRank(peer, size(), "Send peer"));
  if (peer == rank()) return absl::InvalidArgumentError(absl::StrCat(Describe(), "Send to self"));
  if (count == 0) return absl::OkStatus();
  COHORT_COMM_CHECK(CheckBuffer(buf, "Send buffer"));
  return RunOp("Send", timeout,
               [&](absl::Duration t) { return DoSend(buf, count, dtype, peer, t); });
}

absl::Status Communicator::Recv(void* buf, size_t count, DataType dtype, int peer,
                                Timeout timeout) {
  COHORT_COMM_CHECK(CheckCount(count, dtype, 1));
  COHORT_COMM_CHECK(CheckRank(peer, size(), "Recv peer"));
  if (peer == rank()) {
    return absl::InvalidArgumentError(absl::StrCat(Describe(), "Recv from self"));
  }
  if (count == 0) return absl::OkStatus();
  COHORT_COMM_CHECK(CheckBuffer(buf, "Recv buffer"));
  return RunOp("Recv", timeout,
               [&](absl::Duration t) { return DoRecv(buf, count, dtype, peer, t); });
}

absl::Status Communicator::AllToAll(const void* in, void* out, size_t count_per_peer,
                                    DataType dtype, Timeout timeout) {
  COHORT_COMM_CHECK(CheckCount(count_per_peer, dtype, size()));
  if (count_per_peer == 0) return absl::OkStatus();
  COHORT_COMM_CHECK(CheckBuffer(in, "AllToAll input"));
  COHORT_COMM_CHECK(CheckBuffer(out, "AllToAll output"));
  return RunOp("AllToAll", timeout,
               [&](absl::Duration t) { return DoAllToAll(in, out, count_per_peer, dtype, t); });
}

#undef COHORT_COMM_CHECK

void Communicator::AbortOps() {
  {
    absl::MutexLock lock(&mu_);
    const bool was_aborting = aborting_;
    aborting_ = true;  // wakes PauseUnlessAborting (also an orderly Release in progress)
    if (was_aborting || state_ == CommState::kDestroyed) return;
    if (state_ != CommState::kError) {
      last_error_ = absl::AbortedError(absl::StrCat(Describe(), "aborted"));
    }
    state_ = CommState::kAborted;
  }
  // Never interrupt a transport that a concurrent Destroy is freeing (or has freed): the release
  // takes the same lock. Only the first caller gets here, so Interrupt runs at most once.
  absl::MutexLock lock(&release_mu_);
  if (!released_) Interrupt();
}

void Communicator::Abort() {
  {
    absl::MutexLock lock(&mu_);
    if (state_ == CommState::kDestroyed) {
      aborting_ = true;  // a Destroy in progress gives up its orderly teardown
      return;
    }
  }
  AbortOps();
  // Whoever interrupted (this call or an earlier AbortOps), the ops in flight are on their way
  // out: wait for them, then release.
  auto drained = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
  bool ok;
  {
    absl::MutexLock lock(&mu_);
    ok = mu_.AwaitWithTimeout(absl::Condition(&drained), kAbortDrainTimeout);
  }
  if (!ok) {
    Log()->error(
        "{}ops still in flight {} after Abort; leaking the transport rather than "
        "freeing it under them",
        Describe(), absl::FormatDuration(kAbortDrainTimeout));
    return;
  }
  if (absl::Status s = ReleaseOnce(/*abort=*/true, absl::Now() + kAbortReleaseTimeout); !s.ok()) {
    Log()->warn("{}abort: {}", Describe(), s.ToString());
  }
}

absl::Status Communicator::Destroy(Timeout timeout) {
  const absl::Time deadline = absl::Now() + timeout.value_or(default_timeout_);
  bool abort;
  {
    absl::MutexLock lock(&mu_);
    if (state_ == CommState::kDestroyed) return absl::OkStatus();
    if (in_flight_ > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(Describe(), "Destroy with ", in_flight_, " op(s) in flight; Abort instead"));
    }
    abort = state_ != CommState::kReady || aborting_;
    state_ = CommState::kDestroyed;
  }
  return ReleaseOnce(abort, deadline);
}

absl::Status Communicator::AsyncError() const {
  absl::MutexLock lock(&release_mu_);
  if (released_) return absl::OkStatus();
  return DoAsyncError();
}

absl::Status Communicator::ReleaseOnce(bool abort, absl::Time deadline) {
  absl::MutexLock lock(&release_mu_);
  if (released_) return absl::OkStatus();
  released_ = true;
  return Release(abort, deadline);
}

void Communicator::ReleaseOnDestruction() {
  bool abort;
  {
    absl::MutexLock lock(&mu_);
    if (in_flight_ > 0) {
      Log()->error("{}destroyed with ops in flight", Describe());
    }
    abort = state_ != CommState::kReady || aborting_;
  }
  absl::Status s =
      ReleaseOnce(abort, absl::Now() + (abort ? kAbortReleaseTimeout : default_timeout_));
  if (!s.ok()) Log()->warn("{}release on destruction: {}", Describe(), s.ToString());
}

}  // namespace cohort::agent
