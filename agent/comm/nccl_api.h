// The seam between the NCCL backend and the NCCL and CUDA libraries: one virtual method per C
// function the backend calls, with the C function's parameters and result. Production code uses
// RealNcclApi(), which calls the libraries exactly as the backend did before the seam (no GPU or
// driver needed to load it: those calls fail cleanly at run time). Tests hand the backend their
// own NcclApi (BackendOptions::nccl_api) so that the backend's real code (non-blocking init and
// split, polls against deadlines, abort, teardown, device buffers) runs without a GPU.
//
// nccl_api.cc is the only file that calls NCCL or CUDA; nccl_backend.cc and nccl_status.cc reach
// them only through an NcclApi. Methods are named after the C function with a capital first
// letter (ncclAllReduce -> NcclAllReduce): the mapping stays obvious, and the names cannot collide
// with the CUDA runtime's per-thread-stream macros (cudaMemcpy -> cudaMemcpy_ptds).
//
// An implementation must be safe to call from several threads at once (ops, teardown threads of
// Backend::DestroyAll and Abort() run concurrently), and must outlive the backend and every
// communicator made with it. Compiled only when COHORT_WITH_NCCL.

#ifndef COHORT_AGENT_COMM_NCCL_API_H_
#define COHORT_AGENT_COMM_NCCL_API_H_

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstddef>

namespace cohort::agent {

class NcclApi {
 public:
  virtual ~NcclApi() = default;

  // --- NCCL: communicators.
  virtual ncclResult_t NcclGetUniqueId(ncclUniqueId* unique_id) = 0;
  virtual ncclResult_t NcclCommInitRankConfig(ncclComm_t* comm, int nranks, ncclUniqueId comm_id,
                                              int rank, ncclConfig_t* config) = 0;
  virtual ncclResult_t NcclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t* newcomm,
                                     ncclConfig_t* config) = 0;
  virtual ncclResult_t NcclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async_error) = 0;
  virtual ncclResult_t NcclCommFinalize(ncclComm_t comm) = 0;
  virtual ncclResult_t NcclCommDestroy(ncclComm_t comm) = 0;
  virtual ncclResult_t NcclCommAbort(ncclComm_t comm) = 0;

  // --- NCCL: operations (enqueued on `stream`).
  virtual ncclResult_t NcclAllReduce(const void* sendbuff, void* recvbuff, size_t count,
                                     ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                                     cudaStream_t stream) = 0;
  virtual ncclResult_t NcclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount,
                                     ncclDataType_t datatype, ncclComm_t comm,
                                     cudaStream_t stream) = 0;
  virtual ncclResult_t NcclBroadcast(const void* sendbuff, void* recvbuff, size_t count,
                                     ncclDataType_t datatype, int root, ncclComm_t comm,
                                     cudaStream_t stream) = 0;
  virtual ncclResult_t NcclSend(const void* sendbuff, size_t count, ncclDataType_t datatype,
                                int peer, ncclComm_t comm, cudaStream_t stream) = 0;
  virtual ncclResult_t NcclRecv(void* recvbuff, size_t count, ncclDataType_t datatype, int peer,
                                ncclComm_t comm, cudaStream_t stream) = 0;
  virtual ncclResult_t NcclGroupStart() = 0;
  virtual ncclResult_t NcclGroupEnd() = 0;

  // --- NCCL: error text (never null for the real library).
  virtual const char* NcclGetErrorString(ncclResult_t result) = 0;
  virtual const char* NcclGetLastError(ncclComm_t comm) = 0;

  // --- CUDA runtime: device, memory, streams.
  virtual cudaError_t CudaSetDevice(int device) = 0;
  virtual cudaError_t CudaMalloc(void** dev_ptr, size_t size) = 0;
  virtual cudaError_t CudaFree(void* dev_ptr) = 0;
  virtual cudaError_t CudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) = 0;
  virtual cudaError_t CudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) = 0;
  virtual cudaError_t CudaStreamDestroy(cudaStream_t stream) = 0;
  virtual cudaError_t CudaStreamQuery(cudaStream_t stream) = 0;

  // --- CUDA runtime: device identity and errors.
  virtual cudaError_t CudaDeviceGetPCIBusId(char* pci_bus_id, int len, int device) = 0;
  virtual cudaError_t CudaGetDeviceProperties(cudaDeviceProp* prop, int device) = 0;
  virtual cudaError_t CudaGetLastError() = 0;
  virtual const char* CudaGetErrorName(cudaError_t error) = 0;
  virtual const char* CudaGetErrorString(cudaError_t error) = 0;
};

// The process-wide binding to the real libcudart and libnccl. Never destroyed; thread-safe (it
// holds no state).
NcclApi& RealNcclApi();

}  // namespace cohort::agent

#endif  // COHORT_AGENT_COMM_NCCL_API_H_
