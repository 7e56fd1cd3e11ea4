// The NCCL of the NCCL double: built as libnccl.so.2, for tests only (README.md in this folder).
// Ranks are threads or processes of one machine; a communicator is a full mesh of loopback TCP
// connections; "device" buffers are host memory (cudart_double.cc) and operations run on the
// stream's thread. It keeps the semantics cohort's NCCL backend relies on:
//   - non-blocking init and split (config->blocking = 0) return ncclInProgress and complete in the
//     background; ncclCommGetAsyncError answers ncclInProgress until then. A rank that never
//     joins keeps every other rank's init in progress, for ever (until ncclCommAbort).
//   - ncclCommSplit is collective over the parent: a colour per group, ranks ordered by key then
//     parent rank, NCCL_SPLIT_NOCOLOR gets no communicator.
//   - ncclCommAbort from another thread ends a pending init, split or operation at once.
//   - an operation whose peer is gone sets the communicator's asynchronous error
//     (ncclRemoteError) and its stream stays busy until the communicator is aborted, like a kernel
//     waiting on a dead peer.
//   - the same unique id used for a second communicator is refused at once with
//     ncclInvalidUsage (NCCL fails only after its ~60 s bootstrap timeout); two ranks of one
//     communicator on the same device of the same host are refused as "Duplicate GPU".
//   - buffers must be device memory (from cudaMalloc), as NCCL checks; a host pointer is
//     ncclInvalidArgument.
//   - errors are NCCL's codes, with NCCL's texts from ncclGetErrorString and a message from
//     ncclGetLastError.
// Faults are injected by the test through a control file (COHORT_NCCL_DOUBLE_CONTROL), never by
// production flags; counters of live communicators go to COHORT_NCCL_DOUBLE_STATUS.

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "nccl.h"
#include "tests/nccl_double/double_internal.h"

namespace {

using Clock = std::chrono::steady_clock;

// --- Knobs (environment, read once).

std::string EnvString(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

int EnvMillis(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::max(0, std::atoi(v)) : 0;
}

const std::string& RendezvousRoot() {
  static const std::string root = [] {
    const std::string tmp = EnvString("TMPDIR", "/tmp");
    return EnvString("COHORT_NCCL_DOUBLE_DIR",
                     tmp + "/cohort-nccl-double-" + std::to_string(getuid()));
  }();
  return root;
}

int InitDelayMs() {
  static const int ms = EnvMillis("COHORT_NCCL_DOUBLE_INIT_DELAY_MS");
  return ms;
}

int AbortDelayMs() {
  static const int ms = EnvMillis("COHORT_NCCL_DOUBLE_ABORT_DELAY_MS");
  return ms;
}

std::string HostName() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return host;
}

// --- Errors: the thread's last error text, for ncclGetLastError(nullptr).

thread_local std::string t_last_error;
thread_local std::string t_last_error_copy;

// --- Communicators.

constexpr char kIdMagic[] = "cohort-nccl-double";  // the first bytes of every unique id

struct CommState {
  int nranks = 0;
  int rank = 0;
  int device = 0;
  std::string name;
  std::string token;  // rendezvous name; children: parent token + split number + colour
  bool blocking = true;

  // ncclInProgress while init/split/finalize runs; ncclSuccess; or the sticky error.
  std::atomic<int> state{ncclInProgress};
  std::atomic<bool> aborted{false};
  std::atomic<int> ops_pending{0};
  int split_count = 0;  // splits issued from this communicator (same order on every rank)

  std::mutex mu;
  std::string last_error;
  std::vector<int> fds;  // fds[r]: connection to rank r (-1 for this rank)
  std::thread worker;    // the init, split or finalize running in the background

  ~CommState() {
    for (int fd : fds) {
      if (fd >= 0) close(fd);
    }
  }

  // Sets the sticky error (the first one wins) and its text.
  void SetError(ncclResult_t code, const std::string& text) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (last_error.empty()) last_error = text;
    }
    int expected = ncclInProgress;
    if (!state.compare_exchange_strong(expected, code)) {
      expected = ncclSuccess;
      state.compare_exchange_strong(expected, code);
    }
  }
  std::string Describe() const {
    return "communicator '" + name + "' rank " + std::to_string(rank) + "/" +
           std::to_string(nranks);
  }
};

}  // namespace

// ncclComm_t is `struct ncclComm*`: the double's handle.
struct ncclComm {
  std::shared_ptr<CommState> s;
};

namespace {

// --- Registry, counters and the status file.

std::mutex g_registry_mu;
std::set<std::shared_ptr<CommState>>* g_live = new std::set<std::shared_ptr<CommState>>();
long g_created = 0, g_destroyed = 0, g_aborted = 0;
// ncclCommAbort calls running now, and the most ever at once (parallel teardown shows here).
std::atomic<int> g_aborting{0};
std::atomic<int> g_aborting_max{0};

// Rewrites the status file (COHORT_NCCL_DOUBLE_STATUS) with the counters as they are now; one
// writer at a time, so the last write has the latest counters.
void WriteStatus() {
  static const std::string path = EnvString("COHORT_NCCL_DOUBLE_STATUS", "");
  if (path.empty()) return;
  static std::mutex write_mu;
  std::lock_guard<std::mutex> write_lock(write_mu);
  std::ostringstream out;
  {
    std::lock_guard<std::mutex> lock(g_registry_mu);
    out << "comms_live " << g_live->size() << "\ncomms_created " << g_created
        << "\ncomms_destroyed " << g_destroyed << "\ncomms_aborted " << g_aborted
        << "\naborts_concurrent_max " << g_aborting_max.load() << "\n";
  }
  const std::string tmp = path + ".tmp" + std::to_string(getpid());
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << out.str();
  }
  std::rename(tmp.c_str(), path.c_str());
}

void Register(const std::shared_ptr<CommState>& s) {
  {
    std::lock_guard<std::mutex> lock(g_registry_mu);
    g_live->insert(s);
    ++g_created;
  }
  WriteStatus();
}

void Unregister(const std::shared_ptr<CommState>& s, bool aborted) {
  {
    std::lock_guard<std::mutex> lock(g_registry_mu);
    g_live->erase(s);
    ++(aborted ? g_aborted : g_destroyed);
  }
  WriteStatus();
}

// --- Faults: the control file. One directive per line:
//   async_error remote|system|internal|cuda   every communicator ready at the time the double
//                                             reads the line gets this asynchronous error (later
//                                             ones do not: write the file again for those)
//   stall_init                                inits and splits started while the line is there
//                                             never complete (this rank never joins)
//   fail_init remote|system|internal|cuda     inits and splits started while the line is there
//                                             end with that asynchronous error
// The file is re-read whenever it changes (checked on every ncclCommGetAsyncError).

struct Control {
  std::mutex mu;
  struct timespec mtime = {0, 0};
  off_t size = -1;
  ino_t ino = 0;
  bool stall_init = false;
  ncclResult_t fail_init = ncclSuccess;
};

Control& TheControl() {
  static Control* c = new Control();
  return *c;
}

ncclResult_t ParseCode(const std::string& word) {
  if (word == "remote") return ncclRemoteError;
  if (word == "system") return ncclSystemError;
  if (word == "internal") return ncclInternalError;
  if (word == "cuda") return ncclUnhandledCudaError;
  return ncclInternalError;
}

void PollControl() {
  static const std::string path = EnvString("COHORT_NCCL_DOUBLE_CONTROL", "");
  if (path.empty()) return;
  Control& c = TheControl();
  struct stat st;
  std::lock_guard<std::mutex> lock(c.mu);
  if (stat(path.c_str(), &st) != 0) {
    c.size = -1;
    c.stall_init = false;
    c.fail_init = ncclSuccess;
    return;
  }
  if (st.st_mtim.tv_sec == c.mtime.tv_sec && st.st_mtim.tv_nsec == c.mtime.tv_nsec &&
      st.st_size == c.size && st.st_ino == c.ino) {
    return;
  }
  c.mtime = st.st_mtim;
  c.size = st.st_size;
  c.ino = st.st_ino;
  c.stall_init = false;
  c.fail_init = ncclSuccess;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream words(line);
    std::string directive, arg;
    words >> directive >> arg;
    if (directive == "stall_init") {
      c.stall_init = true;
    } else if (directive == "fail_init") {
      c.fail_init = ParseCode(arg);
    } else if (directive == "async_error") {
      const ncclResult_t code = ParseCode(arg);
      std::lock_guard<std::mutex> registry(g_registry_mu);
      for (const auto& s : *g_live) {
        if (s->state.load() == ncclSuccess) {
          s->SetError(code, "injected asynchronous error (" + arg + ") on " + s->Describe());
        }
      }
    }
  }
}

bool StallInit() {
  PollControl();
  Control& c = TheControl();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.stall_init;
}

ncclResult_t FailInit() {
  PollControl();
  Control& c = TheControl();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.fail_init;
}

// --- Sockets.

constexpr int kPollMs = 5;  // how often a blocked wait looks at the abort flag

bool SetNonBlocking(int fd) {
  const int flags = fcntl(fd, F_GETFL, 0);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

// A listening socket on 127.0.0.1:0; its port in *port.
int Listen(int* port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 64) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 || !SetNonBlocking(fd)) {
    close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// One transfer of an exchange: all of [data, data + len) sent to or received from fd.
struct Xfer {
  int fd;
  bool send;
  char* data;
  size_t len;
  int peer;
  size_t done = 0;
};

enum class Outcome { kDone, kAborted, kFailed };

// Moves every transfer to completion at once (so that sends and receives between the same ranks
// cannot deadlock), looking at `aborted` every few milliseconds. Transfers on the same connection
// in the same direction go one after the other, in vector order (a peer receives in the order it
// was sent to). On failure *error says why.
Outcome Exchange(std::vector<Xfer>& xfers, const std::atomic<bool>& aborted, std::string* error) {
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<size_t> which;
    std::set<std::pair<int, bool>> busy;  // (fd, send) with an earlier unfinished transfer
    for (size_t i = 0; i < xfers.size(); ++i) {
      if (xfers[i].done < xfers[i].len && busy.insert({xfers[i].fd, xfers[i].send}).second) {
        fds.push_back({xfers[i].fd, static_cast<short>(xfers[i].send ? POLLOUT : POLLIN), 0});
        which.push_back(i);
      }
    }
    if (fds.empty()) return Outcome::kDone;
    if (aborted.load()) return Outcome::kAborted;
    const int n = poll(fds.data(), fds.size(), kPollMs);
    if (n < 0 && errno != EINTR) {
      *error = std::string("poll: ") + std::strerror(errno);
      return Outcome::kFailed;
    }
    for (size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      Xfer& x = xfers[which[k]];
      const ssize_t r = x.send ? send(x.fd, x.data + x.done, x.len - x.done, MSG_NOSIGNAL)
                               : recv(x.fd, x.data + x.done, x.len - x.done, 0);
      if (r > 0) {
        x.done += static_cast<size_t>(r);
      } else if (r == 0 && !x.send) {
        *error = "peer rank " + std::to_string(x.peer) +
                 " closed its connection (its process exited or its communicator was destroyed)";
        return Outcome::kFailed;
      } else if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        *error = "connection to peer rank " + std::to_string(x.peer) + ": " + std::strerror(errno);
        return Outcome::kFailed;
      }
    }
  }
}

// --- Messages. Every message starts with a header naming the operation, so that ranks calling
// different collectives fail with ncclInvalidUsage instead of reading garbage.

struct Header {
  uint32_t magic;
  uint32_t op;
  uint64_t bytes;
};
constexpr uint32_t kHeaderMagic = 0xc0401a7e;

enum Op : uint32_t {
  kOpAllReduce = 1,
  kOpAllGather,
  kOpBroadcast,
  kOpSendRecv,
  kOpSplit,
  kOpHello,
};

const char* OpName(uint32_t op) {
  switch (op) {
    case kOpAllReduce:
      return "ncclAllReduce";
    case kOpAllGather:
      return "ncclAllGather";
    case kOpBroadcast:
      return "ncclBroadcast";
    case kOpSendRecv:
      return "ncclSend/ncclRecv";
    case kOpSplit:
      return "ncclCommSplit";
    default:
      return "unknown operation";
  }
}

std::string Frame(uint32_t op, const void* data, size_t bytes) {
  Header h{kHeaderMagic, op, bytes};
  std::string out(sizeof(h) + bytes, '\0');
  std::memcpy(&out[0], &h, sizeof(h));
  if (bytes > 0) std::memcpy(&out[sizeof(h)], data, bytes);
  return out;
}

// Checks a received frame against what this rank expects.
bool CheckFrame(const std::string& frame, uint32_t op, size_t bytes, int peer, std::string* error) {
  Header h;
  std::memcpy(&h, frame.data(), sizeof(h));
  if (h.magic != kHeaderMagic || h.op != op || h.bytes != bytes) {
    *error = std::string("mismatched operations: this rank runs ") + OpName(op) + " of " +
             std::to_string(bytes) + " bytes, peer rank " + std::to_string(peer) + " sent " +
             OpName(h.op) + " of " + std::to_string(h.bytes) + " bytes";
    return false;
  }
  return true;
}

// --- Reductions.

template <typename T>
void ReduceInto(T* acc, const T* in, size_t n, ncclRedOp_t op) {
  for (size_t i = 0; i < n; ++i) {
    switch (op) {
      case ncclSum:
      case ncclAvg:
        acc[i] = static_cast<T>(acc[i] + in[i]);
        break;
      case ncclProd:
        acc[i] = static_cast<T>(acc[i] * in[i]);
        break;
      case ncclMax:
        acc[i] = std::max(acc[i], in[i]);
        break;
      case ncclMin:
        acc[i] = std::min(acc[i], in[i]);
        break;
      default:
        break;
    }
  }
}

template <typename T>
void Average(T* acc, size_t n, int nranks) {
  for (size_t i = 0; i < n; ++i) acc[i] = static_cast<T>(acc[i] / nranks);
}

size_t TypeSize(ncclDataType_t t) {
  switch (t) {
    case ncclInt8:
    case ncclUint8:
      return 1;
    case ncclInt32:
    case ncclUint32:
    case ncclFloat32:
      return 4;
    case ncclInt64:
    case ncclUint64:
    case ncclFloat64:
      return 8;
    default:
      return 0;  // halves, bfloat16 and fp8: not in the double
  }
}

void Reduce(void* acc, const void* in, size_t count, ncclDataType_t t, ncclRedOp_t op) {
  switch (t) {
    case ncclInt8:
      return ReduceInto(static_cast<int8_t*>(acc), static_cast<const int8_t*>(in), count, op);
    case ncclUint8:
      return ReduceInto(static_cast<uint8_t*>(acc), static_cast<const uint8_t*>(in), count, op);
    case ncclInt32:
      return ReduceInto(static_cast<int32_t*>(acc), static_cast<const int32_t*>(in), count, op);
    case ncclUint32:
      return ReduceInto(static_cast<uint32_t*>(acc), static_cast<const uint32_t*>(in), count, op);
    case ncclInt64:
      return ReduceInto(static_cast<int64_t*>(acc), static_cast<const int64_t*>(in), count, op);
    case ncclUint64:
      return ReduceInto(static_cast<uint64_t*>(acc), static_cast<const uint64_t*>(in), count, op);
    case ncclFloat32:
      return ReduceInto(static_cast<float*>(acc), static_cast<const float*>(in), count, op);
    case ncclFloat64:
      return ReduceInto(static_cast<double*>(acc), static_cast<const double*>(in), count, op);
    default:
      return;
  }
}

void AverageAll(void* acc, size_t count, ncclDataType_t t, int nranks) {
  switch (t) {
    case ncclInt8:
      return Average(static_cast<int8_t*>(acc), count, nranks);
    case ncclUint8:
      return Average(static_cast<uint8_t*>(acc), count, nranks);
    case ncclInt32:
      return Average(static_cast<int32_t*>(acc), count, nranks);
    case ncclUint32:
      return Average(static_cast<uint32_t*>(acc), count, nranks);
    case ncclInt64:
      return Average(static_cast<int64_t*>(acc), count, nranks);
    case ncclUint64:
      return Average(static_cast<uint64_t*>(acc), count, nranks);
    case ncclFloat32:
      return Average(static_cast<float*>(acc), count, nranks);
    case ncclFloat64:
      return Average(static_cast<double*>(acc), count, nranks);
    default:
      return;
  }
}

// --- Results and the last error.

ncclResult_t Err(ncclResult_t code, const std::string& text) {
  t_last_error = "NCCL double: " + text;
  return code;
}

// --- Forming a mesh.

// Connects this rank to every other rank of `s` given each rank's listening port; `listener` is
// this rank's. Lower ranks accept, higher ranks connect; a hello names the connecting rank.
ncclResult_t ConnectMesh(CommState& s, int listener, const std::vector<int>& ports) {
  std::vector<int> fds(s.nranks, -1);
  for (int peer = 0; peer < s.rank; ++peer) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(ports[peer]));
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      const std::string why = std::strerror(errno);
      if (fd >= 0) close(fd);
      for (int f : fds) {
        if (f >= 0) close(f);
      }
      s.SetError(ncclRemoteError, "rank " + std::to_string(s.rank) + " cannot connect to rank " +
                                      std::to_string(peer) + " of " + s.Describe() + ": " + why);
      return ncclRemoteError;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    SetNonBlocking(fd);
    fds[peer] = fd;
  }
  // Hellos out, then accept the higher ranks.
  std::vector<Xfer> hellos;
  std::vector<std::string> frames;
  frames.reserve(s.nranks);
  for (int peer = 0; peer < s.rank; ++peer) {
    const int32_t me = s.rank;
    frames.push_back(Frame(kOpHello, &me, sizeof(me)));
    hellos.push_back({fds[peer], true, &frames.back()[0], frames.back().size(), peer});
  }
  std::string error;
  Outcome out = Exchange(hellos, s.aborted, &error);
  int expected = s.nranks - 1 - s.rank;
  while (out == Outcome::kDone && expected > 0) {
    if (s.aborted.load()) {
      out = Outcome::kAborted;
      break;
    }
    pollfd p{listener, POLLIN, 0};
    if (poll(&p, 1, kPollMs) <= 0) continue;
    const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    SetNonBlocking(fd);
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::string frame(sizeof(Header) + sizeof(int32_t), '\0');
    std::vector<Xfer> in = {{fd, false, &frame[0], frame.size(), -1}};
    out = Exchange(in, s.aborted, &error);
    int32_t peer = -1;
    if (out == Outcome::kDone) std::memcpy(&peer, frame.data() + sizeof(Header), sizeof(peer));
    if (out != Outcome::kDone || !CheckFrame(frame, kOpHello, sizeof(int32_t), peer, &error) ||
        peer <= s.rank || peer >= s.nranks || fds[peer] >= 0) {
      close(fd);
      if (out == Outcome::kDone) out = Outcome::kFailed;
      break;
    }
    fds[peer] = fd;
    --expected;
  }
  if (out != Outcome::kDone) {
    for (int f : fds) {
      if (f >= 0) close(f);
    }
    if (out == Outcome::kAborted) return ncclInternalError;  // the abort says the rest
    s.SetError(ncclRemoteError, s.Describe() + ": connecting: " + error);
    return ncclRemoteError;
  }
  std::lock_guard<std::mutex> lock(s.mu);
  s.fds = std::move(fds);
  return ncclSuccess;
}

// Waits until `lowest` has passed since `start` (COHORT_NCCL_DOUBLE_INIT_DELAY_MS), or an abort.
void HoldInProgress(CommState& s, Clock::time_point start) {
  const auto until = start + std::chrono::milliseconds(InitDelayMs());
  while (Clock::now() < until && !s.aborted.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// A rank's rendezvous record: "<nranks> <port> <device> <host> <pid>".
struct Record {
  int nranks = 0, port = 0, device = 0;
  long pid = 0;
  std::string host;
};

bool ReadRecord(const std::string& path, Record* r) {
  std::ifstream f(path);
  return static_cast<bool>(f >> r->nranks >> r->port >> r->device >> r->host >> r->pid);
}

// The background half of ncclCommInitRank*: waits for every rank's record in the id's directory,
// checks them, connects the mesh.
void RunInit(std::shared_ptr<CommState> s, int listener, Clock::time_point start) {
  const std::string dir = RendezvousRoot() + "/" + s->token;
  std::vector<Record> records(s->nranks);
  std::vector<bool> seen(s->nranks, false);
  int missing = s->nranks;
  while (missing > 0 && !s->aborted.load()) {
    for (int r = 0; r < s->nranks; ++r) {
      if (seen[r]) continue;
      if (ReadRecord(dir + "/rank-" + std::to_string(r), &records[r])) {
        seen[r] = true;
        --missing;
      }
    }
    if (missing > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (s->aborted.load()) {
    close(listener);
    return;
  }
  for (int r = 0; r < s->nranks; ++r) {
    if (records[r].nranks != s->nranks) {
      close(listener);
      s->SetError(ncclInvalidUsage, "rank " + std::to_string(r) + " joined unique id " + s->token +
                                        " with nranks " + std::to_string(records[r].nranks) +
                                        ", this rank with " + std::to_string(s->nranks));
      return;
    }
    for (int q = 0; q < r; ++q) {
      if (records[q].host == records[r].host && records[q].device == records[r].device) {
        close(listener);
        // NCCL's own words (init.cc), up to NCCL 2.29.
        s->SetError(ncclInvalidUsage,
                    "Duplicate GPU detected : rank " + std::to_string(r) + " and rank " +
                        std::to_string(q) + " both on CUDA device " +
                        std::to_string(records[r].device) + " (" + s->Describe() + ")");
        return;
      }
    }
  }
  std::vector<int> ports;
  for (const Record& r : records) ports.push_back(r.port);
  const ncclResult_t result = ConnectMesh(*s, listener, ports);
  close(listener);
  if (result != ncclSuccess) return;
  HoldInProgress(*s, start);
  if (s->aborted.load()) return;
  int expected = ncclInProgress;
  s->state.compare_exchange_strong(expected, ncclSuccess);
}

// Creates id directory entries atomically: the record is written aside, then linked into place,
// which fails if the rank is there already (the id was used before).
ncclResult_t Publish(const CommState& s, int port) {
  const std::string dir = RendezvousRoot() + "/" + s.token;
  mkdir(RendezvousRoot().c_str(), 0700);
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Err(ncclSystemError, "cannot create the rendezvous directory " + dir + ": " +
                                    std::strerror(errno) + " (set COHORT_NCCL_DOUBLE_DIR)");
  }
  const std::string final_path = dir + "/rank-" + std::to_string(s.rank);
  const std::string tmp = final_path + ".tmp" + std::to_string(getpid()) + "-" +
                          std::to_string(std::hash<std::thread::id>()(std::this_thread::get_id()));
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << s.nranks << " " << port << " " << s.device << " " << HostName() << " " << getpid() << "\n";
    if (!f) return Err(ncclSystemError, "cannot write " + tmp);
  }
  const int rc = link(tmp.c_str(), final_path.c_str());
  const int link_errno = errno;
  unlink(tmp.c_str());
  if (rc != 0) {
    if (link_errno == EEXIST) {
      return Err(ncclInvalidUsage,
                 "unique id " + s.token + " was already used by a communicator (rank " +
                     std::to_string(s.rank) +
                     " joined it before): every communicator needs a fresh id from "
                     "ncclGetUniqueId. (NCCL fails only after its bootstrap timeout, ~60 s; the "
                     "double refuses at once.)");
    }
    return Err(ncclSystemError, "cannot publish " + final_path + ": " + std::strerror(link_errno));
  }
  return ncclSuccess;
}

bool Blocking(const ncclConfig_t* config) { return config == nullptr || config->blocking != 0; }

std::string NameOf(const ncclConfig_t* config) {
  return config != nullptr && config->commName != nullptr ? config->commName : "";
}

// Blocking communicators wait here for the background work.
ncclResult_t WaitIfBlocking(CommState& s) {
  if (!s.blocking) return ncclInProgress;
  while (s.state.load() == ncclInProgress)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return static_cast<ncclResult_t>(s.state.load());
}

bool ValidComm(ncclComm_t comm) { return comm != nullptr && comm->s != nullptr; }

// --- Operations.

struct OpTask {
  std::shared_ptr<CommState> s;
  uint32_t op = 0;
  const void* send = nullptr;
  void* recv = nullptr;
  size_t count = 0;
  ncclDataType_t type = ncclInt8;
  ncclRedOp_t red = ncclSum;
  int root = 0;  // broadcast root; send/recv peer
  bool is_send = false;
};

// A failed operation: the communicator's asynchronous error, then the stream stays busy until an
// abort (a kernel waiting for a peer that is gone never finishes by itself).
void FailAndHang(CommState& s, ncclResult_t code, const std::string& text) {
  s.SetError(code, s.Describe() + ": " + text);
  while (!s.aborted.load()) std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
}

// Runs a batch of operations of one communicator (one op, or one ncclGroupStart/End group).
void RunOps(std::vector<OpTask>& ops) {
  CommState& s = *ops.front().s;
  struct Done {
    std::atomic<int>& n;
    size_t k;
    ~Done() { n -= static_cast<int>(k); }
  } done{s.ops_pending, ops.size()};
  if (s.aborted.load() || s.state.load() != ncclSuccess) {
    // An operation after an error: it never completes either (see FailAndHang).
    while (!s.aborted.load()) std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
    return;
  }
  std::vector<int> fds;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    fds = s.fds;
  }
  std::vector<Xfer> xfers;
  std::vector<std::string> frames;  // outgoing frames and incoming buffers, kept alive
  frames.reserve(ops.size() * static_cast<size_t>(s.nranks) * 2);
  struct Incoming {
    size_t frame;
    int peer;
    OpTask* task;
  };
  std::vector<Incoming> incoming;
  std::vector<std::pair<const OpTask*, OpTask*>> self_pairs;  // send to self -> recv from self
  std::vector<const OpTask*> self_sends;

  auto send_frame = [&](int peer, uint32_t op, const void* data, size_t bytes) {
    frames.push_back(Frame(op, data, bytes));
    xfers.push_back({fds[peer], true, &frames.back()[0], frames.back().size(), peer});
  };
  auto recv_frame = [&](int peer, size_t bytes, OpTask* task) {
    frames.emplace_back(sizeof(Header) + bytes, '\0');
    incoming.push_back({frames.size() - 1, peer, task});
    xfers.push_back({fds[peer], false, &frames.back()[0], frames.back().size(), peer});
  };

  for (OpTask& t : ops) {
    const size_t bytes = t.count * TypeSize(t.type);
    switch (t.op) {
      case kOpAllReduce:
      case kOpAllGather:
        for (int p = 0; p < s.nranks; ++p) {
          if (p == s.rank) continue;
          send_frame(p, t.op, t.send, bytes);
          recv_frame(p, bytes, &t);
        }
        break;
      case kOpBroadcast:
        if (s.rank == t.root) {
          for (int p = 0; p < s.nranks; ++p) {
            if (p != s.rank) send_frame(p, t.op, t.send, bytes);
          }
        } else {
          recv_frame(t.root, bytes, &t);
        }
        break;
      case kOpSendRecv:
        if (t.root == s.rank) {
          if (t.is_send) {
            self_sends.push_back(&t);
          } else {
            self_pairs.push_back({nullptr, &t});
          }
        } else if (t.is_send) {
          send_frame(t.root, t.op, t.send, bytes);
        } else {
          recv_frame(t.root, bytes, &t);
        }
        break;
      default:
        break;
    }
  }
  // Received frames: the pointer to each must stay valid, so the vector must not grow after this.
  std::string error;
  const Outcome out = Exchange(xfers, s.aborted, &error);
  if (out == Outcome::kAborted) return;
  if (out == Outcome::kFailed) return FailAndHang(s, ncclRemoteError, error);

  for (OpTask& t : ops) {
    const size_t bytes = t.count * TypeSize(t.type);
    if (t.op == kOpAllReduce) {
      // Reduce in rank order, so every rank computes the same value bit for bit.
      std::vector<const char*> by_rank(s.nranks, static_cast<const char*>(t.send));
      for (const Incoming& in : incoming) {
        if (in.task == &t) by_rank[in.peer] = frames[in.frame].data() + sizeof(Header);
      }
      for (const Incoming& in : incoming) {
        if (in.task == &t && !CheckFrame(frames[in.frame], t.op, bytes, in.peer, &error)) {
          return FailAndHang(s, ncclInvalidUsage, error);
        }
      }
      std::string acc(by_rank[0], bytes);
      for (int r = 1; r < s.nranks; ++r) Reduce(&acc[0], by_rank[r], t.count, t.type, t.red);
      if (t.red == ncclAvg) AverageAll(&acc[0], t.count, t.type, s.nranks);
      if (bytes > 0) std::memcpy(t.recv, acc.data(), bytes);
    } else if (t.op == kOpAllGather) {
      std::string own(static_cast<const char*>(t.send), bytes);
      for (const Incoming& in : incoming) {
        if (in.task != &t) continue;
        if (!CheckFrame(frames[in.frame], t.op, bytes, in.peer, &error)) {
          return FailAndHang(s, ncclInvalidUsage, error);
        }
        std::memcpy(static_cast<char*>(t.recv) + in.peer * bytes,
                    frames[in.frame].data() + sizeof(Header), bytes);
      }
      if (bytes > 0) std::memcpy(static_cast<char*>(t.recv) + s.rank * bytes, own.data(), bytes);
    } else if (t.op == kOpBroadcast) {
      if (s.rank == t.root) {
        if (t.recv != t.send && bytes > 0) std::memmove(t.recv, t.send, bytes);
      } else {
        for (const Incoming& in : incoming) {
          if (in.task != &t) continue;
          if (!CheckFrame(frames[in.frame], t.op, bytes, in.peer, &error)) {
            return FailAndHang(s, ncclInvalidUsage, error);
          }
          if (bytes > 0) std::memcpy(t.recv, frames[in.frame].data() + sizeof(Header), bytes);
        }
      }
    } else if (t.op == kOpSendRecv && !t.is_send && t.root != s.rank) {
      for (const Incoming& in : incoming) {
        if (in.task != &t) continue;
        if (!CheckFrame(frames[in.frame], t.op, bytes, in.peer, &error)) {
          return FailAndHang(s, ncclInvalidUsage, error);
        }
        if (bytes > 0) std::memcpy(t.recv, frames[in.frame].data() + sizeof(Header), bytes);
      }
    }
  }
  // Sends to self meet receives from self in order.
  if (self_sends.size() != self_pairs.size()) {
    return FailAndHang(s, ncclInvalidUsage,
                       "a send to self without a matching receive from self in the same group");
  }
  for (size_t i = 0; i < self_sends.size(); ++i) {
    OpTask* r = self_pairs[i].second;
    const size_t bytes = r->count * TypeSize(r->type);
    if (bytes != self_sends[i]->count * TypeSize(self_sends[i]->type)) {
      return FailAndHang(s, ncclInvalidUsage, "send to self and receive from self differ in size");
    }
    if (bytes > 0) std::memmove(r->recv, self_sends[i]->send, bytes);
  }
}

struct Batch {
  std::vector<OpTask> ops;
};

void RunBatch(void* arg) {
  std::unique_ptr<Batch> batch(static_cast<Batch*>(arg));
  RunOps(batch->ops);
}

// ncclGroupStart/End: operations of the group are collected per (communicator, stream) and run as
// one batch at ncclGroupEnd.
struct PendingOp {
  OpTask task;
  cudaStream_t stream;
};
thread_local int t_group_depth = 0;
thread_local std::vector<PendingOp> t_group;

ncclResult_t Enqueue(OpTask task, cudaStream_t stream) {
  if (task.s == nullptr) return Err(ncclInvalidArgument, "comm is null");
  CommState& s = *task.s;
  const int state = s.state.load();
  if (state == ncclInProgress) {
    return Err(ncclInvalidUsage, s.Describe() + " is not ready (init or split still in progress)");
  }
  if (state != ncclSuccess) return static_cast<ncclResult_t>(state);
  if (task.count > 0 && TypeSize(task.type) == 0) {
    return Err(ncclInvalidArgument,
               "data type " + std::to_string(task.type) + " is not supported by the NCCL double");
  }
  if (task.op != kOpAllReduce && task.op != kOpAllGather && task.op != kOpBroadcast &&
      task.op != kOpSendRecv) {
    return Err(ncclInvalidArgument, "unknown operation");
  }
  if ((task.op == kOpBroadcast || task.op == kOpSendRecv) &&
      (task.root < 0 || task.root >= s.nranks)) {
    return Err(ncclInvalidArgument, "peer/root " + std::to_string(task.root) +
                                        " out of range [0, " + std::to_string(s.nranks) + ")");
  }
  if (task.op == kOpAllReduce && (task.red < ncclSum || task.red > ncclAvg)) {
    return Err(ncclInvalidArgument, "reduction operation not supported by the NCCL double");
  }
  // NCCL checks that the buffers are device memory (CudaPtrCheck): a host pointer is refused.
  const size_t bytes = task.count * TypeSize(task.type);
  const size_t recv_bytes = task.op == kOpAllGather ? bytes * s.nranks : bytes;
  const bool needs_send = task.op == kOpAllReduce || task.op == kOpAllGather ||
                          (task.op == kOpBroadcast && task.root == s.rank) ||
                          (task.op == kOpSendRecv && task.is_send);
  const bool needs_recv = task.op != kOpSendRecv || !task.is_send;
  if (bytes > 0 && needs_send && !cohort_double_is_device_memory(task.send, bytes)) {
    return Err(ncclInvalidArgument,
               std::string(OpName(task.op)) + " : sendbuff " +
                   std::to_string(reinterpret_cast<uintptr_t>(task.send)) +
                   " is not a valid pointer (not device memory from cudaMalloc)");
  }
  if (bytes > 0 && needs_recv && !cohort_double_is_device_memory(task.recv, recv_bytes)) {
    return Err(ncclInvalidArgument,
               std::string(OpName(task.op)) + " : recvbuff " +
                   std::to_string(reinterpret_cast<uintptr_t>(task.recv)) +
                   " is not a valid pointer (not device memory from cudaMalloc)");
  }
  if (t_group_depth > 0) {
    t_group.push_back({std::move(task), stream});
    return ncclSuccess;
  }
  ++s.ops_pending;
  auto* batch = new Batch();
  batch->ops.push_back(std::move(task));
  cohort_double_stream_enqueue(stream, RunBatch, batch);
  return ncclSuccess;
}

// --- Split.

// The background half of ncclCommSplit: every parent rank sends (colour, key) to every other;
// the members of each colour open a fresh mesh among themselves, their ports exchanged over the
// parent's connections.
void RunSplit(std::shared_ptr<CommState> parent, std::shared_ptr<CommState> child, int color,
              int key, int split_number, Clock::time_point start) {
  struct Entry {
    int32_t color, key, port, device;
  };
  int listener = -1;
  Entry mine{color, key, -1, child != nullptr ? child->device : -1};
  if (child != nullptr) {
    listener = Listen(&mine.port);
    if (listener < 0) {
      child->SetError(ncclSystemError, std::string("listen: ") + std::strerror(errno));
      parent->SetError(ncclSystemError, std::string("split: listen: ") + std::strerror(errno));
      return;
    }
  }
  std::vector<int> fds;
  {
    std::lock_guard<std::mutex> lock(parent->mu);
    fds = parent->fds;
  }
  std::vector<Entry> all(parent->nranks);
  all[parent->rank] = mine;
  std::vector<Xfer> xfers;
  std::vector<std::string> frames;
  frames.reserve(2 * parent->nranks);
  for (int p = 0; p < parent->nranks; ++p) {
    if (p == parent->rank) continue;
    frames.push_back(Frame(kOpSplit, &mine, sizeof(mine)));
    xfers.push_back({fds[p], true, &frames.back()[0], frames.back().size(), p});
    frames.emplace_back(sizeof(Header) + sizeof(Entry), '\0');
    xfers.push_back({fds[p], false, &frames.back()[0], frames.back().size(), p});
  }
  // An abort of the new communicator ends the split too.
  std::string error;
  const std::atomic<bool>& flag = child != nullptr ? child->aborted : parent->aborted;
  Outcome out = Exchange(xfers, flag, &error);
  if (out == Outcome::kDone && parent->aborted.load()) out = Outcome::kAborted;
  if (out == Outcome::kDone) {
    for (size_t i = 1; i < xfers.size(); i += 2) {
      const std::string& frame = frames[i];
      if (!CheckFrame(frame, kOpSplit, sizeof(Entry), xfers[i].peer, &error)) {
        out = Outcome::kFailed;
        break;
      }
      std::memcpy(&all[xfers[i].peer], frame.data() + sizeof(Header), sizeof(Entry));
    }
  }
  if (out != Outcome::kDone) {
    if (listener >= 0) close(listener);
    const std::string text = out == Outcome::kAborted
                                 ? "ncclCommSplit was interrupted by ncclCommAbort"
                                 : "ncclCommSplit: " + error;
    parent->SetError(out == Outcome::kAborted ? ncclInvalidUsage : ncclRemoteError,
                     parent->Describe() + ": " + text + "; the communicator cannot be used");
    if (child != nullptr) child->SetError(ncclRemoteError, text);
    return;
  }
  // Every parent rank has the split's entries now: the parent is free again.
  int expected = ncclInProgress;
  parent->state.compare_exchange_strong(expected, ncclSuccess);
  if (child == nullptr) return;  // NCCL_SPLIT_NOCOLOR

  // Members of this colour, ordered by key, then by parent rank.
  std::vector<int> members;
  for (int p = 0; p < parent->nranks; ++p) {
    if (all[p].color == color) members.push_back(p);
  }
  std::stable_sort(members.begin(), members.end(),
                   [&](int a, int b) { return all[a].key < all[b].key; });
  std::vector<int> ports;
  for (int p : members) ports.push_back(all[p].port);
  child->nranks = static_cast<int>(members.size());
  child->rank =
      static_cast<int>(std::find(members.begin(), members.end(), parent->rank) - members.begin());
  child->token =
      parent->token + ".split" + std::to_string(split_number) + ".c" + std::to_string(color);
  for (size_t a = 0; a < members.size(); ++a) {
    for (size_t b = 0; b < a; ++b) {
      if (all[members[a]].device == all[members[b]].device) {
        close(listener);
        child->SetError(ncclInvalidUsage, "Duplicate GPU detected : rank " + std::to_string(a) +
                                              " and rank " + std::to_string(b) +
                                              " both on CUDA device " +
                                              std::to_string(all[members[a]].device) + " (" +
                                              child->Describe() + ")");
        return;
      }
    }
  }
  const ncclResult_t result = ConnectMesh(*child, listener, ports);
  close(listener);
  if (result != ncclSuccess) return;
  HoldInProgress(*child, start);
  if (child->aborted.load()) return;
  expected = ncclInProgress;
  child->state.compare_exchange_strong(expected, ncclSuccess);
}

// Ends a communicator's life: wakes and joins whatever runs in the background, drops it from the
// registry. The connections close when the last operation holding the state lets go.
void Release(ncclComm_t comm, bool aborted) {
  std::shared_ptr<CommState> s = comm->s;
  s->aborted = true;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    for (int fd : s->fds) {
      if (fd >= 0) shutdown(fd, SHUT_RDWR);
    }
  }
  if (s->worker.joinable() && s->worker.get_id() != std::this_thread::get_id()) s->worker.join();
  Unregister(s, aborted);
  delete comm;
}

std::string NewToken() {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}() ^
                             static_cast<uint64_t>(Clock::now().time_since_epoch().count()) ^
                             static_cast<uint64_t>(getpid()));
  std::lock_guard<std::mutex> lock(mu);
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

int CurrentDevice() {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) device = 0;
  return device;
}

}  // namespace

extern "C" {

ncclResult_t ncclGetVersion(int* version) {
  if (version == nullptr) return Err(ncclInvalidArgument, "version is null");
  *version = NCCL_VERSION_CODE;
  return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* unique_id) {
  if (unique_id == nullptr) return Err(ncclInvalidArgument, "uniqueId is null");
  std::memset(unique_id, 0, sizeof(*unique_id));
  std::memcpy(unique_id->internal, kIdMagic, sizeof(kIdMagic));
  const std::string token = NewToken();
  std::memcpy(unique_id->internal + sizeof(kIdMagic), token.data(), token.size());
  return ncclSuccess;
}

ncclResult_t ncclCommInitRankConfig(ncclComm_t* comm, int nranks, ncclUniqueId comm_id, int rank,
                                    ncclConfig_t* config) {
  if (comm == nullptr) return Err(ncclInvalidArgument, "comm is null");
  *comm = nullptr;
  if (nranks < 1) return Err(ncclInvalidArgument, "nranks " + std::to_string(nranks) + " < 1");
  if (rank < 0 || rank >= nranks) {
    return Err(ncclInvalidArgument, "rank " + std::to_string(rank) + " out of range [0, " +
                                        std::to_string(nranks) + ")");
  }
  if (std::memcmp(comm_id.internal, kIdMagic, sizeof(kIdMagic)) != 0) {
    return Err(ncclInvalidArgument,
               "the unique id was not made by ncclGetUniqueId of the NCCL double");
  }
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();
    return Err(ncclUnhandledCudaError, "no CUDA device (COHORT_NCCL_DOUBLE_DEVICES=0)");
  }
  auto s = std::make_shared<CommState>();
  s->nranks = nranks;
  s->rank = rank;
  s->device = CurrentDevice();
  s->name = NameOf(config);
  s->blocking = Blocking(config);
  s->token.assign(
      comm_id.internal + sizeof(kIdMagic),
      strnlen(comm_id.internal + sizeof(kIdMagic), sizeof(comm_id.internal) - sizeof(kIdMagic)));
  const Clock::time_point start = Clock::now();
  if (StallInit()) {
    // This rank never joins: its own init stays in progress until it is aborted.
    Register(s);
    *comm = new ncclComm{s};
    return s->blocking ? WaitIfBlocking(*s) : ncclInProgress;
  }
  if (const ncclResult_t code = FailInit(); code != ncclSuccess) {
    // Fails in the background, as a failed bootstrap does.
    Register(s);
    s->SetError(code, "injected init failure on " + s->Describe());
    *comm = new ncclComm{s};
    return s->blocking ? code : ncclInProgress;
  }
  int port = 0;
  const int listener = Listen(&port);
  if (listener < 0) return Err(ncclSystemError, std::string("listen: ") + std::strerror(errno));
  if (const ncclResult_t r = Publish(*s, port); r != ncclSuccess) {
    close(listener);
    return r;
  }
  Register(s);
  s->worker = std::thread(RunInit, s, listener, start);
  *comm = new ncclComm{s};
  return WaitIfBlocking(*s);
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId comm_id, int rank) {
  return ncclCommInitRankConfig(comm, nranks, comm_id, rank, nullptr);
}

ncclResult_t ncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t* newcomm,
                           ncclConfig_t* config) {
  if (!ValidComm(comm)) return Err(ncclInvalidArgument, "comm is null");
  if (newcomm == nullptr) return Err(ncclInvalidArgument, "newcomm is null");
  *newcomm = nullptr;
  std::shared_ptr<CommState> parent = comm->s;
  const int state = parent->state.load();
  if (state != ncclSuccess) {
    if (state == ncclInProgress) {
      return Err(ncclInvalidUsage, parent->Describe() + " is busy (init or split in progress)");
    }
    return static_cast<ncclResult_t>(state);
  }
  if (color < 0 && color != NCCL_SPLIT_NOCOLOR) {
    return Err(ncclInvalidArgument, "color " + std::to_string(color) + " is negative");
  }
  const Clock::time_point start = Clock::now();
  std::shared_ptr<CommState> child;
  if (color != NCCL_SPLIT_NOCOLOR) {
    child = std::make_shared<CommState>();
    child->device = CurrentDevice();
    child->name = NameOf(config);
    child->blocking = Blocking(config);
    child->nranks = 1;  // known once the split has run
  }
  if (StallInit()) {
    // This rank never takes part: the parent and the new communicator stay in progress.
    parent->state = ncclInProgress;
    if (child == nullptr) return ncclInProgress;
    Register(child);
    *newcomm = new ncclComm{child};
    return child->blocking ? WaitIfBlocking(*child) : ncclInProgress;
  }
  if (const ncclResult_t code = FailInit(); code != ncclSuccess && child != nullptr) {
    // The new communicator fails; the parent stays usable.
    Register(child);
    child->SetError(code, "injected split failure on " + child->Describe());
    *newcomm = new ncclComm{child};
    return child->blocking ? code : ncclInProgress;
  }
  parent->state = ncclInProgress;
  std::thread worker(RunSplit, parent, child, color, key, parent->split_count++, start);
  if (child == nullptr) {
    // NOCOLOR: nothing to hold the thread; the parent's async state reports the end.
    worker.detach();
    return parent->blocking ? WaitIfBlocking(*parent) : ncclInProgress;
  }
  Register(child);
  child->worker = std::move(worker);
  *newcomm = new ncclComm{child};
  if (!child->blocking) return ncclInProgress;
  const ncclResult_t r = WaitIfBlocking(*child);
  return r;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async_error) {
  if (!ValidComm(comm)) return Err(ncclInvalidArgument, "comm is null");
  if (async_error == nullptr) return Err(ncclInvalidArgument, "asyncError is null");
  PollControl();
  *async_error = static_cast<ncclResult_t>(comm->s->state.load());
  return ncclSuccess;
}

ncclResult_t ncclCommFinalize(ncclComm_t comm) {
  if (!ValidComm(comm)) return Err(ncclInvalidArgument, "comm is null");
  std::shared_ptr<CommState> s = comm->s;
  int expected = ncclSuccess;
  if (!s->state.compare_exchange_strong(expected, ncclInProgress)) {
    return expected == ncclInProgress
               ? Err(ncclInvalidUsage, s->Describe() + " is busy (init, split or finalize)")
               : static_cast<ncclResult_t>(expected);
  }
  if (s->worker.joinable()) s->worker.join();  // the finished init or split
  // Outstanding operations complete first (they end with an abort only).
  s->worker = std::thread([s] {
    while (s->ops_pending.load() > 0 && !s->aborted.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    int in_progress = ncclInProgress;
    s->state.compare_exchange_strong(in_progress, ncclSuccess);
  });
  return WaitIfBlocking(*s);
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (!ValidComm(comm)) return Err(ncclInvalidArgument, "comm is null");
  Release(comm, /*aborted=*/false);
  return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t comm) {
  if (comm == nullptr) return ncclSuccess;  // as NCCL: aborting nothing is fine
  if (!ValidComm(comm)) return Err(ncclInvalidArgument, "comm is invalid");
  comm->s->aborted = true;  // wakes every wait at once; the delay is the proxy's teardown
  const int now = ++g_aborting;
  for (int seen = g_aborting_max.load();
       now > seen && !g_aborting_max.compare_exchange_weak(seen, now);) {
  }
  if (const int ms = AbortDelayMs(); ms > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  }
  Release(comm, /*aborted=*/true);
  --g_aborting;
  return ncclSuccess;
}

ncclResult_t ncclCommCount(const ncclComm_t comm, int* count) {
  if (!ValidComm(comm) || count == nullptr) return Err(ncclInvalidArgument, "null argument");
  *count = comm->s->nranks;
  return ncclSuccess;
}

ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank) {
  if (!ValidComm(comm) || rank == nullptr) return Err(ncclInvalidArgument, "null argument");
  *rank = comm->s->rank;
  return ncclSuccess;
}

ncclResult_t ncclCommCuDevice(const ncclComm_t comm, int* device) {
  if (!ValidComm(comm) || device == nullptr) return Err(ncclInvalidArgument, "null argument");
  *device = comm->s->device;
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream) {
  if (!ValidComm(comm)) return Err(ncclInvalidArgument, "comm is null");
  return Enqueue(OpTask{.s = comm->s,
                        .op = kOpAllReduce,
                        .send = sendbuff,
                        .recv = recvbuff,
                        .count = count,
                        .type = datatype,
                        .red = op},
                 stream);
}

ncclResult_t ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount,
                           ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream) {
  if (!ValidComm(comm)) return Err(ncclInvalidArgument, "comm is null");
  return Enqueue(OpTask{.s = comm->s,
                        .op = kOpAllGather,
                        .send = sendbuff,
                        .recv = recvbuff,
                        .count = sendcount,
                        .type = datatype},
                 stream);
}

ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count,
                           ncclDataType_t datatype, int root, ncclComm_t comm,
                           cudaStream_t stream) {
  if (!ValidComm(comm)) return Err(ncclInvalidArgument, "comm is null");
  return Enqueue(OpTask{.s = comm->s,
                        .op = kOpBroadcast,
                        .send = sendbuff,
                        .recv = recvbuff,
                        .count = count,
                        .type = datatype,
                        .root = root},
                 stream);
}

ncclResult_t ncclSend(const void* sendbuff, size_t count, ncclDataType_t datatype, int peer,
                      ncclComm_t comm, cudaStream_t stream) {
  if (!ValidComm(comm)) return Err(ncclInvalidArgument, "comm is null");
  return Enqueue(OpTask{.s = comm->s,
                        .op = kOpSendRecv,
                        .send = sendbuff,
                        .count = count,
                        .type = datatype,
                        .root = peer,
                        .is_send = true},
                 stream);
}

ncclResult_t ncclRecv(void* recvbuff, size_t count, ncclDataType_t datatype, int peer,
                      ncclComm_t comm, cudaStream_t stream) {
  if (!ValidComm(comm)) return Err(ncclInvalidArgument, "comm is null");
  return Enqueue(OpTask{.s = comm->s,
                        .op = kOpSendRecv,
                        .recv = recvbuff,
                        .count = count,
                        .type = datatype,
                        .root = peer},
                 stream);
}

ncclResult_t ncclGroupStart() {
  ++t_group_depth;
  return ncclSuccess;
}

ncclResult_t ncclGroupEnd() {
  if (t_group_depth == 0) return Err(ncclInvalidUsage, "ncclGroupEnd without ncclGroupStart");
  if (--t_group_depth > 0) return ncclSuccess;
  std::vector<PendingOp> ops;
  ops.swap(t_group);
  // One batch per (communicator, stream), in the order of their first operation.
  while (!ops.empty()) {
    auto* batch = new Batch();
    const std::shared_ptr<CommState> s = ops.front().task.s;
    const cudaStream_t stream = ops.front().stream;
    std::vector<PendingOp> rest;
    for (PendingOp& op : ops) {
      if (op.task.s == s && op.stream == stream) {
        batch->ops.push_back(std::move(op.task));
      } else {
        rest.push_back(std::move(op));
      }
    }
    ops.swap(rest);
    s->ops_pending += static_cast<int>(batch->ops.size());
    cohort_double_stream_enqueue(stream, RunBatch, batch);
  }
  return ncclSuccess;
}

const char* ncclGetErrorString(ncclResult_t result) {
  switch (result) {
    case ncclSuccess:
      return "no error";
    case ncclUnhandledCudaError:
      return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError:
      return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError:
      return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument:
      return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage:
      return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError:
      return "remote process exited or there was a network error";
    case ncclInProgress:
      return "NCCL operation in progress";
    default:
      return "unknown result code";
  }
}

const char* ncclGetLastError(ncclComm_t comm) {
  if (ValidComm(comm)) {
    std::lock_guard<std::mutex> lock(comm->s->mu);
    if (!comm->s->last_error.empty()) {
      t_last_error_copy = "NCCL double: " + comm->s->last_error;
      return t_last_error_copy.c_str();
    }
  }
  return t_last_error.c_str();
}

}  // extern "C"
