#include "agent/comm/gloo_backend.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <csignal>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "agent/comm/gloo_communicator.h"
#include "gloo/common/error.h"
#include "gloo/rendezvous/context.h"
#include "gloo/rendezvous/store.h"
#include "gloo/transport/context.h"
#include "gloo/transport/tcp/device.h"

namespace cohort::agent {
namespace {

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
absl::Status CheckAddress(const BackendOptions& options) {
  if (!options.gloo_interface.empty()) {
    if (if_nametoindex(options.gloo_interface.c_str()) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("gloo_interface '", options.gloo_interface,
                                                     "' does not exist on this host"));
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
    return absl::UnavailableError(
        absl::StrCat("gloo: cannot create the TCP device: ", s.message()));
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
        throw gloo::IoException(
            absl::StrCat("malformed addresses of group rank ", i, " (", all.size(), " bytes)"));
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
      return absl::Status(e.code(),
                          absl::StrCat("gloo ", label, ": ",
                                       who.empty() ? "rendezvous failed"
                                                   : absl::StrCat(absl::StrJoin(who, ", "),
                                                                  " did not join in time"),
                                       ": ", e.message()));
    }
    return absl::Status(s.code(), absl::StrCat("gloo ", label, ": connect: ", s.message()));
  }
  InstallTransport(*context, device_, std::move(transport));
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
    return absl::FailedPreconditionError(absl::StrCat("gloo: the world communicator is ",
                                                      CommStateName(world.state()), ", not ready"));
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
    first_error = absl::Status(
        first_error.code(),
        absl::StrCat(first_error.message(), " (and ", failures - 1, " more group(s) failed)"));
  }
  return first_error;
}

}  // namespace cohort::agent