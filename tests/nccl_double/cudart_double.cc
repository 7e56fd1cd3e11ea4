// The CUDA runtime of the NCCL double: built as libcudart.so.13 (symbol version libcudart.so.13,
// like the real one), for tests only. What it stands in for:
//   - devices: COHORT_NCCL_DOUBLE_DEVICES of them (default 8); the current device is per thread,
//     as in CUDA; an index out of range is cudaErrorInvalidDevice.
//   - device memory is host memory (cudaMalloc = calloc), cudaMemcpy/cudaMemset are memcpy/memset;
//     every allocation is remembered, so that NCCL can refuse buffers that are not device memory.
//   - a stream is a thread that runs what NCCL enqueues on it in order; cudaStreamQuery answers
//     cudaErrorNotReady while anything on it is queued or running (a kernel still running).
//   - errors: the per-thread "last error" of cudaGetLastError, and CUDA's names and texts for the
//     errors the double returns.
// Only the functions cohort and its benches call are here (README.md).

#include <cuda_runtime_api.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "tests/nccl_double/double_internal.h"

namespace {

std::atomic<long> g_live_buffers{0};
// Every live allocation: start -> size.
std::mutex g_allocations_mu;
std::map<uintptr_t, size_t>* g_allocations = new std::map<uintptr_t, size_t>();
std::atomic<long> g_live_streams{0};

// With COHORT_NCCL_DOUBLE_STATUS set, "<that path>.cuda" holds the live allocations and streams
// after every cudaMalloc/cudaFree/stream create/destroy, so that a test can see leaks.
void WriteStatus() {
  static const std::string path = [] {
    const char* v = std::getenv("COHORT_NCCL_DOUBLE_STATUS");
    return v != nullptr && *v != '\0' ? std::string(v) + ".cuda" : std::string();
  }();
  if (path.empty()) return;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  const std::string tmp = path + ".tmp" + std::to_string(getpid());
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return;
  std::fprintf(f, "buffers_live %ld\nstreams_live %ld\n", g_live_buffers.load(),
               g_live_streams.load());
  std::fclose(f);
  std::rename(tmp.c_str(), path.c_str());
}

thread_local int t_device = 0;
thread_local cudaError_t t_last_error = cudaSuccess;

int DeviceCount() {
  static const int count = [] {
    const char* v = std::getenv("COHORT_NCCL_DOUBLE_DEVICES");
    if (v == nullptr || *v == '\0') return 8;
    const int n = std::atoi(v);
    return n < 0 ? 0 : n;
  }();
  return count;
}

// Records `e` as the thread's last error (as CUDA does for failed calls) and returns it.
cudaError_t Fail(cudaError_t e) {
  t_last_error = e;
  return e;
}

bool ValidDevice(int device) { return device >= 0 && device < DeviceCount(); }

// One stream: a queue and the thread that drains it, started with the first task. The thread ends
// when the stream is destroyed and its queue is empty (CUDA lets work finish after
// cudaStreamDestroy).
struct StreamState {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::function<void()>> queue;
  bool running = false;    // a task is executing
  bool destroyed = false;  // cudaStreamDestroy was called
  bool has_thread = false;
};

void Drain(std::shared_ptr<StreamState> s) {
  std::unique_lock<std::mutex> lock(s->mu);
  for (;;) {
    s->cv.wait(lock, [&] { return !s->queue.empty() || s->destroyed; });
    if (s->queue.empty()) break;  // destroyed and drained
    std::function<void()> task = std::move(s->queue.front());
    s->queue.pop_front();
    s->running = true;
    lock.unlock();
    task();
    lock.lock();
    s->running = false;
    s->cv.notify_all();
  }
  s->has_thread = false;
}

}  // namespace

// cudaStream_t is `struct CUstream_st*`: the double's stream handle.
struct CUstream_st {
  std::shared_ptr<StreamState> state = std::make_shared<StreamState>();
};

extern "C" {

void cohort_double_stream_enqueue(cudaStream_t stream, void (*fn)(void*), void* arg) {
  if (stream == nullptr) {
    fn(arg);
    return;
  }
  std::shared_ptr<StreamState> s = stream->state;
  std::lock_guard<std::mutex> lock(s->mu);
  s->queue.emplace_back([fn, arg] { fn(arg); });
  if (!s->has_thread) {
    s->has_thread = true;
    std::thread(Drain, s).detach();
  }
  s->cv.notify_all();
}

int cohort_double_is_device_memory(const void* ptr, size_t bytes) {
  const auto p = reinterpret_cast<uintptr_t>(ptr);
  std::lock_guard<std::mutex> lock(g_allocations_mu);
  auto it = g_allocations->upper_bound(p);
  if (it == g_allocations->begin()) return 0;
  --it;
  return p >= it->first && p + bytes <= it->first + it->second ? 1 : 0;
}

cudaError_t CUDARTAPI cudaGetDeviceCount(int* count) {
  if (count == nullptr) return Fail(cudaErrorInvalidValue);
  *count = DeviceCount();
  if (*count == 0) return Fail(cudaErrorNoDevice);
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaSetDevice(int device) {
  if (DeviceCount() == 0) return Fail(cudaErrorNoDevice);
  if (!ValidDevice(device)) return Fail(cudaErrorInvalidDevice);
  t_device = device;
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaGetDevice(int* device) {
  if (device == nullptr) return Fail(cudaErrorInvalidValue);
  if (DeviceCount() == 0) return Fail(cudaErrorNoDevice);
  *device = t_device;
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaDeviceSynchronize(void) { return cudaSuccess; }

cudaError_t CUDARTAPI cudaDeviceGetPCIBusId(char* pci_bus_id, int len, int device) {
  if (pci_bus_id == nullptr || len <= 0) return Fail(cudaErrorInvalidValue);
  if (!ValidDevice(device)) return Fail(cudaErrorInvalidDevice);
  std::snprintf(pci_bus_id, static_cast<size_t>(len), "00000000:%02X:00.0", 0x18 + device);
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaGetDeviceProperties(struct cudaDeviceProp* prop, int device) {
  if (prop == nullptr) return Fail(cudaErrorInvalidValue);
  if (!ValidDevice(device)) return Fail(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof(*prop));
  std::snprintf(prop->name, sizeof(prop->name), "cohort NCCL double (host memory)");
  // A UUID that is stable for (host, device), like a real GPU's.
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  uint64_t h = 1469598103934665603ULL;
  for (const char* p = host; *p != '\0'; ++p)
    h = (h ^ static_cast<unsigned char>(*p)) * 1099511628211ULL;
  for (int i = 0; i < 16; ++i) {
    prop->uuid.bytes[i] = static_cast<char>((h >> ((i % 8) * 8)) ^ (i < 8 ? 0 : device));
  }
  prop->totalGlobalMem = size_t{80} << 30;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 132;
  prop->pciBusID = 0x18 + device;
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaMalloc(void** dev_ptr, size_t size) {
  if (dev_ptr == nullptr) return Fail(cudaErrorInvalidValue);
  *dev_ptr = std::calloc(1, size == 0 ? 1 : size);
  if (*dev_ptr == nullptr) return Fail(cudaErrorMemoryAllocation);
  {
    std::lock_guard<std::mutex> lock(g_allocations_mu);
    (*g_allocations)[reinterpret_cast<uintptr_t>(*dev_ptr)] = size;
  }
  ++g_live_buffers;
  WriteStatus();
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaFree(void* dev_ptr) {
  if (dev_ptr == nullptr) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(g_allocations_mu);
    if (g_allocations->erase(reinterpret_cast<uintptr_t>(dev_ptr)) == 0) {
      return Fail(cudaErrorInvalidValue);  // not from cudaMalloc, or freed twice
    }
  }
  std::free(dev_ptr);
  --g_live_buffers;
  WriteStatus();
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaMemcpy(void* dst, const void* src, size_t count, enum cudaMemcpyKind) {
  if (count > 0 && (dst == nullptr || src == nullptr)) return Fail(cudaErrorInvalidValue);
  if (count > 0) std::memmove(dst, src, count);
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaMemset(void* dev_ptr, int value, size_t count) {
  if (count > 0 && dev_ptr == nullptr) return Fail(cudaErrorInvalidValue);
  if (count > 0) std::memset(dev_ptr, value, count);
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) {
  if (stream == nullptr) return Fail(cudaErrorInvalidValue);
  *stream = new CUstream_st();
  ++g_live_streams;
  WriteStatus();
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaStreamCreate(cudaStream_t* stream) {
  return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}

cudaError_t CUDARTAPI cudaStreamDestroy(cudaStream_t stream) {
  if (stream == nullptr) return Fail(cudaErrorInvalidResourceHandle);
  {
    std::lock_guard<std::mutex> lock(stream->state->mu);
    stream->state->destroyed = true;
    stream->state->cv.notify_all();
  }
  delete stream;  // the thread holds the state until its queue is drained
  --g_live_streams;
  WriteStatus();
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaStreamQuery(cudaStream_t stream) {
  if (stream == nullptr) return cudaSuccess;
  std::lock_guard<std::mutex> lock(stream->state->mu);
  return stream->state->queue.empty() && !stream->state->running ? cudaSuccess : cudaErrorNotReady;
}

cudaError_t CUDARTAPI cudaStreamSynchronize(cudaStream_t stream) {
  if (stream == nullptr) return cudaSuccess;
  std::unique_lock<std::mutex> lock(stream->state->mu);
  stream->state->cv.wait(lock,
                         [&] { return stream->state->queue.empty() && !stream->state->running; });
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaGetLastError(void) {
  const cudaError_t e = t_last_error;
  t_last_error = cudaSuccess;
  return e;
}

cudaError_t CUDARTAPI cudaPeekAtLastError(void) { return t_last_error; }

const char* CUDARTAPI cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorNoDevice:
      return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle:
      return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady:
      return "cudaErrorNotReady";
    default:
      return "cudaErrorUnknown";
  }
}

const char* CUDARTAPI cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorNoDevice:
      return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle";
    case cudaErrorNotReady:
      return "device not ready";
    default:
      return "unknown error";
  }
}

}  // extern "C"
