#include "agent/coordinator_client.h"

#include "absl/strings/match.h"
#include "common/grpc_status.h"
#include "common/transport_security.h"

namespace cohort::agent {

std::shared_ptr<grpc::Channel> CreateCoordinatorChannel(const std::string& address,
                                                        const TransportSecurityOptions& security) {
  grpc::ChannelArguments args;
  // Reconnect quickly after a coordinator restart (gRPC's default backoff starts at 1 s and
  // grows to 120 s): the first retry after 100 ms, growing by 1.6x (+-20% jitter) to 500 ms:
  // a restarted coordinator is found within about half a second however long it was down.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  // Despite its name, the minimum time one connection attempt may take (gRPC 1.51: the attempt's
  // deadline is max(next backoff time, now + this)). The backoff above stays small regardless.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(kConnectAttemptTimeout)));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  return CreateChannel(address, security, std::move(args));
}

CoordinatorClient::CoordinatorClient(std::shared_ptr<grpc::Channel> channel,
                                     absl::Duration rpc_timeout)
    : channel_(std::move(channel)),
      agent_(v1::AgentService::NewStub(channel_)),
      admin_(v1::AdminService::NewStub(channel_)),
      rpc_timeout_(rpc_timeout) {}

void RpcCanceller::Cancel(absl::Status why) {
  absl::MutexLock lock(&mu_);
  if (!cancelled_.ok()) return;
  cancelled_ = why.ok() ? absl::CancelledError("cancelled") : std::move(why);
  for (grpc::ClientContext* context : active_) context->TryCancel();
}

absl::Status RpcCanceller::Register(grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  if (!cancelled_.ok()) return cancelled_;
  active_.insert(context);
  return absl::OkStatus();
}

absl::Status RpcCanceller::Unregister(grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  active_.erase(context);
  return cancelled_;
}

void CoordinatorClient::SetDeadline(grpc::ClientContext& context, absl::Duration extra) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + rpc_timeout_ + extra));
}

absl::StatusOr<v1::JoinResponse> CoordinatorClient::Join(const v1::JoinRequest& request) {
  grpc::ClientContext context;
  SetDeadline(context);
  {
    absl::MutexLock lock(&join_mu_);
    if (joins_cancelled_) return absl::CancelledError("agent stopping");
    join_context_ = &context;
  }
  v1::JoinResponse response;
  absl::Status s = FromGrpcStatus(agent_->Join(&context, request, &response));
  {
    absl::MutexLock lock(&join_mu_);
    join_context_ = nullptr;
    if (joins_cancelled_) return absl::CancelledError("agent stopping");
  }
  if (!s.ok()) return s;
  return response;
}

bool CoordinatorClient::WaitForConnected(absl::Time deadline) {
  {
    absl::MutexLock lock(&join_mu_);
    if (joins_cancelled_) return false;
    // An in-process channel (tests) has no connection to wait for, and gRPC cannot watch it
    // (it asserts): it reports SHUTDOWN, which a live client channel never does.
    if (!watchable_.has_value()) {
      watchable_ = channel_->GetState(/*try_to_connect=*/false) != GRPC_CHANNEL_SHUTDOWN;
    }
    if (!*watchable_) return true;
  }
  // GetState(true) leaves IDLE; WaitForStateChange polls the channel until it changes state.
  return channel_->WaitForConnected(absl::ToChronoTime(deadline));
}

void CoordinatorClient::CancelJoins() {
  absl::MutexLock lock(&join_mu_);
  joins_cancelled_ = true;
  if (join_context_ != nullptr) join_context_->TryCancel();
}

absl::Status CoordinatorClient::KvSet(const v1::KvSetRequest& request, RpcCanceller* canceller) {
  grpc::ClientContext context;
  SetDeadline(context);
  if (canceller != nullptr) {
    if (absl::Status s = canceller->Register(&context); !s.ok()) return s;
  }
  v1::KvSetResponse response;
  absl::Status s = FromGrpcStatus(agent_->KvSet(&context, request, &response));
  if (canceller != nullptr) {
    // A cancelled call reports the cancel's reason, not gRPC's CANCELLED.
    if (absl::Status cancelled = canceller->Unregister(&context); !cancelled.ok()) return cancelled;
  }
  return s;
}

absl::StatusOr<v1::KvGetResponse> CoordinatorClient::KvGet(const v1::KvGetRequest& request,
                                                           RpcCanceller* canceller) {
  grpc::ClientContext context;
  SetDeadline(context, absl::Milliseconds(request.timeout_ms()));
  if (canceller != nullptr) {
    if (absl::Status s = canceller->Register(&context); !s.ok()) return s;
  }
  v1::KvGetResponse response;
  absl::Status s = FromGrpcStatus(agent_->KvGet(&context, request, &response));
  if (canceller != nullptr) {
    if (absl::Status cancelled = canceller->Unregister(&context); !cancelled.ok()) return cancelled;
  }
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<v1::InitializeResponse> CoordinatorClient::Initialize(
    const v1::InitializeRequest& request) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::InitializeResponse response;
  absl::Status s = FromGrpcStatus(admin_->Initialize(&context, request, &response));
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<v1::DestroyResponse> CoordinatorClient::Destroy(const v1::DestroyRequest& request) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::DestroyResponse response;
  absl::Status s = FromGrpcStatus(admin_->Destroy(&context, request, &response));
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<v1::PoolState> CoordinatorClient::GetState(const std::string& pool) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::GetStateRequest request;
  request.set_pool(pool);
  v1::GetStateResponse response;
  absl::Status s = FromGrpcStatus(admin_->GetState(&context, request, &response));
  if (!s.ok()) return s;
  return response.state();
}

absl::StatusOr<v1::CheckResponse> CoordinatorClient::Check(const std::string& pool) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::CheckRequest request;
  request.set_pool(pool);
  v1::CheckResponse response;
  absl::Status s = FromGrpcStatus(admin_->Check(&context, request, &response));
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<v1::PoolState> CoordinatorClient::WaitForStateChange(const std::string& pool,
                                                                    int64_t after_version,
                                                                    absl::Duration timeout) {
  grpc::ClientContext context;
  SetDeadline(context, timeout);
  v1::GetStateRequest request;
  request.set_pool(pool);
  request.mutable_wait()->set_after_version(after_version);
  request.mutable_wait()->set_timeout_ms(absl::ToInt64Milliseconds(timeout));
  v1::GetStateResponse response;
  absl::Status s = FromGrpcStatus(admin_->GetState(&context, request, &response));
  if (!s.ok()) return s;
  return response.state();
}

absl::StatusOr<std::unique_ptr<CoordinatorClient::Session>> CoordinatorClient::OpenSession(
    const std::string& session_id) {
  auto session = std::make_unique<Session>();
  session->stream_ = agent_->Session(&session->context_);
  v1::AgentMessage attach;
  attach.mutable_attach()->set_session_id(session_id);
  if (!session->Write(attach)) {
    absl::Status s = session->Finish();
    return s.ok() ? absl::UnavailableError("session stream closed before attach") : s;
  }
  return session;
}

bool CoordinatorClient::Session::Read(v1::CoordinatorMessage* message) {
  return stream_->Read(message);
}

bool CoordinatorClient::Session::Write(const v1::AgentMessage& message) {
  absl::MutexLock lock(&write_mu_);
  if (finished_) return false;
  return stream_->Write(message);
}

void CoordinatorClient::Session::Cancel() { context_.TryCancel(); }

absl::Status CoordinatorClient::Session::Finish() {
  {
    absl::MutexLock lock(&write_mu_);
    if (finished_) return absl::OkStatus();
    finished_ = true;
  }
  return FromGrpcStatus(stream_->Finish());
}

// ---- Rendezvous store ---------------------------------------------------------------------

absl::Status CoordinatorRendezvousStore::Set(absl::string_view key, absl::string_view value) {
  std::pair<std::string, std::string> kv{std::string(key), std::string(value)};
  return MultiSet(absl::MakeConstSpan(&kv, 1));
}

absl::StatusOr<std::string> CoordinatorRendezvousStore::Get(absl::string_view key,
                                                            absl::Duration timeout) {
  std::string k(key);
  absl::StatusOr<std::vector<std::string>> values = MultiGet(absl::MakeConstSpan(&k, 1), timeout);
  if (!values.ok()) return values.status();
  return std::move((*values)[0]);
}

absl::Status CoordinatorRendezvousStore::MultiSet(
    absl::Span<const std::pair<std::string, std::string>> kvs) {
  v1::KvSetRequest request;
  request.set_pool(pool_);
  request.set_generation(generation_);
  request.set_session_id(session_id_);
  bool set_once = !kvs.empty();
  for (const auto& [key, value] : kvs) {
    v1::KvEntry* e = request.add_entries();
    e->set_key(key);
    e->set_value(value);
    set_once = set_once && absl::EndsWith(key, "nccl_id");
  }
  request.set_set_once(set_once);
  return client_->KvSet(request, &canceller_);
}

absl::StatusOr<std::vector<std::string>> CoordinatorRendezvousStore::MultiGet(
    absl::Span<const std::string> keys, absl::Duration timeout) {
  v1::KvGetRequest request;
  request.set_pool(pool_);
  request.set_generation(generation_);
  request.set_session_id(session_id_);
  for (const std::string& k : keys) request.add_keys(k);
  request.set_timeout_ms(std::max<int64_t>(0, absl::ToInt64Milliseconds(timeout)));
  absl::StatusOr<v1::KvGetResponse> response = client_->KvGet(request, &canceller_);
  if (!response.ok()) return response.status();
  std::vector<std::string> values;
  values.reserve(keys.size());
  for (const v1::KvEntry& e : response->entries()) values.push_back(e.value());
  return values;
}

}  // namespace cohort::agent
