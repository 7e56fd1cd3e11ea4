// The gRPC adapters of the coordinator: thin callback-API services that turn RPCs into calls on
// Coordinator. Waiting RPCs (KvGet, GetState with a wait, the session stream) hold no thread.
#ifndef COHORT_COORDINATOR_SERVICES_H_
#define COHORT_COORDINATOR_SERVICES_H_

#include "cohort/v1/admin.grpc.pb.h"
#include "cohort/v1/agent.grpc.pb.h"
#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/write_starter.h"

namespace cohort::coordinator {

class AgentServiceImpl final : public v1::AgentService::CallbackService {
 public:
  explicit AgentServiceImpl(Coordinator* coordinator) : coordinator_(coordinator) {}

  grpc::ServerUnaryReactor* Join(grpc::CallbackServerContext* context,
                                 const v1::JoinRequest* request,
                                 v1::JoinResponse* response) override;
  grpc::ServerBidiReactor<v1::AgentMessage, v1::CoordinatorMessage>* Session(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* KvSet(grpc::CallbackServerContext* context,
                                  const v1::KvSetRequest* request,
                                  v1::KvSetResponse* response) override;
  grpc::ServerUnaryReactor* KvGet(grpc::CallbackServerContext* context,
                                  const v1::KvGetRequest* request,
                                  v1::KvGetResponse* response) override;

 private:
  Coordinator* const coordinator_;
  // Starts the session streams' writes off the Coordinator's lock (write_starter.h). The
  // server is shut down before the service is destroyed.
  WriteStarter starter_;
};

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  AdminServiceImpl(Coordinator* coordinator, Clock* clock)
      : coordinator_(coordinator), clock_(clock) {}

  grpc::ServerUnaryReactor* Initialize(grpc::CallbackServerContext* context,
                                       const v1::InitializeRequest* request,
                                       v1::InitializeResponse* response) override;
  grpc::ServerUnaryReactor* Destroy(grpc::CallbackServerContext* context,
                                    const v1::DestroyRequest* request,
                                    v1::DestroyResponse* response) override;
  grpc::ServerUnaryReactor* GetState(grpc::CallbackServerContext* context,
                                     const v1::GetStateRequest* request,
                                     v1::GetStateResponse* response) override;
  grpc::ServerUnaryReactor* ListPools(grpc::CallbackServerContext* context,
                                      const v1::ListPoolsRequest* request,
                                      v1::ListPoolsResponse* response) override;
  grpc::ServerUnaryReactor* GetEvents(grpc::CallbackServerContext* context,
                                      const v1::GetEventsRequest* request,
                                      v1::GetEventsResponse* response) override;
  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const v1::CheckRequest* request,
                                  v1::CheckResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchEvent>* Watch(grpc::CallbackServerContext* context,
                                                  const v1::WatchRequest* request) override;
  grpc::ServerUnaryReactor* DeletePool(grpc::CallbackServerContext* context,
                                       const v1::DeletePoolRequest* request,
                                       v1::DeletePoolResponse* response) override;

 private:
  Coordinator* const coordinator_;
  Clock* const clock_;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_SERVICES_H_
