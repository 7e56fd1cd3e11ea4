// Raw NCCL, no cohort: what a cohort agent at world 1 does to reach READY, done directly in one
// process, so that cohort's READY time can be compared with the cost of NCCL itself.
//
// One repetition:
//   init     cudaSetDevice, ncclGetUniqueId, non-blocking ncclCommInitRankConfig (world of 1),
//            polled with ncclCommGetAsyncError
//   splits   one non-blocking ncclCommSplit of the world per group kind a world-1 pool with every
//            kind has besides the world (dp cfg pp ulysses ring sp tp fs ep dit: 10, as
//            `cohortctl layout --world-size 1 --moe --ep` shows)
//   verify   a one-element int64 all-reduce on each communicator (the world and every split),
//            checked, as cohort verifies every group before it reports READY
//   destroy  ncclCommFinalize of every communicator (polled), then ncclCommDestroy of each
//   ready    init + splits + verify: what cohort's READY includes
//
// The first NCCL init in a process is slow (CUDA context, NCCL's one-time setup: ~0.5-0.75 s on
// an H200), so the first repetition is reported apart from the median of the others.
//
// Usage: nccl_raw_bench [--device N] [--repeat N] [--splits N] [--timeout-s S]
// Output: one `raw_nccl rep=K ...` line per repetition, then `raw_nccl summary=first ...` and
// `raw_nccl summary=median_rest ...` (absent with --repeat 1). Exit status 0 on success, 1 on an
// NCCL/CUDA error or a poll past its deadline (the communicators are aborted), 2 on bad flags.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "cuda_runtime_api.h"
#include "nccl.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int device = 0;
  int repeat = 1;
  int splits = 10;
  double timeout_s = 60;
};

struct Times {
  double init_ms = 0;
  double splits_ms = 0;
  double verify_ms = 0;
  double destroy_ms = 0;
  double ready_ms = 0;  // init + splits + verify
};

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "nccl_raw_bench: error: %s\n", what.c_str());
  std::exit(1);
}

// Every communicator created so far, aborted before exiting on an error.
std::vector<ncclComm_t>* g_comms = nullptr;

[[noreturn]] void AbortAndDie(const std::string& what) {
  if (g_comms != nullptr) {
    for (ncclComm_t c : *g_comms) ncclCommAbort(c);
  }
  Die(what);
}

void CheckCuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    AbortAndDie(std::string(what) + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
  }
}

void CheckNccl(ncclResult_t r, const char* what, ncclComm_t comm) {
  if (r == ncclSuccess || r == ncclInProgress) return;
  std::string msg = std::string(what) + ": " + ncclGetErrorString(r);
  const char* last = ncclGetLastError(comm);
  if (last != nullptr && *last != '\0') msg += std::string(" (") + last + ")";
  AbortAndDie(msg);
}

// Polls `comm` until it leaves ncclInProgress, at most `timeout_s`: 50 us doubling to 1 ms, as
// cohort's NCCL backend polls.
void AwaitComm(ncclComm_t comm, const char* what, double timeout_s) {
  const Clock::time_point deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                        std::chrono::duration<double>(timeout_s));
  std::chrono::microseconds interval(50);
  for (;;) {
    ncclResult_t state = ncclInProgress;
    CheckNccl(ncclCommGetAsyncError(comm, &state), "ncclCommGetAsyncError", comm);
    if (state == ncclSuccess) return;
    CheckNccl(state, what, comm);
    if (Clock::now() >= deadline) {
      AbortAndDie(std::string(what) + " did not complete within " + std::to_string(timeout_s) +
                  " s; aborted");
    }
    std::this_thread::sleep_for(interval);
    interval = std::min(interval * 2, std::chrono::microseconds(1000));
  }
}

// Waits for `stream` (and the communicator's async state) at most `timeout_s`.
void AwaitStream(cudaStream_t stream, ncclComm_t comm, const char* what, double timeout_s) {
  const Clock::time_point deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                        std::chrono::duration<double>(timeout_s));
  std::chrono::microseconds interval(50);
  for (;;) {
    const cudaError_t e = cudaStreamQuery(stream);
    if (e == cudaSuccess) return;
    if (e != cudaErrorNotReady) CheckCuda(e, what);
    ncclResult_t state = ncclSuccess;
    CheckNccl(ncclCommGetAsyncError(comm, &state), "ncclCommGetAsyncError", comm);
    CheckNccl(state, what, comm);
    if (Clock::now() >= deadline) {
      AbortAndDie(std::string(what) + " did not complete within " + std::to_string(timeout_s) +
                  " s; aborted");
    }
    std::this_thread::sleep_for(interval);
    interval = std::min(interval * 2, std::chrono::microseconds(1000));
  }
}

ncclConfig_t NonBlockingConfig(const char* name) {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  config.commName = name;
  return config;
}

Times RunOnce(const Options& o) {
  Times t;
  std::vector<ncclComm_t> comms;
  g_comms = &comms;

  Clock::time_point start = Clock::now();
  CheckCuda(cudaSetDevice(o.device), "cudaSetDevice");
  ncclUniqueId id;
  CheckNccl(ncclGetUniqueId(&id), "ncclGetUniqueId", nullptr);
  ncclConfig_t world_config = NonBlockingConfig("raw world/0");
  ncclComm_t world = nullptr;
  CheckNccl(ncclCommInitRankConfig(&world, 1, id, 0, &world_config), "ncclCommInitRankConfig",
            nullptr);
  if (world == nullptr) AbortAndDie("ncclCommInitRankConfig returned no communicator");
  comms.push_back(world);
  AwaitComm(world, "ncclCommInitRankConfig", o.timeout_s);
  t.init_ms = MillisSince(start);

  start = Clock::now();
  for (int i = 0; i < o.splits; ++i) {
    const std::string name = "raw split/" + std::to_string(i);
    ncclConfig_t config = NonBlockingConfig(name.c_str());
    ncclComm_t comm = nullptr;
    CheckNccl(ncclCommSplit(world, /*color=*/0, /*key=*/0, &comm, &config), "ncclCommSplit", world);
    AwaitComm(world, "ncclCommSplit (parent)", o.timeout_s);
    if (comm == nullptr) AbortAndDie("ncclCommSplit returned no communicator");
    comms.push_back(comm);
    AwaitComm(comm, "ncclCommSplit", o.timeout_s);
  }
  t.splits_ms = MillisSince(start);

  start = Clock::now();
  cudaStream_t stream = nullptr;
  CheckCuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  void* word = nullptr;
  CheckCuda(cudaMalloc(&word, sizeof(int64_t)), "cudaMalloc");
  for (ncclComm_t comm : comms) {
    int count = 0;
    CheckNccl(ncclCommCount(comm, &count), "ncclCommCount", comm);
    int64_t value = 1;
    CheckCuda(cudaMemcpy(word, &value, sizeof(value), cudaMemcpyHostToDevice), "cudaMemcpy H2D");
    CheckNccl(ncclAllReduce(word, word, 1, ncclInt64, ncclSum, comm, stream), "ncclAllReduce",
              comm);
    AwaitComm(comm, "ncclAllReduce (enqueue)", o.timeout_s);
    AwaitStream(stream, comm, "ncclAllReduce", o.timeout_s);
    CheckCuda(cudaMemcpy(&value, word, sizeof(value), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
    if (value != count) {
      AbortAndDie("verification all-reduce summed " + std::to_string(value) + ", expected " +
                  std::to_string(count));
    }
  }
  CheckCuda(cudaFree(word), "cudaFree");
  CheckCuda(cudaStreamDestroy(stream), "cudaStreamDestroy");
  t.verify_ms = MillisSince(start);

  start = Clock::now();
  for (ncclComm_t comm : comms) CheckNccl(ncclCommFinalize(comm), "ncclCommFinalize", comm);
  for (ncclComm_t comm : comms) AwaitComm(comm, "ncclCommFinalize", o.timeout_s);
  while (!comms.empty()) {
    ncclComm_t comm = comms.back();
    comms.pop_back();  // destroyed (or failed): nothing left to abort
    CheckNccl(ncclCommDestroy(comm), "ncclCommDestroy", nullptr);
  }
  t.destroy_ms = MillisSince(start);
  t.ready_ms = t.init_ms + t.splits_ms + t.verify_ms;
  g_comms = nullptr;
  return t;
}

void Print(const std::string& label, const Times& t, int comms) {
  std::printf(
      "raw_nccl %s comms=%d init_ms=%.2f splits_ms=%.2f verify_ms=%.2f destroy_ms=%.2f "
      "ready_ms=%.2f\n",
      label.c_str(), comms, t.init_ms, t.splits_ms, t.verify_ms, t.destroy_ms, t.ready_ms);
  std::fflush(stdout);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

[[noreturn]] void Usage(const char* error) {
  std::fprintf(stderr,
               "error: %s\nusage: nccl_raw_bench [--device N] [--repeat N] [--splits N] "
               "[--timeout-s S]\n",
               error);
  std::exit(2);
}

Options ParseFlags(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::printf("usage: nccl_raw_bench [--device N] [--repeat N] [--splits N] [--timeout-s S]\n");
      std::exit(0);
    }
    if (i + 1 >= argc) Usage(("missing value for " + flag).c_str());
    const char* value = argv[++i];
    char* end = nullptr;
    errno = 0;
    if (flag == "--timeout-s") {
      o.timeout_s = std::strtod(value, &end);
      if (*end != '\0' || errno != 0 || !(o.timeout_s > 0)) Usage("--timeout-s needs S > 0");
      continue;
    }
    const long n = std::strtol(value, &end, 10);
    if (*end != '\0' || errno != 0 || n < 0 || n > 1000000) {
      Usage((flag + ": not a count: " + value).c_str());
    }
    if (flag == "--device") {
      o.device = static_cast<int>(n);
    } else if (flag == "--repeat" && n >= 1) {
      o.repeat = static_cast<int>(n);
    } else if (flag == "--splits") {
      o.splits = static_cast<int>(n);
    } else {
      Usage(("unknown flag or bad value: " + flag + " " + value).c_str());
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = ParseFlags(argc, argv);
  int version = 0;
  ncclGetVersion(&version);
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  std::printf("raw_nccl nccl_version=%d cuda_devices=%d device=%d splits=%d repeat=%d\n", version,
              e == cudaSuccess ? devices : 0, o.device, o.splits, o.repeat);
  if (e != cudaSuccess) CheckCuda(e, "cudaGetDeviceCount");

  std::vector<Times> all;
  for (int r = 0; r < o.repeat; ++r) {
    all.push_back(RunOnce(o));
    Print("rep=" + std::to_string(r), all.back(), o.splits + 1);
  }
  Print("summary=first", all.front(), o.splits + 1);
  if (all.size() > 1) {
    auto median = [&](double Times::*field) {
      std::vector<double> v;
      for (size_t i = 1; i < all.size(); ++i) v.push_back(all[i].*field);
      return Median(v);
    };
    Times m;
    m.init_ms = median(&Times::init_ms);
    m.splits_ms = median(&Times::splits_ms);
    m.verify_ms = median(&Times::verify_ms);
    m.destroy_ms = median(&Times::destroy_ms);
    m.ready_ms = median(&Times::ready_ms);  // the median of the sums, not the sum of medians
    Print("summary=median_rest", m, o.splits + 1);
  }
  return 0;
}
