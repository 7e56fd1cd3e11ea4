#include "agent/comm/gloo_communicator.h"

#include <algorithm>
#include <thread>
#include <typeinfo>
#include <vector>

#include "common/logging.h"
#include "gloo/allgather.h"
#include "gloo/allreduce.h"
#include "gloo/alltoall.h"
#include "gloo/barrier.h"
#include "gloo/broadcast.h"
#include "gloo/math.h"
#include "gloo/transport/context.h"
#include "gloo/transport/device.h"
#include "gloo/transport/unbound_buffer.h"

// gloo::transport::tcp::Pair::signalExceptionExternal, bound by its exported symbol (see "Reaching
// Gloo's abort path" below).
#if defined(__GXX_ABI_VERSION) && defined(_GLIBCXX_USE_CXX11_ABI) && _GLIBCXX_USE_CXX11_ABI
#define COHORT_GLOO_CAN_SIGNAL 1
std::exception_ptr
CohortGlooTcpPairSignalExceptionExternal(void* tcp_pair, const std::string& msg) __asm__(
    "_ZN4gloo9transport3tcp4Pair23signalExceptionExternalERKNSt7__cxx1112basic_stringIcSt11char_"
    "traitsIcESaIcEEE");
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
    context.*& GlooContextAccess::device_ = std::move(device);
    context.*& GlooContextAccess::transportContext_ = std::move(transport);
  }
};

// (The declaration of the exported symbol is at file scope, above: it needs external linkage.)

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
    case DataType::kFloat32:
      return f(float{});
    case DataType::kFloat64:
      return f(double{});
    case DataType::kInt32:
      return f(int32_t{});
    case DataType::kInt64:
      return f(int64_t{});
    case DataType::kUInt8:
      return f(uint8_t{});
  }
  return absl::InvalidArgumentError("unknown data type");
}

using ReduceFn = void (*)(void*, const void*, const void*, size_t);

template <typename T>
ReduceFn ReduceFunction(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return static_cast<ReduceFn>(&gloo::sum<T>);
    case ReduceOp::kMax:
      return static_cast<ReduceFn>(&gloo::max<T>);
    case ReduceOp::kMin:
      return static_cast<ReduceFn>(&gloo::min<T>);
    case ReduceOp::kProd:
      return static_cast<ReduceFn>(&gloo::product<T>);
  }
  return nullptr;
}

}  // namespace

std::chrono::milliseconds ToChrono(absl::Duration d) {
  // Gloo treats 0 as "no timeout" and AlltoallOptions refuses <= 0: never hand it less than 1 ms.
  d = std::clamp(d, absl::Milliseconds(1), kMaxGlooTimeout);
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

void InstallTransport(gloo::Context& context, std::shared_ptr<gloo::transport::Device> device,
                      std::shared_ptr<gloo::transport::Context> transport) {
  GlooContextAccess::Install(context, std::move(device), std::move(transport));
}

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

GlooCommunicator::GlooCommunicator(GroupSpec group, absl::Duration default_timeout,
                                   std::shared_ptr<gloo::Context> context)
    : Communicator(std::move(group), default_timeout),
      context_(std::move(context)),
      raw_(context_.get()) {}

GlooCommunicator::~GlooCommunicator() { ReleaseOnDestruction(); }

absl::Status GlooCommunicator::DoAllReduce(void* buf, size_t count, DataType dtype, ReduceOp op,
                                           absl::Duration timeout) {
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

absl::Status GlooCommunicator::DoAllGather(const void* in, void* out, size_t count, DataType dtype,
                                           absl::Duration timeout) {
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

absl::Status GlooCommunicator::DoBroadcast(void* buf, size_t count, DataType dtype, int root,
                                           absl::Duration timeout) {
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

absl::Status GlooCommunicator::DoBarrier(absl::Duration timeout) {
  return GlooCall([&] {
    gloo::BarrierOptions opts(context_);
    opts.setTag(NextTag());
    opts.setTimeout(ToChrono(timeout));
    gloo::barrier(opts);
  });
}

absl::Status GlooCommunicator::DoSend(const void* buf, size_t count, DataType dtype, int peer,
                                      absl::Duration timeout) {
  bool completed = false;
  absl::Status s = GlooCall([&] {
    auto ubuf = context_->createUnboundBuffer(const_cast<void*>(buf), count * DataTypeSize(dtype));
    ubuf->send(peer, kP2PSlot);
    completed = ubuf->waitSend(ToChrono(timeout));
  });
  if (s.ok() && !completed) return absl::AbortedError("gloo: send aborted");
  return s;
}

absl::Status GlooCommunicator::DoRecv(void* buf, size_t count, DataType dtype, int peer,
                                      absl::Duration timeout) {
  bool completed = false;
  absl::Status s = GlooCall([&] {
    auto ubuf = context_->createUnboundBuffer(buf, count * DataTypeSize(dtype));
    ubuf->recv(peer, kP2PSlot);
    completed = ubuf->waitRecv(ToChrono(timeout));
  });
  if (s.ok() && !completed) return absl::AbortedError("gloo: recv aborted");
  return s;
}

absl::Status GlooCommunicator::DoAllToAll(const void* in, void* out, size_t count_per_peer,
                                          DataType dtype, absl::Duration timeout) {
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

void GlooCommunicator::Interrupt() {
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

absl::Status GlooCommunicator::Release(bool /*abort*/, absl::Time /*deadline*/) {
  raw_.store(nullptr);
  return GlooCall([&] { context_.reset(); });
}

}  // namespace cohort::agent
