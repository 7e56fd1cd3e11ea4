#include "agent/comm/nccl_api.h"

namespace cohort::agent {
namespace {

// Each method forwards to the C function of the same name, nothing more: the backend's behaviour
// on the real libraries is what it was before the seam.
class LibraryNcclApi final : public NcclApi {
 public:
  ncclResult_t NcclGetUniqueId(ncclUniqueId* unique_id) override {
    return ncclGetUniqueId(unique_id);
  }
  ncclResult_t NcclCommInitRankConfig(ncclComm_t* comm, int nranks, ncclUniqueId comm_id, int rank,
                                      ncclConfig_t* config) override {
    return ncclCommInitRankConfig(comm, nranks, comm_id, rank, config);
  }
  ncclResult_t NcclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t* newcomm,
                             ncclConfig_t* config) override {
    return ncclCommSplit(comm, color, key, newcomm, config);
  }
  ncclResult_t NcclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async_error) override {
    return ncclCommGetAsyncError(comm, async_error);
  }
  ncclResult_t NcclCommFinalize(ncclComm_t comm) override { return ncclCommFinalize(comm); }
  ncclResult_t NcclCommDestroy(ncclComm_t comm) override { return ncclCommDestroy(comm); }
  ncclResult_t NcclCommAbort(ncclComm_t comm) override { return ncclCommAbort(comm); }

  ncclResult_t NcclAllReduce(const void* sendbuff, void* recvbuff, size_t count,
                             ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                             cudaStream_t stream) override {
    return ncclAllReduce(sendbuff, recvbuff, count, datatype, op, comm, stream);
  }
  ncclResult_t NcclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount,
                             ncclDataType_t datatype, ncclComm_t comm,
                             cudaStream_t stream) override {
    return ncclAllGather(sendbuff, recvbuff, sendcount, datatype, comm, stream);
  }
  ncclResult_t NcclBroadcast(const void* sendbuff, void* recvbuff, size_t count,
                             ncclDataType_t datatype, int root, ncclComm_t comm,
                             cudaStream_t stream) override {
    return ncclBroadcast(sendbuff, recvbuff, count, datatype, root, comm, stream);
  }
  ncclResult_t NcclSend(const void* sendbuff, size_t count, ncclDataType_t datatype, int peer,
                        ncclComm_t comm, cudaStream_t stream) override {
    return ncclSend(sendbuff, count, datatype, peer, comm, stream);
  }
  ncclResult_t NcclRecv(void* recvbuff, size_t count, ncclDataType_t datatype, int peer,
                        ncclComm_t comm, cudaStream_t stream) override {
    return ncclRecv(recvbuff, count, datatype, peer, comm, stream);
  }
  ncclResult_t NcclGroupStart() override { return ncclGroupStart(); }
  ncclResult_t NcclGroupEnd() override { return ncclGroupEnd(); }

  const char* NcclGetErrorString(ncclResult_t result) override {
    return ncclGetErrorString(result);
  }
  const char* NcclGetLastError(ncclComm_t comm) override { return ncclGetLastError(comm); }

  cudaError_t CudaSetDevice(int device) override { return cudaSetDevice(device); }
  cudaError_t CudaMalloc(void** dev_ptr, size_t size) override { return cudaMalloc(dev_ptr, size); }
  cudaError_t CudaFree(void* dev_ptr) override { return cudaFree(dev_ptr); }
  cudaError_t CudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) override {
    return cudaMemcpy(dst, src, count, kind);
  }
  cudaError_t CudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) override {
    return cudaStreamCreateWithFlags(stream, flags);
  }
  cudaError_t CudaStreamDestroy(cudaStream_t stream) override { return cudaStreamDestroy(stream); }
  cudaError_t CudaStreamQuery(cudaStream_t stream) override { return cudaStreamQuery(stream); }

  cudaError_t CudaDeviceGetPCIBusId(char* pci_bus_id, int len, int device) override {
    return cudaDeviceGetPCIBusId(pci_bus_id, len, device);
  }
  cudaError_t CudaGetDeviceProperties(cudaDeviceProp* prop, int device) override {
    return cudaGetDeviceProperties(prop, device);
  }
  cudaError_t CudaGetLastError() override { return cudaGetLastError(); }
  const char* CudaGetErrorName(cudaError_t error) override { return cudaGetErrorName(error); }
  const char* CudaGetErrorString(cudaError_t error) override { return cudaGetErrorString(error); }
};

}  // namespace

NcclApi& RealNcclApi() {
  // Leaked on purpose: communicators may be released from static destructors or detached
  // threads after main returns, and must still find their api.
  static NcclApi* const api = new LibraryNcclApi();
  return *api;
}

}  // namespace cohort::agent
