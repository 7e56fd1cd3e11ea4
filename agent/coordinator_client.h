// CoordinatorClient: the agent's side of the wire — unary calls with deadlines and the session
// stream. Transport failures (UNAVAILABLE) are told apart from refusals by the coordinator.
#ifndef COHORT_AGENT_COORDINATOR_CLIENT_H_
#define COHORT_AGENT_COORDINATOR_CLIENT_H_

#include <memory>
#include <optional>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/comm/rendezvous_store.h"
#include "cohort/v1/admin.grpc.pb.h"
#include "cohort/v1/agent.grpc.pb.h"
#include "common/transport_security.h"
#include "grpcpp/grpcpp.h"

namespace cohort::agent {

// How long one connection attempt to the coordinator (TCP connect and the HTTP/2 handshake, up
// to the server's SETTINGS frame) may take before gRPC gives up on it and backs off.
inline constexpr absl::Duration kConnectAttemptTimeout = absl::Seconds(5);

// The agent's channel to the coordinator. Reconnects are quick after a coordinator restart
// (backoff 100 ms growing to 500 ms, with gRPC's jitter) while one attempt may take up to
// kConnectAttemptTimeout: in gRPC 1.51 GRPC_ARG_MIN_RECONNECT_BACKOFF_MS is also the minimum
// connect timeout, so a small value makes every slow handshake (a loaded machine, hundreds of
// agents joining at once) fail and start over.
// `security` turns into the channel's credentials (common/transport_security.h).
std::shared_ptr<grpc::Channel> CreateCoordinatorChannel(
    const std::string& address, const TransportSecurityOptions& security = {});
// Cancels the calls registered with it, at once and for good: a build's rendezvous-store waits
// when the coordinator aborts the build. Thread-safe.
class RpcCanceller {
 public:
  // Cancels every call in progress, and makes every later one fail at once, with `why`.
  void Cancel(absl::Status why);
  // Registers `context` for the duration of a call. Returns the cancel's status if already
  // cancelled (then the call must not be made, and not be unregistered).
  absl::Status Register(grpc::ClientContext* context);
  // Unregisters `context` (before it is destroyed); returns the cancel's status if the call was
  // cancelled meanwhile, OK otherwise.
  absl::Status Unregister(grpc::ClientContext* context);

 private:
  absl::Mutex mu_;
  absl::Status cancelled_ ABSL_GUARDED_BY(mu_);
  std::set<grpc::ClientContext*> active_ ABSL_GUARDED_BY(mu_);
};

class CoordinatorClient {
 public:
  explicit CoordinatorClient(std::shared_ptr<grpc::Channel> channel,
                             absl::Duration rpc_timeout = absl::Seconds(10));

  // One attempt; the returned status is the coordinator's (refusal) or the transport's
  // (UNAVAILABLE / DEADLINE_EXCEEDED). Fails at once while the channel is in TRANSIENT_FAILURE;
  // CancelJoins() ends it with CANCELLED.
  absl::StatusOr<v1::JoinResponse> Join(const v1::JoinRequest& request);
  // Waits until the channel is connected (true), `deadline` passes or CancelJoins() was called
  // (false), driving the connection meanwhile: in gRPC 1.51 a reconnect attempt moves on only
  // while some thread polls the channel, and a fail-fast call on a disconnected channel fails at
  // once without polling, so a loop of such calls and sleeps reconnects only when gRPC's backup
  // poller runs (every 5 s). Wakes as soon as the channel connects.
  bool WaitForConnected(absl::Time deadline);
  // Ends a Join in progress, and makes every later Join and WaitForConnected fail at once
  // (the agent is stopping).
  void CancelJoins();
  // With a `canceller`, a Cancel() ends the call at once with the cancel's status.
  absl::Status KvSet(const v1::KvSetRequest& request, RpcCanceller* canceller = nullptr);
  // The RPC deadline is the wait plus rpc_timeout.
  absl::StatusOr<v1::KvGetResponse> KvGet(const v1::KvGetRequest& request,
                                          RpcCanceller* canceller = nullptr);

  // Admin calls (the embedded seed-style API uses them).
  absl::StatusOr<v1::InitializeResponse> Initialize(const v1::InitializeRequest& request);
  absl::StatusOr<v1::DestroyResponse> Destroy(const v1::DestroyRequest& request);
  absl::StatusOr<v1::PoolState> GetState(const std::string& pool);
  absl::StatusOr<v1::CheckResponse> Check(const std::string& pool);
  // The pool's state once its version passes `after_version`, or at the timeout.
  absl::StatusOr<v1::PoolState> WaitForStateChange(const std::string& pool, int64_t after_version,
                                                   absl::Duration timeout);

  // The session stream. Open() attaches; Read() blocks for the next message (false when the
  // stream ended; Finish() then tells why); Write() may be called from several threads.
  class Session {
   public:
    bool Read(v1::CoordinatorMessage* message);
    bool Write(const v1::AgentMessage& message);
    // Unblocks Read and ends the stream.
    void Cancel();
    absl::Status Finish();

   private:
    friend class CoordinatorClient;
    grpc::ClientContext context_;
    std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::CoordinatorMessage>> stream_;
    absl::Mutex write_mu_;
    bool finished_ = false;
  };
  // Errors: the transport's status if the stream cannot be opened or the attach not written.
  absl::StatusOr<std::unique_ptr<Session>> OpenSession(const std::string& session_id);

 private:
  void SetDeadline(grpc::ClientContext& context, absl::Duration extra = absl::ZeroDuration());

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AgentService::Stub> agent_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  const absl::Duration rpc_timeout_;

  absl::Mutex join_mu_;
  // The context of the Join in progress, for CancelJoins().
  grpc::ClientContext* join_context_ ABSL_GUARDED_BY(join_mu_) = nullptr;
  bool joins_cancelled_ ABSL_GUARDED_BY(join_mu_) = false;
  // Whether gRPC can watch the channel's state (not for an in-process channel); known after the
  // first WaitForConnected.
  std::optional<bool> watchable_ ABSL_GUARDED_BY(join_mu_);
};

// The rendezvous store of one pool generation, served by the coordinator. Keys that hold NCCL
// unique ids (ending in "nccl_id") are written set-once: an id is never reused. Every call names
// the agent's session (`session_id`), which the coordinator checks against the plan: a member
// writes only the keys its rank owns and reads only its groups' keys.
class CoordinatorRendezvousStore final : public RendezvousStore {
 public:
  CoordinatorRendezvousStore(CoordinatorClient* client, std::string pool, int64_t generation,
                             std::string session_id = "")
      : client_(client),
        pool_(std::move(pool)),
        generation_(generation),
        session_id_(std::move(session_id)) {}

  absl::Status Set(absl::string_view key, absl::string_view value) override;
  absl::StatusOr<std::string> Get(absl::string_view key, absl::Duration timeout) override;
  absl::Status MultiSet(absl::Span<const std::pair<std::string, std::string>> kvs) override;
  absl::StatusOr<std::vector<std::string>> MultiGet(absl::Span<const std::string> keys,
                                                    absl::Duration timeout) override;
  // Ends every call in progress (a wait for peers, above all) and fails every later one with
  // `why`: the build using this store was aborted. Thread-safe.
  void Cancel(absl::Status why) override { canceller_.Cancel(std::move(why)); }

 private:
  RpcCanceller canceller_;
  CoordinatorClient* const client_;
  const std::string pool_;
  const int64_t generation_;
  const std::string session_id_;
};

}  // namespace cohort::agent

#endif  // COHORT_AGENT_COORDINATOR_CLIENT_H_
