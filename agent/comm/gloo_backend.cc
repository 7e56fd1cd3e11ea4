#include "agent/comm/gloo_backend.h"

#include <arpa/inet.h>
#include <csignal>
#include <net/if.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <typeinfo>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "absl/strings/str_join.h"
#include "gloo/allgather.h"
#include "gloo/allreduce.h"
#include "gloo/alltoall.h"
#include "gloo/barrier.h"
#include "gloo/broadcast.h"
#include "gloo/common/error.h"
#include "gloo/math.h"
#include "gloo/rendezvous/context.h"
#include "gloo/rendezvous/store.h"
#include "gloo/transport/context.h"
#include "gloo/transport/tcp/device.h"
#include "gloo/transport/unbound_buffer.h"

// gloo::transport::tcp::Pair::signalExceptionExternal, bound by its exported symbol (see "Reaching
// Gloo's abort path" below).
#if defined(__GXX_ABI_VERSION) && defined(_GLIBCXX_USE_CXX11_ABI) && _GLIBCXX_USE_CXX11_ABI
#define COHORT_GLOO_CAN_SIGNAL 1
std::exception_ptr CohortGlooTcpPairSignalExceptionExternal(void* tcp_pair, const std::string& msg)
    __asm__("_ZN4gloo9transport3tcp4Pair23signalExceptionExternalERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE");
#else
#define COHORT_GLOO_CAN_SIGNAL 0
#endif

namespace cohort::agent {
namespace {

// Slot of point-to-point messages. Gloo's collectives use slot prefixes 0x01-0x08 in the top byte
// (gloo/types.h); 0x20 cannot collide with them. Messages on one slot between one pair are
// matched in order, which is the Send/Recv contract.
constexpr uint64_t kP2PSlot = uint64_t{0x20} << 56;

// Gloo's own cap (tcp/pair.h kLargeTimeDuration is 100 h; it multiplies the connect timeout by 5).
constexpr absl::Duration kMaxGlooTimeout = absl::Hours(10);

std::chrono::milliseconds ToChrono(absl::Duration d) {
  // Gloo treats 0 as "no timeout" and AlltoallOptions refuses <= 0: never hand it less than 1 ms.
  d = std::clamp(d, absl::Milliseconds(1), kMaxGlooTimeout);
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}


// The exception edge: every call into Gloo goes through here.
template <typename F>
absl::Status GlooCall(F&& f) {
  try {
    f();
    return absl::OkStatus();
  } catch (const gloo::IoException& e) {
    // Gloo reports its timeouts as IoException: "Timed out waiting 500ms for recv operation",
    // "Connect timeout", "Read timeout".
    const absl::string_view msg = e.what();
    if (absl::StrContains(msg, "imed out") || absl::StrContains(msg, "timeout")) {
      return absl::DeadlineExceededError(absl::StrCat("gloo: ", msg));
    }
    return absl::UnavailableError(absl::StrCat("gloo: ", msg));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("gloo: ", e.what()));
  } catch (...) {
    return absl::InternalError("gloo: unknown exception");
  }
}

// --- Reaching Gloo's abort path -----------------------------------------------------------------
// What we need is what gloo::transport::tcp::Context::signalException(msg) does, the path Gloo
// takes itself when an op times out: for every pair, tcp::Pair::signalExceptionExternal(msg)
// stores an IoException, wakes every buffer waiting on the pair (and a connect waiting for it),
// and closes the socket. Obstacles in the Debian 2022 package:
//  1. gloo::Context::transportContext_ (and device_) are protected. They are reached with member
//     pointers formed through a derived class (standard C++; no object of it is built).
//  2. gloo/transport/tcp/{context,pair}.h cannot be included: they include gloo/common/memory.h,
//     which the package does not ship. So the function is bound by its exported symbol (libgloo
//     exports it: nm -D), called with the tcp::Pair object as `this` (Itanium C++ ABI: the
//     returned std::exception_ptr goes through the hidden result pointer, then `this`, then the
//     argument, exactly as for a free function of that signature; libstdc++'s new string ABI).
//     If the symbol were gone the link would fail, not the run.
//  3. Closing a pair's socket waits for a tick of the device's event loop (Loop::
//     unregisterDescriptor; the loop ticks at least every 10 ms), one pair after another in
//     tcp::Context::signalException: 15 pairs of a world of 16 took ~150 ms. The pairs are
//     signalled from one thread each instead, so that they all wait for the same tick.
// The dynamic type is checked by name before the call; any other transport gets no abort (its ops
// still end at their timeouts).
struct GlooContextAccess : gloo::Context {
  static gloo::transport::Context* Transport(gloo::Context& context) {
    return (context.*&GlooContextAccess::transportContext_).get();
  }
  // What connectFullMesh does at its end: the context now uses `transport` over `device`.
  static void Install(gloo::Context& context, std::shared_ptr<gloo::transport::Device> device,
                      std::shared_ptr<gloo::transport::Context> transport) {
    context.*&GlooContextAccess::device_ = std::move(device);
    context.*&GlooContextAccess::transportContext_ = std::move(transport);
  }
};

// (The declaration of the exported symbol is at file scope, above: it needs external linkage.)

// Fails every pair of `transport` (a connect waiting on one of them throws at once). Returns false
// when the transport is not Gloo's TCP one. Pairs must not be created concurrently (their vector
// would change under us): callers signal a context only once all its pairs exist.
bool SignalTransport(gloo::transport::Context& transport, const std::string& msg) {
#if COHORT_GLOO_CAN_SIGNAL
  std::vector<void*> pairs;
  for (int i = 0; i < transport.size; ++i) {
    if (i == transport.rank) continue;
    gloo::transport::Pair* pair = transport.getPair(i).get();
    if (pair == nullptr) continue;
    if (absl::string_view(typeid(*pair).name()) != "N4gloo9transport3tcp4PairE") return false;
    // dynamic_cast<void*> yields the most-derived object, i.e. the tcp::Pair `this`.
    pairs.push_back(dynamic_cast<void*>(pair));
  }
  auto signal = [&msg](void* pair) {
    try {
      CohortGlooTcpPairSignalExceptionExternal(pair, msg);
    } catch (...) {
      // Closing a socket that already failed: nothing more to do.
    }
  };
  if (pairs.size() == 1) {
    signal(pairs[0]);
    return true;
  }
  std::vector<std::thread> threads;
  threads.reserve(pairs.size());
  for (void* pair : pairs) threads.emplace_back(signal, pair);
  for (std::thread& t : threads) t.join();
  return true;
#else
  (void)transport;
  (void)msg;
  return false;
#endif
}

// Fails every pair of `context`. Returns false when the transport is not Gloo's TCP one.
bool SignalGlooContext(gloo::Context& context, const std::string& msg) {
  gloo::transport::Context* transport = GlooContextAccess::Transport(context);
  if (transport == nullptr) return true;  // never connected: nothing to wake
  return SignalTransport(*transport, msg);
}

// Calls f(T{}) with T the C++ type of dtype.
template <typename F>
absl::Status WithType(DataType dtype, F&& f) {
  switch (dtype) {
    case DataType::kFloat32: return f(float{});
    case DataType::kFloat64: return f(double{});
    case DataType::kInt32: return f(int32_t{});
    case DataType::kInt64: return f(int64_t{});
    case DataType::kUInt8: return f(uint8_t{});
  }
  return absl::InvalidArgumentError("unknown data type");
}

using ReduceFn = void (*)(void*, const void*, const void*, size_t);

template <typename T>
ReduceFn ReduceFunction(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return static_cast<ReduceFn>(&gloo::sum<T>);
    case ReduceOp::kMax: return static_cast<ReduceFn>(&gloo::max<T>);
    case ReduceOp::kMin: return static_cast<ReduceFn>(&gloo::min<T>);
    case ReduceOp::kProd: return static_cast<ReduceFn>(&gloo::product<T>);
  }
  return nullptr;
}

// gloo::rendezvous::Store over our RendezvousStore, bounded by the creation deadline. Gloo sees
// failures as exceptions (its only channel); the adapter keeps the Status so that the caller
// reports DEADLINE_EXCEEDED with the key instead of a flattened message. Values fetched by a
// wait() are cached for the get() Gloo issues right after, saving a store round trip per key.
class GlooStoreAdapter final : public gloo::rendezvous::Store {
 public:
  GlooStoreAdapter(RendezvousStore& store, absl::Time deadline)
      : store_(store), deadline_(deadline) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    Check(store_.Set(key, absl::string_view(data.data(), data.size())), {key});
  }

  std::vector<char> get(const std::string& key) override {
    if (auto it = cache_.find(key); it != cache_.end()) {
      return std::vector<char>(it->second.begin(), it->second.end());
    }
    const absl::Time start = absl::Now();
    absl::StatusOr<std::string> value = store_.Get(key, Remaining());
    wait_time_ += absl::Now() - start;
    Check(value.status(), {key});
    return std::vector<char>(value->begin(), value->end());
  }

  void wait(const std::vector<std::string>& keys) override { Wait(keys, Remaining()); }

  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override {
    // Waiting for peers to publish is bounded by the build's deadline, whatever the caller
    // passes (and cut short by the coordinator when the generation ends).
    (void)timeout;
    Wait(keys, Remaining());
  }

  const absl::Status& error() const { return error_; }
  const std::vector<std::string>& failed_keys() const { return failed_keys_; }
  absl::Duration wait_time() const { return wait_time_; }

 private:
  absl::Duration Remaining() const {
    return std::max(deadline_ - absl::Now(), absl::ZeroDuration());
  }

  void Wait(const std::vector<std::string>& keys, absl::Duration timeout) {
    const absl::Time start = absl::Now();
    absl::StatusOr<std::vector<std::string>> values = store_.MultiGet(keys, timeout);
    wait_time_ += absl::Now() - start;
    Check(values.status(), keys);
    for (size_t i = 0; i < keys.size(); ++i) cache_[keys[i]] = std::move((*values)[i]);
  }

  void Check(const absl::Status& status, const std::vector<std::string>& keys) {
    if (status.ok()) return;
    if (error_.ok()) {
      error_ = status;
      failed_keys_ = keys;
    }
    throw gloo::IoException(std::string(status.message()));
  }

  RendezvousStore& store_;
  const absl::Time deadline_;
  absl::flat_hash_map<std::string, std::string> cache_;
  absl::Status error_;
  std::vector<std::string> failed_keys_;
  absl::Duration wait_time_;
};

// Gloo's rendezvous keys are "<group rank>" (addresses) and "rank_<group rank>" (host names).
std::optional<int> GroupRankOfKey(absl::string_view key) {
  absl::ConsumePrefix(&key, "rank_");
  int rank = -1;
  auto [ptr, ec] = std::from_chars(key.data(), key.data() + key.size(), rank);
  if (ec != std::errc() || ptr != key.data() + key.size()) return std::nullopt;
  return rank;
}

class GlooCommunicator final : public Communicator {
 public:
  GlooCommunicator(GroupSpec group, absl::Duration default_timeout,
                   std::shared_ptr<gloo::Context> context)
      : Communicator(std::move(group), default_timeout),
        context_(std::move(context)),
        raw_(context_.get()) {}

  ~GlooCommunicator() override { ReleaseOnDestruction(); }

  void Ready(GroupTiming timing) { MarkReady(std::move(timing)); }

  absl::string_view backend_name() const override { return "gloo"; }
  void* raw_handle() const override { return raw_.load(); }

 protected:
  absl::Status DoAllReduce(void* buf, size_t count, DataType dtype, ReduceOp op,
                           absl::Duration timeout) override {
    return WithType(dtype, [&](auto tag) {
      using T = decltype(tag);
      return GlooCall([&] {
        gloo::AllreduceOptions opts(context_);
        opts.setOutput(static_cast<T*>(buf), count);
        opts.setReduceFunction(ReduceFunction<T>(op));
        opts.setTag(NextTag());
        opts.setTimeout(ToChrono(timeout));
        gloo::allreduce(opts);
      });
    });
  }

  absl::Status DoAllGather(const void* in, void* out, size_t count, DataType dtype,
                           absl::Duration timeout) override {
    return WithType(dtype, [&](auto tag) {
      using T = decltype(tag);
      return GlooCall([&] {
        gloo::AllgatherOptions opts(context_);
        // Gloo only reads the input, but its API takes T*.
        opts.setInput(const_cast<T*>(static_cast<const T*>(in)), count);
        opts.setOutput(static_cast<T*>(out), count * size());
        opts.setTag(NextTag());
        opts.setTimeout(ToChrono(timeout));
        gloo::allgather(opts);
      });
    });
  }

  absl::Status DoBroadcast(void* buf, size_t count, DataType dtype, int root,
                           absl::Duration timeout) override {
    return WithType(dtype, [&](auto tag) {
      using T = decltype(tag);
      return GlooCall([&] {
        gloo::BroadcastOptions opts(context_);
        opts.setOutput(static_cast<T*>(buf), count);  // output only: in place on the root too
        opts.setRoot(root);
        opts.setTag(NextTag());
        opts.setTimeout(ToChrono(timeout));
        gloo::broadcast(opts);
      });
    });
  }

  absl::Status DoBarrier(absl::Duration timeout) override {
    return GlooCall([&] {
      gloo::BarrierOptions opts(context_);
      opts.setTag(NextTag());
      opts.setTimeout(ToChrono(timeout));
      gloo::barrier(opts);
    });
  }

  absl::Status DoSend(const void* buf, size_t count, DataType dtype, int peer,
                      absl::Duration timeout) override {
    bool completed = false;
    absl::Status s = GlooCall([&] {
      auto ubuf = context_->createUnboundBuffer(const_cast<void*>(buf), count * DataTypeSize(dtype));
      ubuf->send(peer, kP2PSlot);
      completed = ubuf->waitSend(ToChrono(timeout));
    });
    if (s.ok() && !completed) return absl::AbortedError("gloo: send aborted");
    return s;
  }

  absl::Status DoRecv(void* buf, size_t count, DataType dtype, int peer,
                      absl::Duration timeout) override {
    bool completed = false;
    absl::Status s = GlooCall([&] {
      auto ubuf = context_->createUnboundBuffer(buf, count * DataTypeSize(dtype));
      ubuf->recv(peer, kP2PSlot);
      completed = ubuf->waitRecv(ToChrono(timeout));
    });
    if (s.ok() && !completed) return absl::AbortedError("gloo: recv aborted");
    return s;
  }

  absl::Status DoAllToAll(const void* in, void* out, size_t count_per_peer, DataType dtype,
                          absl::Duration timeout) override {
    return WithType(dtype, [&](auto tag) {
      using T = decltype(tag);
      return GlooCall([&] {
        gloo::AlltoallOptions opts(context_);
        opts.setInput(const_cast<T*>(static_cast<const T*>(in)), count_per_peer * size());
        opts.setOutput(static_cast<T*>(out), count_per_peer * size());
        opts.setTag(NextTag());
        opts.setTimeout(ToChrono(timeout));
        gloo::alltoall(opts);
      });
    });
  }

  void Interrupt() override {
    if (context_ == nullptr) return;
    bool signalled = false;
    absl::Status s = GlooCall([&] { signalled = SignalGlooContext(*context_, "aborted by cohort"); });
    if (!s.ok()) {
      Log()->warn("{}interrupt: {}", Describe(), s.ToString());
    } else if (!signalled) {
      Log()->warn("{}interrupt: not a Gloo TCP context; in-flight ops end at their timeout",
                   Describe());
    }
  }

  absl::Status Release(bool /*abort*/, absl::Time /*deadline*/) override {
    // Dropping the context closes its sockets; Gloo's teardown is local and does not wait for
    // peers, so orderly and abort are the same here (abort already failed the pairs).
    raw_.store(nullptr);
    return GlooCall([&] { context_.reset(); });
  }

 private:
  // Tags keep consecutive collectives apart on the wire (Gloo matches by slot = prefix + tag).
  // Ops are serialized by the base class and every rank issues the same sequence, so the ranks'
  // counters agree.
  uint32_t NextTag() { return next_tag_++; }

  std::shared_ptr<gloo::Context> context_;
  std::atomic<void*> raw_;
  uint32_t next_tag_ = 1;
};

absl::Status CheckAddress(const BackendOptions& options) {
  if (!options.gloo_interface.empty()) {
    if (if_nametoindex(options.gloo_interface.c_str()) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "gloo_interface '", options.gloo_interface, "' does not exist on this host"));
    }
    return absl::OkStatus();
  }
  // Gloo calls getaddrinfo itself and aborts the process when it fails: resolve first.
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(options.gloo_host.c_str(), nullptr, &hints, &result);
  if (result != nullptr) freeaddrinfo(result);
  if (rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat("gloo_host '", options.gloo_host,
                                                   "' does not resolve (", gai_strerror(rc),
                                                   "); pass an IP address or gloo_interface"));
  }
  return absl::OkStatus();
}

}  // namespace

// Gloo writes to its sockets without MSG_NOSIGNAL: once a peer has closed its end (it aborted, or
// died), the next write raises SIGPIPE, whose default action kills the whole agent. Python ignores
// SIGPIPE at startup, which is why PyTorch never sees this; a C++ process must do it itself. Only
// the default disposition is replaced: a handler installed by the embedding program is kept.
void IgnoreSigpipeUnlessHandled() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      std::signal(SIGPIPE, SIG_IGN);
    }
  });
}

absl::StatusOr<std::unique_ptr<GlooBackend>> GlooBackend::Create(BackendOptions options) {
  if (absl::Status s = CheckAddress(options); !s.ok()) return s;
  IgnoreSigpipeUnlessHandled();
  std::shared_ptr<gloo::transport::Device> device;
  absl::Status s = GlooCall([&] {
    gloo::transport::tcp::attr attr;
    if (!options.gloo_interface.empty()) {
      attr.iface = options.gloo_interface;
    } else {
      attr.hostname = options.gloo_host;
    }
    device = gloo::transport::tcp::CreateDevice(attr);
  });
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrCat("gloo: cannot create the TCP device: ", s.message()));
  }
  return std::unique_ptr<GlooBackend>(new GlooBackend(std::move(options), std::move(device)));
}

absl::StatusOr<std::unique_ptr<Backend>> MakeGlooBackend(const BackendOptions& options) {
  absl::StatusOr<std::unique_ptr<GlooBackend>> backend = GlooBackend::Create(options);
  if (!backend.ok()) return backend.status();
  return std::unique_ptr<Backend>(*std::move(backend));
}

absl::StatusOr<std::unique_ptr<Communicator>> GlooBackend::CreateGroup(const GroupSpec& group,
                                                                       RendezvousStore& store,
                                                                       absl::Time deadline) {
  const absl::Time start = absl::Now();
  const int size = static_cast<int>(group.ranks.size());
  const std::string label = GroupLabel(group.kind, group.group_index);

  // A group of one has no peers: rendezvous through a private store, so it neither touches the
  // shared store nor waits for anybody.
  InMemoryRendezvousStore private_store;
  GlooStoreAdapter adapter(size == 1 ? static_cast<RendezvousStore&>(private_store) : store,
                           deadline);
  auto context = std::make_shared<gloo::rendezvous::Context>(group.rank_in_group, size);
  // The full mesh is connected here rather than by gloo::rendezvous::Context::connectFullMesh,
  // which keeps its transport context (and the pairs in it) to itself until every pair is
  // connected: an abort could not reach a connect waiting for a peer that is gone. Here the pairs
  // are created first, then the transport context is registered for CancelBuilds, so that a
  // cancel fails every pair still connecting at once. The protocol is Gloo's: each rank
  // publishes "<group rank>" (the addresses of its pairs, in peer order), then for each peer in
  // turn waits for the peer's key and connects the pair (the lower address of a pair listens,
  // the other connects).
  //
  // The context timeout becomes the pairs' timeout, and a pair waits up to 5x that for its peer to
  // connect (tcp/pair.h waitUntil): a fifth of the time left keeps connects inside the deadline.
  // Store waits are bounded by the deadline in the adapter.
  const int rank = group.rank_in_group;
  context->setTimeout(ToChrono((deadline - absl::Now()) / 5));
  std::shared_ptr<gloo::transport::Context> transport;
  std::vector<char> addresses;
  absl::Status s = GlooCall([&] {
    transport = device_->createContext(rank, size);
    transport->setTimeout(context->getTimeout());
    for (int i = 0; i < size; ++i) {
      if (i == rank) continue;
      const std::vector<char> bytes = transport->createPair(i)->address().bytes();
      addresses.insert(addresses.end(), bytes.begin(), bytes.end());
    }
  });
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat("gloo ", label, ": ", s.message()));
  uint64_t building_id;
  {
    absl::MutexLock lock(&building_mu_);
    if (cancelled_.has_value()) {
      return absl::AbortedError(absl::StrCat("gloo ", label, ": cancelled: ", *cancelled_));
    }
    building_id = next_building_++;
    building_[building_id] = transport;
  }
  s = GlooCall([&] {
    adapter.set(absl::StrCat(rank), addresses);
    for (int i = 0; i < size; ++i) {
      if (i == rank) continue;
      const std::string key = absl::StrCat(i);
      adapter.wait({key});
      const std::vector<char> all = adapter.get(key);
      // Peer i published the addresses of its pairs with every rank but itself, in rank order.
      if (all.empty() || all.size() % (size - 1) != 0) {
        throw gloo::IoException(absl::StrCat("malformed addresses of group rank ", i, " (",
                                             all.size(), " bytes)"));
      }
      const size_t one = all.size() / (size - 1);
      const size_t at = static_cast<size_t>(rank < i ? rank : rank - 1) * one;
      transport->getPair(i)->connect(std::vector<char>(all.begin() + at, all.begin() + at + one));
    }
  });
  std::optional<std::string> cancelled;
  {
    absl::MutexLock lock(&building_mu_);
    building_.erase(building_id);
    cancelled = cancelled_;
  }
  // A cancel that came while connecting may have failed pairs of this context (whatever error the
  // connect then reported, or none if it had just finished): the build ends with the cancel.
  if (cancelled.has_value()) {
    return absl::AbortedError(absl::StrCat("gloo ", label, ": cancelled: ", *cancelled));
  }
  if (!s.ok()) {
    if (!adapter.error().ok()) {
      std::vector<std::string> who;
      for (const std::string& key : adapter.failed_keys()) {
        std::optional<int> r = GroupRankOfKey(key);
        if (r && *r >= 0 && *r < size) {
          who.push_back(absl::StrCat("group rank ", *r, " (global rank ", group.ranks[*r], ")"));
        }
      }
      const absl::Status& e = adapter.error();
      return absl::Status(
          e.code(), absl::StrCat("gloo ", label, ": ",
                                 who.empty() ? "rendezvous failed"
                                             : absl::StrCat(absl::StrJoin(who, ", "),
                                                            " did not join in time"),
                                 ": ", e.message()));
    }
    return absl::Status(s.code(), absl::StrCat("gloo ", label, ": connect: ", s.message()));
  }
  GlooContextAccess::Install(*context, device_, std::move(transport));
  // Algorithms read their default timeout from the context; ours always pass one explicitly, but
  // keep the default sane for anyone using raw_handle().
  context->setTimeout(ToChrono(options().op_timeout));

  GroupTiming timing;
  timing.kind = group.kind;
  timing.group_index = group.group_index;
  timing.group_size = size;
  timing.method = size == 1 ? "local" : "full_mesh";
  timing.store_wait = adapter.wait_time();
  timing.total = absl::Now() - start;
  auto comm = std::make_unique<GlooCommunicator>(group, options().op_timeout, std::move(context));
  comm->Ready(std::move(timing));
  if (options().build_step_hook) options().build_step_hook(absl::StrCat("connected ", label));
  return comm;
}

void GlooBackend::CancelBuilds(const std::string& reason) {
  absl::MutexLock lock(&building_mu_);
  cancelled_ = reason;
  for (auto& [id, transport] : building_) SignalTransport(*transport, "cancelled: " + reason);
}

void GlooBackend::ResumeBuilds() {
  absl::MutexLock lock(&building_mu_);
  cancelled_.reset();
}

absl::StatusOr<std::unique_ptr<Communicator>> GlooBackend::CreateWorld(const WorldSpec& spec,
                                                                       RendezvousStore& store,
                                                                       absl::Time deadline) {
  if (absl::Status s = ValidateWorldSpec(spec); !s.ok()) return s;
  const GroupSpec world = WorldGroup(spec);
  PrefixedRendezvousStore prefixed(store, GroupLabel(world.kind, world.group_index) + "/");
  return CreateGroup(world, prefixed, deadline);
}

absl::StatusOr<GroupSet> GlooBackend::CreateGroups(Communicator& world,
                                                   const std::vector<GroupRequest>& requests,
                                                   RendezvousStore& store, absl::Time deadline) {
  if (absl::Status s = ValidateGroupRequests(world, requests); !s.ok()) return s;
  if (world.state() != CommState::kReady) {
    return absl::FailedPreconditionError(absl::StrCat(
        "gloo: the world communicator is ", CommStateName(world.state()), ", not ready"));
  }
  // Groups are independent contexts, so form them concurrently: each one mostly waits for its
  // peers, and the waits overlap instead of adding up.
  std::vector<absl::StatusOr<std::unique_ptr<Communicator>>> results;
  results.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) results.emplace_back(absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  threads.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    threads.emplace_back([&, i] {
      const GroupRequest& r = requests[i];
      PrefixedRendezvousStore prefixed(store, GroupLabel(r.kind, r.group_index) + "/");
      results[i] = CreateGroup(r, prefixed, deadline);
    });
  }
  for (std::thread& t : threads) t.join();

  GroupSet set;
  absl::Status first_error;
  int failures = 0;
  for (auto& result : results) {
    if (result.ok()) {
      set.timings.push_back((*result)->creation_timing());
      set.comms.push_back(*std::move(result));
    } else if (failures++ == 0) {
      first_error = result.status();
    }
  }
  if (failures == 0) return set;

  std::vector<Communicator*> created;
  for (auto& comm : set.comms) created.push_back(comm.get());
  DestroyAll(created, /*abort=*/true);
  if (failures > 1) {
    first_error = absl::Status(first_error.code(),
                               absl::StrCat(first_error.message(), " (and ", failures - 1,
                                            " more group(s) failed)"));
  }
  return first_error;
}

}  // namespace cohort::agent
