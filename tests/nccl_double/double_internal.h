// What the two stand-in libraries of the NCCL double share (README.md in this folder): the fake
// CUDA runtime (libcudart.so.13) exports these C functions next to the CUDA API, and the fake NCCL
// (libnccl.so.2) calls them to run its operations on CUDA streams and check its buffers. Not part
// of any real library; nothing outside tests/nccl_double calls them.
#ifndef COHORT_TESTS_NCCL_DOUBLE_DOUBLE_INTERNAL_H_
#define COHORT_TESTS_NCCL_DOUBLE_DOUBLE_INTERNAL_H_

#include <cuda_runtime_api.h>

#include <cstddef>

extern "C" {

// Runs fn(arg) on `stream` after everything enqueued on it before, on the stream's own thread
// (the null stream: at once, on the caller's thread). cudaStreamQuery(stream) answers
// cudaErrorNotReady until fn has returned, as for a kernel still running.
void cohort_double_stream_enqueue(cudaStream_t stream, void (*fn)(void*), void* arg);

// 1 if [ptr, ptr + bytes) lies in one allocation of cudaMalloc not yet freed ("device memory"),
// else 0: NCCL refuses other pointers (ncclInvalidArgument "... is not a valid pointer").
int cohort_double_is_device_memory(const void* ptr, size_t bytes);

}  // extern "C"

#endif  // COHORT_TESTS_NCCL_DOUBLE_DOUBLE_INTERNAL_H_
