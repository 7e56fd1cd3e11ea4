// Gloo backend with several ranks as threads of one process, over an in-memory store on 127.0.0.1.
#include "agent/comm/gloo_backend.h"

#include <functional>
#include <memory>
#include <numeric>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "agent/comm/backend.h"
#include "agent/comm/rendezvous_store.h"
#include "gloo/transport/context.h"
#include "gloo/transport/device.h"
#include "gloo/transport/pair.h"
#include "gloo/transport/tcp/device.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/comm/status_matchers.h"

namespace cohort::agent {
namespace {

using ::cohort::testing::IsOk;
using ::cohort::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr absl::Duration kCreateTimeout = absl::Seconds(20);

// Runs body(rank) on one thread per rank and joins them. Every op inside has a timeout, so the
// joins are bounded.
void ForEachRank(int n, const std::function<void(int)>& body) {
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) threads.emplace_back(body, r);
  for (std::thread& t : threads) t.join();
}

// n ranks, each with its own backend (as separate agent processes would have) and world.
class GlooWorld {
 public:
  explicit GlooWorld(int n, absl::Duration op_timeout = absl::Seconds(10)) : n_(n) {
    BackendOptions options;
    options.op_timeout = op_timeout;
    for (int r = 0; r < n; ++r) {
      absl::StatusOr<std::unique_ptr<Backend>> backend = MakeBackend("gloo", options);
      EXPECT_THAT(backend, IsOk());
      backends_.push_back(*std::move(backend));
    }
    worlds_.resize(n);
    ForEachRank(n, [&](int r) {
      absl::StatusOr<std::unique_ptr<Communicator>> world =
          backends_[r]->CreateWorld({r, n, 0}, store_, absl::Now() + kCreateTimeout);
      EXPECT_THAT(world, IsOk());
      if (world.ok()) worlds_[r] = *std::move(world);
    });
  }

  bool ok() const {
    for (const auto& w : worlds_) {
      if (w == nullptr) return false;
    }
    return true;
  }
  int size() const { return n_; }
  Backend& backend(int r) { return *backends_[r]; }
  Communicator& world(int r) { return *worlds_[r]; }
  InMemoryRendezvousStore& store() { return store_; }

 private:
  const int n_;
  InMemoryRendezvousStore store_;
  std::vector<std::unique_ptr<Backend>> backends_;
  std::vector<std::unique_ptr<Communicator>> worlds_;
};

// Groups for a world of 4: tp = {0,1},{2,3}; pp = {0,2},{1,3}; dp = {r} (size 1).
std::vector<GroupRequest> RequestsFor(int r) {
  return {
      {GroupKind::kTp, r / 2, {r / 2 * 2, r / 2 * 2 + 1}, r % 2},
      {GroupKind::kPp, r % 2, {r % 2, r % 2 + 2}, r / 2},
      {GroupKind::kDp, r, {r}, 0},
  };
}

TEST(Gloo, CreateWorld_RanksAndSize) {
  GlooWorld w(4);
  ASSERT_TRUE(w.ok());
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(w.world(r).rank(), r);
    EXPECT_EQ(w.world(r).size(), 4);
    EXPECT_THAT(w.world(r).ranks(), ElementsAre(0, 1, 2, 3));
    EXPECT_EQ(w.world(r).state(), CommState::kReady);
    EXPECT_EQ(w.world(r).backend_name(), "gloo");
    EXPECT_NE(w.world(r).raw_handle(), nullptr);
    EXPECT_EQ(w.world(r).creation_timing().method, "full_mesh");
  }
  EXPECT_TRUE(w.store().Contains("world/0/0"));  // the world's rendezvous used its prefix
}

TEST(Gloo, AllReduce_SumsAcrossRanks) {
  GlooWorld w(4);
  ASSERT_TRUE(w.ok());
  ForEachRank(4, [&](int r) {
    std::vector<float> f = {static_cast<float>(r), 10.0f * r};
    EXPECT_THAT(w.world(r).AllReduce(f.data(), f.size(), DataType::kFloat32, ReduceOp::kSum),
                IsOk());
    EXPECT_THAT(f, ElementsAre(6.0f, 60.0f));
    std::vector<int64_t> i = {r + 1};
    EXPECT_THAT(w.world(r).AllReduce(i.data(), 1, DataType::kInt64, ReduceOp::kProd), IsOk());
    EXPECT_EQ(i[0], 24);
    double d = r;
    EXPECT_THAT(w.world(r).AllReduce(&d, 1, DataType::kFloat64, ReduceOp::kMax), IsOk());
    EXPECT_EQ(d, 3.0);
    int32_t m = r + 5;
    EXPECT_THAT(w.world(r).AllReduce(&m, 1, DataType::kInt32, ReduceOp::kMin), IsOk());
    EXPECT_EQ(m, 5);
    std::vector<uint8_t> u(1000, static_cast<uint8_t>(r));  // several elements, uint8
    EXPECT_THAT(w.world(r).AllReduce(u.data(), u.size(), DataType::kUInt8, ReduceOp::kSum), IsOk());
    EXPECT_EQ(u[999], 6);
  });
}

TEST(Gloo, AllGather_ConcatenatesInRankOrder) {
  GlooWorld w(4);
  ASSERT_TRUE(w.ok());
  ForEachRank(4, [&](int r) {
    std::vector<int32_t> in = {r, 100 + r};
    std::vector<int32_t> out(8, -1);
    EXPECT_THAT(w.world(r).AllGather(in.data(), out.data(), 2, DataType::kInt32), IsOk());
    EXPECT_THAT(out, ElementsAre(0, 100, 1, 101, 2, 102, 3, 103));
  });
}

TEST(Gloo, Broadcast_CopiesFromRoot) {
  GlooWorld w(4);
  ASSERT_TRUE(w.ok());
  ForEachRank(4, [&](int r) {
    std::vector<double> buf = {r == 2 ? 3.5 : -1.0, r == 2 ? 7.0 : -1.0};
    EXPECT_THAT(w.world(r).Broadcast(buf.data(), 2, DataType::kFloat64, /*root=*/2), IsOk());
    EXPECT_THAT(buf, ElementsAre(3.5, 7.0));
  });
}

TEST(Gloo, Barrier_CompletesOnEveryRank) {
  GlooWorld w(4);
  ASSERT_TRUE(w.ok());
  ForEachRank(4, [&](int r) {
    for (int i = 0; i < 3; ++i) EXPECT_THAT(w.world(r).Barrier(), IsOk());
  });
}

TEST(Gloo, SendRecv_RingExchange) {
  GlooWorld w(4);
  ASSERT_TRUE(w.ok());
  ForEachRank(4, [&](int r) {
    const int next = (r + 1) % 4;
    const int prev = (r + 3) % 4;
    std::vector<int64_t> out = {r, r * r};
    std::vector<int64_t> in(2, -1);
    // A Gloo send completes when the peer posts its receive: alternate the order by parity so the
    // ring cannot deadlock.
    if (r % 2 == 0) {
      EXPECT_THAT(w.world(r).Send(out.data(), 2, DataType::kInt64, next), IsOk());
      EXPECT_THAT(w.world(r).Recv(in.data(), 2, DataType::kInt64, prev), IsOk());
    } else {
      EXPECT_THAT(w.world(r).Recv(in.data(), 2, DataType::kInt64, prev), IsOk());
      EXPECT_THAT(w.world(r).Send(out.data(), 2, DataType::kInt64, next), IsOk());
    }
    EXPECT_THAT(in, ElementsAre(prev, prev * prev));
  });
}

TEST(Gloo, AllToAll_TransposesBlocks) {
  GlooWorld w(4);
  ASSERT_TRUE(w.ok());
  ForEachRank(4, [&](int r) {
    // Block j of rank r holds 10*r + j (twice); afterwards block j holds 10*j + r.
    std::vector<int32_t> in, out(8, -1), expected;
    for (int j = 0; j < 4; ++j) {
      in.insert(in.end(), {10 * r + j, 10 * r + j});
      expected.insert(expected.end(), {10 * j + r, 10 * j + r});
    }
    EXPECT_THAT(w.world(r).AllToAll(in.data(), out.data(), 2, DataType::kInt32), IsOk());
    EXPECT_THAT(out, ElementsAreArray(expected));
  });
}

TEST(Gloo, CreateGroups_AllReduceMatchesLayout) {
  GlooWorld w(4);
  ASSERT_TRUE(w.ok());
  std::vector<GroupSet> sets(4);
  ForEachRank(4, [&](int r) {
    absl::StatusOr<GroupSet> set = w.backend(r).CreateGroups(w.world(r), RequestsFor(r), w.store(),
                                                             absl::Now() + kCreateTimeout);
    ASSERT_THAT(set, IsOk());
    sets[r] = *std::move(set);
  });
  for (int r = 0; r < 4; ++r) ASSERT_EQ(sets[r].comms.size(), 3u) << "rank " << r;

  ForEachRank(4, [&](int r) {
    const std::vector<GroupRequest> requests = RequestsFor(r);
    for (size_t k = 0; k < requests.size(); ++k) {
      Communicator& comm = *sets[r].comms[k];
      EXPECT_EQ(comm.kind(), requests[k].kind);
      EXPECT_EQ(comm.group_index(), requests[k].group_index);
      EXPECT_EQ(comm.rank(), requests[k].rank_in_group);
      EXPECT_EQ(comm.ranks(), requests[k].ranks);
      // The all-reduce of global ranks equals the sum of the group's ranks.
      int64_t value = r;
      EXPECT_THAT(comm.AllReduce(&value, 1, DataType::kInt64, ReduceOp::kSum), IsOk());
      EXPECT_EQ(value, std::accumulate(requests[k].ranks.begin(), requests[k].ranks.end(), 0))
          << GroupLabel(comm.kind(), comm.group_index());
    }
    EXPECT_EQ(sets[r].timings[0].method, "full_mesh");
    EXPECT_EQ(sets[r].timings[2].method, "local");
    EXPECT_EQ(sets[r].timings[0].group_size, 2);
    EXPECT_GT(sets[r].timings[0].total, absl::ZeroDuration());
  });
  EXPECT_TRUE(w.store().Contains("tp/1/0"));
  EXPECT_TRUE(w.store().Contains("pp/0/1"));
  EXPECT_FALSE(w.store().Contains("dp/0/0"));  // size-1 groups stay off the store
}

TEST(Gloo, SizeOneGroup_OpsActLocally) {
  GlooWorld w(1);
  ASSERT_TRUE(w.ok());
  Communicator& c = w.world(0);
  EXPECT_EQ(c.creation_timing().method, "local");
  std::vector<float> buf = {1.5f, 2.5f};
  EXPECT_THAT(c.AllReduce(buf.data(), 2, DataType::kFloat32, ReduceOp::kSum), IsOk());
  EXPECT_THAT(buf, ElementsAre(1.5f, 2.5f));
  std::vector<float> out(2);
  EXPECT_THAT(c.AllGather(buf.data(), out.data(), 2, DataType::kFloat32), IsOk());
  EXPECT_THAT(out, ElementsAre(1.5f, 2.5f));
  std::vector<float> out2(2);
  EXPECT_THAT(c.AllToAll(buf.data(), out2.data(), 2, DataType::kFloat32), IsOk());
  EXPECT_THAT(out2, ElementsAre(1.5f, 2.5f));
  EXPECT_THAT(c.Broadcast(buf.data(), 2, DataType::kFloat32, 0), IsOk());
  EXPECT_THAT(c.Barrier(), IsOk());
}

TEST(Gloo, CreateWorld_MissingRank_DeadlineExceededNamingIt) {
  BackendOptions options;
  std::vector<std::unique_ptr<Backend>> backends;
  for (int r = 0; r < 2; ++r) backends.push_back(*MakeBackend("gloo", options));
  InMemoryRendezvousStore store;
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + absl::Milliseconds(500);
  std::vector<absl::Status> results(2);
  // World of 3; rank 2 never shows up.
  ForEachRank(2, [&](int r) {
    results[r] = backends[r]->CreateWorld({r, 3, 0}, store, deadline).status();
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_THAT(results[r], StatusIs(absl::StatusCode::kDeadlineExceeded,
                                     AllOf(HasSubstr("world/0"), HasSubstr("global rank 2"))))
        << "rank " << r;
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST(Gloo, Op_PeerNeverParticipates_DeadlineExceededThenError) {
  GlooWorld w(2);
  ASSERT_TRUE(w.ok());
  Communicator& c = w.world(0);
  float x = 1;
  const absl::Time start = absl::Now();
  EXPECT_THAT(c.AllReduce(&x, 1, DataType::kFloat32, ReduceOp::kSum, absl::Milliseconds(300)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(c.state(), CommState::kError);
  EXPECT_THAT(c.Barrier(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(c.Destroy(), IsOk());
}

TEST(Gloo, Abort_FromAnotherThreadUnblocksPendingOp) {
  GlooWorld w(2, /*op_timeout=*/absl::Seconds(60));
  ASSERT_TRUE(w.ok());
  Communicator& c = w.world(0);
  absl::Status op_status;
  absl::Notification op_done;
  const absl::Time start = absl::Now();
  std::thread op([&] {
    float x = 1;
    // Rank 1 never joins this all-reduce; only Abort can end it before the 60 s timeout.
    op_status = c.AllReduce(&x, 1, DataType::kFloat32, ReduceOp::kSum);
    op_done.Notify();
  });
  ASSERT_TRUE(c.AwaitOpsInFlight(1, absl::Seconds(10)));
  c.Abort();
  const bool finished = op_done.WaitForNotificationWithTimeout(absl::Seconds(10));
  op.join();  // bounded: the op's own timeout if Abort failed
  ASSERT_TRUE(finished);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_THAT(op_status, StatusIs(absl::StatusCode::kAborted));
  EXPECT_EQ(c.state(), CommState::kAborted);
  EXPECT_EQ(c.raw_handle(), nullptr);
  EXPECT_THAT(c.Barrier(), StatusIs(absl::StatusCode::kAborted));

  // The abort closed rank 0's sockets. The survivor's next op fails: usually at once ("connection
  // closed by peer"), but Gloo 2022 does not always notice the close (about 1 run in 10 here), and
  // then the op ends at its own timeout. Survivors must not rely on it: the coordinator tells them
  // to abort. So this only checks that the op fails and stays bounded.
  float y = 1;
  const absl::Time t1 = absl::Now();
  EXPECT_FALSE(
      w.world(1).AllReduce(&y, 1, DataType::kFloat32, ReduceOp::kSum, absl::Seconds(1)).ok());
  EXPECT_LT(absl::Now() - t1, absl::Seconds(5));
  EXPECT_EQ(w.world(1).state(), CommState::kError);
}

TEST(Gloo, DestroyAll_TearsDownInParallel) {
  GlooWorld w(4);
  ASSERT_TRUE(w.ok());
  std::vector<GroupSet> sets(4);
  ForEachRank(4, [&](int r) {
    absl::StatusOr<GroupSet> set = w.backend(r).CreateGroups(w.world(r), RequestsFor(r), w.store(),
                                                             absl::Now() + kCreateTimeout);
    ASSERT_THAT(set, IsOk());
    sets[r] = *std::move(set);
  });
  ForEachRank(4, [&](int r) {
    std::vector<Communicator*> all = {&w.world(r)};
    for (auto& c : sets[r].comms) all.push_back(c.get());
    for (Communicator* c : all) EXPECT_TRUE(c->release_waits());  // each its own thread
    // Ranks 0 and 1 take the failure path (abort), ranks 2 and 3 the orderly one.
    TeardownReport report = w.backend(r).DestroyAll(all, /*abort=*/r < 2);
    EXPECT_THAT(report.status, IsOk());
    ASSERT_EQ(report.durations.size(), all.size());
    for (Communicator* c : all) {
      EXPECT_EQ(c->state(), CommState::kDestroyed);
      EXPECT_EQ(c->raw_handle(), nullptr);
    }
  });
}

TEST(Gloo, CreateGroups_InvalidRequest_InvalidArgument) {
  GlooWorld w(1);
  ASSERT_TRUE(w.ok());
  EXPECT_THAT(w.backend(0).CreateGroups(w.world(0), {{GroupKind::kTp, 0, {0, 1}, 0}}, w.store(),
                                        absl::Now() + absl::Seconds(1)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Gloo, CreateGroups_PeerMissing_AbortsAndNamesGroup) {
  GlooWorld w(2);
  ASSERT_TRUE(w.ok());
  // Only rank 0 asks for tp/0 = {0, 1}.
  absl::StatusOr<GroupSet> set = w.backend(0).CreateGroups(
      w.world(0), {{GroupKind::kTp, 0, {0, 1}, 0}, {GroupKind::kDp, 0, {0}, 0}}, w.store(),
      absl::Now() + absl::Milliseconds(300));
  EXPECT_THAT(set, StatusIs(absl::StatusCode::kDeadlineExceeded,
                            AllOf(HasSubstr("tp/0"), HasSubstr("global rank 1"))));
}

// A peer that published its address but never connects. Gloo makes the lower address of a pair
// listen: rank 0 (127.0.0.1) waits in its pair's connect for rank 1 (a pair on 127.0.0.2) to
// connect, which never happens. The build's deadline is far away, so the only way for it to end
// soon, and with the cancel's reason rather than a connect timeout, is the cancel reaching the
// connect.
TEST(Gloo, CancelBuilds_InterruptsAConnectWaitingForAPeer) {
  absl::StatusOr<std::unique_ptr<Backend>> backend = MakeBackend("gloo", BackendOptions{});
  ASSERT_THAT(backend, IsOk());
  InMemoryRendezvousStore store;
  gloo::transport::tcp::attr attr;
  attr.hostname = "127.0.0.2";
  std::shared_ptr<gloo::transport::Device> device = gloo::transport::tcp::CreateDevice(attr);
  std::shared_ptr<gloo::transport::Context> silent = device->createContext(1, 2);
  const std::vector<char> address = silent->createPair(0)->address().bytes();
  ASSERT_THAT(store.Set("world/0/1", absl::string_view(address.data(), address.size())), IsOk());

  absl::Status result = absl::UnknownError("not run");
  std::thread build([&] {
    result =
        backend.value()->CreateWorld({0, 2, 0}, store, absl::Now() + absl::Seconds(60)).status();
  });
  // Rank 0 has published its own address: it is connecting, or about to.
  EXPECT_THAT(store.Get("world/0/0", absl::Seconds(30)), IsOk());
  backend.value()->CancelBuilds("the coordinator aborted generation 7");
  build.join();  // bounded by the build's deadline
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kAborted,
                               HasSubstr("the coordinator aborted generation 7")));

  // Cancelled builds stay cancelled until ResumeBuilds.
  EXPECT_THAT(backend.value()->CreateWorld({0, 2, 0}, store, absl::Now() + absl::Seconds(60)),
              StatusIs(absl::StatusCode::kAborted));
}

TEST(Gloo, SumOverGroup_SumsHostValuesAcrossRanks) {
  GlooWorld w(3);
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(w.backend(0).has_data_plane());
  ForEachRank(3, [&](int r) {
    EXPECT_TRUE(w.world(r).has_data_plane());
    absl::StatusOr<int64_t> sum = w.world(r).SumOverGroup(r + 1);
    EXPECT_THAT(sum, IsOk());
    if (sum.ok()) {
      EXPECT_EQ(*sum, 6);
    }
  });
}

}  // namespace
}  // namespace cohort::agent
