#include "coordinator/services.h"

#include <deque>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/layout_proto.h"
#include "spdlog/spdlog.h"

namespace cohort::coordinator {
namespace {

// Finishes a unary call with a status (the response was filled by the caller).
grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context, const absl::Status& s) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

// The write side of a server stream (a ServerBidiReactor or a ServerWriteReactor): messages are
// queued under a mutex and written one StartWrite at a time, and the stream is finished exactly
// once (FinishOnce / FinishLocked, guarded by finished_). Push is called under the Coordinator's
// lock, so it only enqueues: it never waits for the network.
template <typename Reactor, typename Message>
class WriteQueue {
 public:
  struct Policy {
    // A Push onto a queue this long is refused and finishes the stream with RESOURCE_EXHAUSTED
    // (overflow_message). 0: unbounded.
    size_t max_queued = 0;
    const char* overflow_message = "";
    // A failed write finishes the stream with CANCELLED. Otherwise what is queued is dropped
    // and finishing is left to the reactor (a bidi stream's reads fail too).
    bool finish_on_write_error = false;
    // Once the stream is finished, what is still queued is not written.
    bool stop_when_finished = false;
  };

  WriteQueue(Reactor* reactor, Policy policy) : reactor_(reactor), policy_(policy) {}

  // Queues `message` and starts writing it unless a write is in flight. False (and nothing
  // queued) once the stream is finished or closing, or when the queue is full.
  bool Push(const Message& message) {
    absl::MutexLock lock(&mu_);
    if (finished_ || close_pending_) return false;
    if (policy_.max_queued != 0 && queue_.size() >= policy_.max_queued) {
      FinishLocked(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, policy_.overflow_message));
      return false;
    }
    queue_.push_back(message);
    if (!writing_) {
      writing_ = true;
      reactor_->StartWrite(&queue_.front());
    }
    return true;
  }

  // The reactor's OnWriteDone: drops the written message and writes the next one; a pending
  // Close finishes the stream once the queue has drained.
  void OnWriteDone(bool ok) {
    absl::MutexLock lock(&mu_);
    queue_.pop_front();
    if (!ok) {
      queue_.clear();
      writing_ = false;
      if (policy_.finish_on_write_error) FinishLocked(grpc::Status::CANCELLED);
      return;
    }
    if (!queue_.empty() && !(policy_.stop_when_finished && finished_)) {
      reactor_->StartWrite(&queue_.front());
      return;
    }
    writing_ = false;
    if (close_pending_) FinishLocked(close_status_);
  }

  // Finishes the stream with `status` once the queued writes are done (at once if none is in
  // flight); nothing more is queued meanwhile.
  void Close(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    close_pending_ = true;
    close_status_ = status;
    if (!writing_) FinishLocked(status);
  }

  // Finishes the stream now, unless it already is.
  void FinishOnce(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    FinishLocked(status);
  }

 private:
  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    reactor_->Finish(status);
  }

  Reactor* const reactor_;
  const Policy policy_;
  absl::Mutex mu_;
  std::deque<Message> queue_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool close_pending_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status close_status_ ABSL_GUARDED_BY(mu_);
};

// One agent's session stream. gRPC owns the reactor and deletes it after OnDone; OnDone first
// detaches it from the Coordinator (under the Coordinator's lock), after which the Coordinator
// never touches it again. Sends from the Coordinator are queued and written one at a time.
class SessionReactor final
    : public grpc::ServerBidiReactor<v1::AgentMessage, v1::CoordinatorMessage>,
      public SessionSink {
 public:
  explicit SessionReactor(Coordinator* coordinator)
      : coordinator_(coordinator), writes_(this, {}) {
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      coordinator_->Detach(session_id_, this, "session stream closed");
      writes_.FinishOnce(grpc::Status::OK);
      return;
    }
    if (session_id_.empty()) {
      if (!in_.has_attach()) {
        writes_.FinishOnce(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                        "the first session message must be attach"));
        return;
      }
      const std::string session_id = in_.attach().session_id();
      session_id_ = session_id;
      absl::Status attached = coordinator_->Attach(session_id, this);
      if (!attached.ok()) {
        session_id_.clear();
        writes_.FinishOnce(ToGrpcStatus(attached));
        return;
      }
    } else {
      // Refusals (stale generations) are logged by the Coordinator; the session goes on.
      (void)coordinator_->HandleAgentMessage(session_id_, in_);
    }
    StartRead(&in_);
  }

  // A failed write means the stream is broken; reads fail too and OnReadDone detaches.
  void OnWriteDone(bool ok) override { writes_.OnWriteDone(ok); }

  void OnCancel() override { writes_.FinishOnce(grpc::Status::CANCELLED); }

  void OnDone() override {
    coordinator_->Detach(session_id_, this, "session ended");
    delete this;
  }

  // SessionSink. Called under the Coordinator's lock: only queues.
  void Send(const v1::CoordinatorMessage& message) override { (void)writes_.Push(message); }

  // Finishes with ABORTED after the queued messages are written.
  void Close(const std::string& reason) override {
    writes_.Close(grpc::Status(grpc::StatusCode::ABORTED, reason));
  }

 private:
  Coordinator* const coordinator_;
  // Touched only by the read reactions, which gRPC serializes.
  v1::AgentMessage in_;
  std::string session_id_;
  WriteQueue<SessionReactor, v1::CoordinatorMessage> writes_;
};

// One Watch stream: events queued by the Coordinator (under its lock), written one at a time.
// A watcher more than kMaxQueued events behind is dropped with RESOURCE_EXHAUSTED.
class WatchReactor final : public grpc::ServerWriteReactor<v1::WatchEvent>, public WatchSink {
 public:
  static constexpr size_t kMaxQueued = 10000;

  WatchReactor(Coordinator* coordinator, const v1::WatchRequest& request)
      : coordinator_(coordinator),
        writes_(this, {.max_queued = kMaxQueued,
                       .overflow_message = "watcher fell too far behind; watch again",
                       .finish_on_write_error = true,
                       .stop_when_finished = true}) {
    absl::StatusOr<uint64_t> id =
        coordinator_->AddWatcher(request.pool(), request.snapshot(), this);
    if (!id.ok()) {
      writes_.FinishOnce(ToGrpcStatus(id.status()));
      return;
    }
    absl::MutexLock lock(&mu_);
    id_ = *id;
  }

  bool Send(const v1::WatchEvent& event) override { return writes_.Push(event); }

  void OnWriteDone(bool ok) override { writes_.OnWriteDone(ok); }

  void OnCancel() override { writes_.FinishOnce(grpc::Status::CANCELLED); }

  void OnDone() override {
    uint64_t id;
    {
      absl::MutexLock lock(&mu_);
      id = id_;
    }
    if (id != 0) coordinator_->RemoveWatcher(id);
    delete this;
  }

 private:
  Coordinator* const coordinator_;
  absl::Mutex mu_;
  uint64_t id_ ABSL_GUARDED_BY(mu_) = 0;
  WriteQueue<WatchReactor, v1::WatchEvent> writes_;
};

}  // namespace

grpc::ServerUnaryReactor* AgentServiceImpl::Join(grpc::CallbackServerContext* context,
                                                 const v1::JoinRequest* request,
                                                 v1::JoinResponse* response) {
  absl::StatusOr<v1::JoinResponse> joined = coordinator_->Join(*request);
  if (joined.ok()) *response = *std::move(joined);
  return Reply(context, joined.status());
}

grpc::ServerBidiReactor<v1::AgentMessage, v1::CoordinatorMessage>* AgentServiceImpl::Session(
    grpc::CallbackServerContext* /*context*/) {
  return new SessionReactor(coordinator_);
}

grpc::ServerUnaryReactor* AgentServiceImpl::KvSet(grpc::CallbackServerContext* context,
                                                  const v1::KvSetRequest* request,
                                                  v1::KvSetResponse* /*response*/) {
  return Reply(context, coordinator_->KvSet(*request));
}

grpc::ServerUnaryReactor* AgentServiceImpl::KvGet(grpc::CallbackServerContext* context,
                                                  const v1::KvGetRequest* request,
                                                  v1::KvGetResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  coordinator_->KvGet(*request, [reactor, response](absl::StatusOr<v1::KvGetResponse> result) {
    if (result.ok()) *response = *std::move(result);
    reactor->Finish(ToGrpcStatus(result.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::Initialize(grpc::CallbackServerContext* context,
                                                       const v1::InitializeRequest* request,
                                                       v1::InitializeResponse* response) {
  absl::StatusOr<v1::InitializeResponse> result = coordinator_->Initialize(*request);
  if (result.ok()) *response = *std::move(result);
  return Reply(context, result.status());
}

grpc::ServerUnaryReactor* AdminServiceImpl::Destroy(grpc::CallbackServerContext* context,
                                                    const v1::DestroyRequest* request,
                                                    v1::DestroyResponse* response) {
  absl::StatusOr<v1::DestroyResponse> result = coordinator_->Destroy(*request);
  if (result.ok()) *response = *std::move(result);
  return Reply(context, result.status());
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetState(grpc::CallbackServerContext* context,
                                                     const v1::GetStateRequest* request,
                                                     v1::GetStateResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto reply = [reactor, response](absl::StatusOr<v1::PoolState> state) {
    if (state.ok()) *response->mutable_state() = *std::move(state);
    reactor->Finish(ToGrpcStatus(state.status()));
  };
  if (request->has_rank() || request->kind() != v1::GROUP_KIND_UNSPECIFIED) {
    std::optional<int> rank;
    if (request->has_rank()) rank = request->rank();
    std::optional<GroupKind> kind;
    if (request->kind() != v1::GROUP_KIND_UNSPECIFIED) {
      absl::StatusOr<GroupKind> parsed = FromProto(request->kind());
      if (!parsed.ok()) {
        reply(parsed.status());
        return reactor;
      }
      kind = *parsed;
    }
    reply(coordinator_->GetState(request->pool(), rank, kind));
    return reactor;
  }
  if (!request->has_wait()) {
    reply(coordinator_->GetState(request->pool()));
    return reactor;
  }
  // Never wait past the caller's own deadline.
  absl::Time deadline = clock_->Now() + absl::Milliseconds(request->wait().timeout_ms());
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    deadline = std::min(deadline, absl::FromChrono(context->deadline()));
  }
  coordinator_->WaitForState(request->pool(), request->wait().after_version(), deadline,
                             std::move(reply));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListPools(grpc::CallbackServerContext* context,
                                                      const v1::ListPoolsRequest* /*request*/,
                                                      v1::ListPoolsResponse* response) {
  for (v1::PoolSummary& p : coordinator_->ListPools()) *response->add_pools() = std::move(p);
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetEvents(grpc::CallbackServerContext* context,
                                                      const v1::GetEventsRequest* request,
                                                      v1::GetEventsResponse* response) {
  absl::StatusOr<std::vector<v1::Event>> events =
      coordinator_->GetEvents(request->pool(), request->after_seq(), request->limit());
  if (events.ok()) {
    for (v1::Event& e : *events) *response->add_events() = std::move(e);
  }
  return Reply(context, events.status());
}

grpc::ServerUnaryReactor* AdminServiceImpl::Check(grpc::CallbackServerContext* context,
                                                  const v1::CheckRequest* request,
                                                  v1::CheckResponse* response) {
  absl::StatusOr<v1::CheckResponse> result = coordinator_->Check(*request);
  if (result.ok()) *response = *std::move(result);
  return Reply(context, result.status());
}

grpc::ServerWriteReactor<v1::WatchEvent>* AdminServiceImpl::Watch(
    grpc::CallbackServerContext* /*context*/, const v1::WatchRequest* request) {
  return new WatchReactor(coordinator_, *request);
}

}  // namespace cohort::coordinator
