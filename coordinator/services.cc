#include "coordinator/services.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/cohort_config.h"
#include "common/grpc_status.h"
#include "common/layout_proto.h"
#include "grpc/grpc_security_constants.h"
#include "spdlog/spdlog.h"

namespace cohort::coordinator {
namespace {

// Finishes a unary call with a status (the response was filled by the caller).
grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context, const absl::Status& s) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

// The token of an "authorization: Bearer <token>" header ("bearer" in any case); empty if the
// call carries none.
std::string BearerTokenOf(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  for (auto it = metadata.find("authorization"); it != metadata.end(); ++it) {
    if (it->first != "authorization") break;
    absl::string_view value(it->second.data(), it->second.size());
    constexpr absl::string_view kScheme = "bearer ";
    if (value.size() > kScheme.size() &&
        absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
      return std::string(absl::StripAsciiWhitespace(value.substr(kScheme.size())));
    }
  }
  return "";
}

// The transport's view of the caller. gRPC marks a peer authenticated only when it presented a
// certificate that chained to the server's CA (TLS with client certificates verified), so the
// certificate names are read only then; a TLS client without a certificate, and every insecure
// one, is unauthenticated and named by its address.
Caller CallerOf(const grpc::ServerContextBase& context) {
  Caller caller;
  caller.peer = context.peer();
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    const std::vector<grpc::string_ref> identities = auth->GetPeerIdentity();
    if (!identities.empty()) {
      caller.identity.assign(identities.front().data(), identities.front().size());
      caller.authenticated = true;
    }
    for (const grpc::string_ref& uri : auth->FindPropertyValues(GRPC_PEER_URI_PROPERTY_NAME)) {
      caller.certificate_uris.emplace_back(uri.data(), uri.size());
    }
    const std::vector<grpc::string_ref> cn = auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
    if (!cn.empty()) caller.certificate_cn.assign(cn.front().data(), cn.front().size());
  }
  if (!caller.authenticated) caller.identity = caller.peer;
  // A token counts only over TLS: gRPC's clients never send one in plaintext, and one that a
  // hand-written client sent so has been exposed to the network (and is ignored).
  if (auth != nullptr) {
    const std::vector<grpc::string_ref> security =
        auth->FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME);
    if (!security.empty() && (security.front() == GRPC_TLS_TRANSPORT_SECURITY_TYPE ||
                              security.front() == GRPC_SSL_TRANSPORT_SECURITY_TYPE)) {
      caller.bearer_token = BearerTokenOf(context);
    }
  }
  return caller;
}

// Runs a handler's call into the Coordinator; an exception (none is expected: every input is
// checked at the door) becomes INTERNAL instead of taking the process down.
template <typename Fn>
absl::Status Guarded(const char* method, Fn&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    spdlog::error("{}: unexpected exception: {}", method, e.what());
    return absl::InternalError(absl::StrCat(method, " failed: ", e.what()));
  }
}

// A unary call answered later (a long-poll: KvGet, GetState with wait). The answer and the
// caller's cancellation race; whichever comes first finishes the call, and a cancellation also
// drops the coordinator's waiter at once, so a client that gives up leaves nothing behind.
class WaitingCall {
 public:
  class Reactor final : public grpc::ServerUnaryReactor {
   public:
    explicit Reactor(std::shared_ptr<WaitingCall> call) : call_(std::move(call)) {}
    void OnCancel() override {
      Coordinator::Cancel cancel;
      {
        absl::MutexLock lock(&call_->mu_);
        if (call_->finished_) return;
        call_->finished_ = true;
        call_->cancelled_ = true;
        cancel = std::move(call_->cancel_);
      }
      if (cancel) cancel();
      Finish(grpc::Status::CANCELLED);
    }
    void OnDone() override { delete this; }

   private:
    std::shared_ptr<WaitingCall> call_;
  };

  // The reactor to return from the handler.
  static std::pair<std::shared_ptr<WaitingCall>, Reactor*> Start() {
    auto call = std::make_shared<WaitingCall>();
    auto* reactor = new Reactor(call);
    call->reactor_ = reactor;
    return {call, reactor};
  }

  // Registers how to drop the waiter; if the call was cancelled already, drops it now.
  void SetCancel(Coordinator::Cancel cancel) {
    {
      absl::MutexLock lock(&mu_);
      if (!cancelled_) {
        cancel_ = std::move(cancel);
        return;
      }
    }
    if (cancel) cancel();
  }

  // Finishes the call with `status` after `fill` wrote the response, unless it is finished.
  void Finish(const std::function<void()>& fill, const absl::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
      cancel_ = nullptr;
    }
    if (status.ok()) fill();
    reactor_->Finish(ToGrpcStatus(status));
  }

 private:
  absl::Mutex mu_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  Coordinator::Cancel cancel_ ABSL_GUARDED_BY(mu_);
  Reactor* reactor_ = nullptr;  // valid until it is finished (OnDone comes after Finish)
};

// The write side of a server stream (a ServerBidiReactor or a ServerWriteReactor): messages are
// queued under a mutex and written one StartWrite at a time, and the stream is finished exactly
// once (FinishOnce / FinishLocked, guarded by finished_). Push is called under the Coordinator's
// lock, so it never waits for the network; with DeferStarts (session streams) it does not write
// at all, and the first write of an idle stream goes out from the WriteStarter.
template <typename Reactor, typename Message>
class WriteQueue {
 public:
  struct Policy {
    // A Push onto a queue this long is refused and finishes the stream with RESOURCE_EXHAUSTED
    // (overflow_message). 0: unbounded.
    size_t max_queued = 0;
    // The same for the bytes queued (0: unbounded).
    size_t max_bytes = 0;
    const char* overflow_message = "";
    // A failed write finishes the stream with CANCELLED. Otherwise what is queued is dropped
    // and finishing is left to the reactor (a bidi stream's reads fail too).
    bool finish_on_write_error = false;
    // Once the stream is finished, what is still queued is not written.
    bool stop_when_finished = false;
  };

  WriteQueue(Reactor* reactor, Policy policy) : reactor_(reactor), policy_(policy) {}

  // From now on a Push onto an idle stream does not write: it hands `start` (which must end in
  // StartDeferred, unless the stream is gone) to `starter`. Call before the first Push.
  void DeferStarts(WriteStarter* starter, std::function<void()> start) {
    absl::MutexLock lock(&mu_);
    starter_ = starter;
    start_ = std::move(start);
  }

  // Queues `message` and starts writing it unless a write is in flight (or, with DeferStarts,
  // has the starter start it). False (and nothing queued) once the stream is finished or
  // closing, or when the queue is full.
  bool Push(const Message& message) {
    absl::MutexLock lock(&mu_);
    if (finished_ || close_pending_) return false;
    const size_t size = message.ByteSizeLong();
    if ((policy_.max_queued != 0 && queue_.size() >= policy_.max_queued) ||
        (policy_.max_bytes != 0 && bytes_ + size > policy_.max_bytes)) {
      FinishLocked(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, policy_.overflow_message));
      return false;
    }
    bytes_ += size;
    queue_.push_back(message);
    if (writing_ || start_pending_) return true;
    if (starter_ != nullptr) {
      start_pending_ = true;
      starter_->Add(start_);
      return true;
    }
    writing_ = true;
    reactor_->StartWrite(&queue_.front());
    return true;
  }

  // The starter's turn (DeferStarts): writes what was queued meanwhile, unless a write is already
  // in flight; a Close that came meanwhile finishes the stream once it is written.
  void StartDeferred() {
    absl::MutexLock lock(&mu_);
    start_pending_ = false;
    if (finished_ || writing_) return;
    if (!queue_.empty()) {
      writing_ = true;
      reactor_->StartWrite(&queue_.front());
    } else if (close_pending_) {
      FinishLocked(close_status_);
    }
  }

  // The reactor's OnWriteDone: drops the written message and writes the next one; a pending
  // Close finishes the stream once the queue has drained.
  void OnWriteDone(bool ok) {
    absl::MutexLock lock(&mu_);
    // Push sized it (ByteSizeLong caches the size) and nothing changed it since.
    bytes_ -= std::min(bytes_, static_cast<size_t>(queue_.front().GetCachedSize()));
    queue_.pop_front();
    if (!ok) {
      queue_.clear();
      bytes_ = 0;
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
    if (!writing_ && !start_pending_) FinishLocked(status);
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
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool close_pending_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status close_status_ ABSL_GUARDED_BY(mu_);
  // DeferStarts: who starts the first write of an idle stream, and how; whether it is due.
  WriteStarter* starter_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::function<void()> start_ ABSL_GUARDED_BY(mu_);
  bool start_pending_ ABSL_GUARDED_BY(mu_) = false;
};

// One agent's session stream. gRPC owns the reactor and deletes it after OnDone; OnDone first
// detaches it from the Coordinator (under the Coordinator's lock), after which the Coordinator
// never touches it again. Sends from the Coordinator are queued and written one at a time.
class SessionReactor final
    : public grpc::ServerBidiReactor<v1::AgentMessage, v1::CoordinatorMessage>,
      public SessionSink {
 public:
  SessionReactor(Coordinator* coordinator, Caller caller, WriteStarter* starter)
      : coordinator_(coordinator),
        caller_(std::move(caller)),
        writes_(this, {.max_bytes = coordinator->options().limits.max_queue_bytes,
                       .overflow_message = "the session does not read its messages (queue past "
                                           "the coordinator's --max-queue-bytes); join again"}),
        guard_(std::make_shared<Guard>()) {
    guard_->reactor = this;
    // The Coordinator sends under its lock: the socket write of an idle stream happens on the
    // starter (write_starter.h), and reaches this reactor only while it exists.
    writes_.DeferStarts(starter, [guard = guard_] {
      absl::MutexLock lock(&guard->mu);
      if (guard->reactor != nullptr) guard->reactor->writes_.StartDeferred();
    });
    // A stream that never attaches is closed after the attach timeout.
    attach_timer_ = coordinator_->AfterAttachTimeout([guard = guard_] {
      absl::MutexLock lock(&guard->mu);
      if (guard->reactor != nullptr && !guard->reactor->attached_) {
        guard->reactor->writes_.FinishOnce(
            grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                         "no attach message within the attach timeout; join and attach again"));
      }
    });
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
      absl::Status attached = coordinator_->Attach(session_id, this, caller_);
      if (!attached.ok()) {
        session_id_.clear();
        writes_.FinishOnce(ToGrpcStatus(attached));
        return;
      }
      attached_ = true;
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
    {
      absl::MutexLock lock(&guard_->mu);
      guard_->reactor = nullptr;
    }
    coordinator_->CancelAttachTimer(attach_timer_);
    coordinator_->Detach(session_id_, this, "session ended");
    delete this;
  }

  // SessionSink. Called under the Coordinator's lock: only queues.
  void Send(const v1::CoordinatorMessage& message) override { (void)writes_.Push(message); }

  // Finishes with `why` after the queued messages are written.
  void Close(const absl::Status& why) override { writes_.Close(ToGrpcStatus(why)); }

 private:
  Coordinator* const coordinator_;
  const Caller caller_;
  // Touched only by the read reactions, which gRPC serializes.
  v1::AgentMessage in_;
  std::string session_id_;
  std::atomic<bool> attached_{false};
  WriteQueue<SessionReactor, v1::CoordinatorMessage> writes_;
  // Lets the attach timer reach this reactor only while it exists.
  struct Guard {
    absl::Mutex mu;
    SessionReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;
  };
  std::shared_ptr<Guard> guard_;
  TimerQueue::TimerId attach_timer_ = 0;
};

// One Watch stream: events queued by the Coordinator (under its lock), written one at a time.
// A watcher more than kMaxQueued events behind is dropped with RESOURCE_EXHAUSTED.
class WatchReactor final : public grpc::ServerWriteReactor<v1::WatchEvent>, public WatchSink {
 public:
  static constexpr size_t kMaxQueued = 10000;

  WatchReactor(Coordinator* coordinator, const v1::WatchRequest& request, const Caller& caller)
      : coordinator_(coordinator),
        writes_(this, {.max_queued = kMaxQueued,
                       .max_bytes = coordinator->options().limits.max_queue_bytes,
                       .overflow_message = "watcher fell too far behind; watch again",
                       .finish_on_write_error = true,
                       .stop_when_finished = true}) {
    absl::StatusOr<uint64_t> id =
        coordinator_->AddWatcher(request.pool(), request.snapshot(), this, caller);
    if (!id.ok()) {
      writes_.FinishOnce(ToGrpcStatus(id.status()));
      return;
    }
    absl::MutexLock lock(&mu_);
    id_ = *id;
  }

  bool Send(const v1::WatchEvent& event) override { return writes_.Push(event); }

  void Close(const absl::Status& why) override { writes_.Close(ToGrpcStatus(why)); }

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
  absl::StatusOr<v1::JoinResponse> joined = absl::UnknownError("");
  const absl::Status s = Guarded("Join", [&] {
    joined = coordinator_->Join(*request, CallerOf(*context));
    return joined.status();
  });
  if (joined.ok()) *response = *std::move(joined);
  return Reply(context, s);
}

grpc::ServerBidiReactor<v1::AgentMessage, v1::CoordinatorMessage>* AgentServiceImpl::Session(
    grpc::CallbackServerContext* context) {
  return new SessionReactor(coordinator_, CallerOf(*context), &starter_);
}

grpc::ServerUnaryReactor* AgentServiceImpl::KvSet(grpc::CallbackServerContext* context,
                                                  const v1::KvSetRequest* request,
                                                  v1::KvSetResponse* /*response*/) {
  return Reply(context,
               Guarded("KvSet", [&] { return coordinator_->KvSet(*request, CallerOf(*context)); }));
}

grpc::ServerUnaryReactor* AgentServiceImpl::KvGet(grpc::CallbackServerContext* context,
                                                  const v1::KvGetRequest* request,
                                                  v1::KvGetResponse* response) {
  auto [call, reactor] = WaitingCall::Start();
  call->SetCancel(coordinator_->KvGet(
      *request,
      [call = call, response](absl::StatusOr<v1::KvGetResponse> result) {
        call->Finish([&] { *response = *std::move(result); }, result.status());
      },
      CallerOf(*context)));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::Initialize(grpc::CallbackServerContext* context,
                                                       const v1::InitializeRequest* request,
                                                       v1::InitializeResponse* response) {
  absl::StatusOr<v1::InitializeResponse> result = absl::UnknownError("");
  const absl::Status s = Guarded("Initialize", [&] {
    result = coordinator_->Initialize(*request, CallerOf(*context));
    return result.status();
  });
  if (result.ok()) *response = *std::move(result);
  return Reply(context, s);
}

grpc::ServerUnaryReactor* AdminServiceImpl::Destroy(grpc::CallbackServerContext* context,
                                                    const v1::DestroyRequest* request,
                                                    v1::DestroyResponse* response) {
  absl::StatusOr<v1::DestroyResponse> result = absl::UnknownError("");
  const absl::Status s = Guarded("Destroy", [&] {
    result = coordinator_->Destroy(*request, CallerOf(*context));
    return result.status();
  });
  if (result.ok()) *response = *std::move(result);
  return Reply(context, s);
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetState(grpc::CallbackServerContext* context,
                                                     const v1::GetStateRequest* request,
                                                     v1::GetStateResponse* response) {
  auto [call, reactor] = WaitingCall::Start();
  auto reply = [call = call, response](absl::StatusOr<v1::PoolState> state) {
    call->Finish([&] { *response->mutable_state() = *std::move(state); }, state.status());
  };
  if (request->has_rank() &&
      (request->rank() < -1 || request->rank() >= coordinator_->options().limits.max_world_size)) {
    reply(absl::InvalidArgumentError(
        absl::StrCat("rank ", request->rank(), " is outside every world")));
    return reactor;
  }
  if (request->has_wait() &&
      (request->wait().timeout_ms() < 0 ||
       request->wait().timeout_ms() >
           absl::ToInt64Milliseconds(coordinator_->options().limits.max_wait))) {
    reply(absl::InvalidArgumentError(
        absl::StrCat("wait.timeout_ms ", request->wait().timeout_ms(), " is outside [0, ",
                     absl::ToInt64Milliseconds(coordinator_->options().limits.max_wait),
                     "] (coordinator flag --max-wait-ms)")));
    return reactor;
  }
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
    reply(coordinator_->GetState(request->pool(), rank, kind, CallerOf(*context)));
    return reactor;
  }
  if (!request->has_wait()) {
    reply(coordinator_->GetState(request->pool(), std::nullopt, std::nullopt, CallerOf(*context)));
    return reactor;
  }
  // Never wait past the caller's own deadline.
  absl::Time deadline = clock_->Now() + absl::Milliseconds(request->wait().timeout_ms());
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    deadline = std::min(deadline, absl::FromChrono(context->deadline()));
  }
  call->SetCancel(coordinator_->WaitForState(request->pool(), request->wait().after_version(),
                                             deadline, std::move(reply), CallerOf(*context)));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListPools(grpc::CallbackServerContext* context,
                                                      const v1::ListPoolsRequest* /*request*/,
                                                      v1::ListPoolsResponse* response) {
  absl::StatusOr<std::vector<v1::PoolSummary>> pools = coordinator_->ListPools(CallerOf(*context));
  if (!pools.ok()) return Reply(context, pools.status());
  for (v1::PoolSummary& p : *pools) *response->add_pools() = std::move(p);
  response->set_coordinator_version(COHORT_VERSION);
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetEvents(grpc::CallbackServerContext* context,
                                                      const v1::GetEventsRequest* request,
                                                      v1::GetEventsResponse* response) {
  if (request->limit() < 0 || request->limit() > 100000) {
    return Reply(context, absl::InvalidArgumentError(absl::StrCat(
                              "limit ", request->limit(), " is outside [0, 100000] (0: all)")));
  }
  absl::StatusOr<std::vector<v1::Event>> events = coordinator_->GetEvents(
      request->pool(), request->after_seq(), request->limit(), CallerOf(*context));
  if (events.ok()) {
    for (v1::Event& e : *events) *response->add_events() = std::move(e);
  }
  return Reply(context, events.status());
}

grpc::ServerUnaryReactor* AdminServiceImpl::Check(grpc::CallbackServerContext* context,
                                                  const v1::CheckRequest* request,
                                                  v1::CheckResponse* response) {
  absl::StatusOr<v1::CheckResponse> result = absl::UnknownError("");
  const absl::Status s = Guarded("Check", [&] {
    result = coordinator_->Check(*request, CallerOf(*context));
    return result.status();
  });
  if (result.ok()) *response = *std::move(result);
  return Reply(context, s);
}

grpc::ServerWriteReactor<v1::WatchEvent>* AdminServiceImpl::Watch(
    grpc::CallbackServerContext* context, const v1::WatchRequest* request) {
  return new WatchReactor(coordinator_, *request, CallerOf(*context));
}

grpc::ServerUnaryReactor* AdminServiceImpl::DeletePool(grpc::CallbackServerContext* context,
                                                       const v1::DeletePoolRequest* request,
                                                       v1::DeletePoolResponse* /*response*/) {
  return Reply(context, Guarded("DeletePool", [&] {
                 return coordinator_->DeletePool(request->pool(), request->force(),
                                                 CallerOf(*context));
               }));
}

}  // namespace cohort::coordinator
