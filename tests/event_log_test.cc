// EventLog on its own: sequence numbers, per-pool history bounded by count and bytes, watcher
// fan-out by pool, slow watchers dropped, listeners.
#include "coordinator/event_log.h"

#include <string>
#include <vector>

#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

class FakeWatch : public WatchSink {
 public:
  explicit FakeWatch(size_t capacity = 1000) : capacity_(capacity) {}
  void Close(const absl::Status& why) override { closed = why; }
  std::optional<absl::Status> closed;
  bool Send(const v1::WatchEvent& event) override {
    if (received.size() >= capacity_) return false;  // too far behind
    received.push_back(event);
    return true;
  }
  std::vector<v1::WatchEvent> received;

 private:
  size_t capacity_;
};

v1::Event EventOf(const std::string& pool, const std::string& message = "m") {
  v1::Event e;
  e.set_pool(pool);
  e.set_kind(v1::EVENT_KIND_JOINED);
  e.set_message(message);
  return e;
}

std::vector<int64_t> SeqsOf(const std::vector<v1::Event>& events) {
  std::vector<int64_t> out;
  for (const v1::Event& e : events) out.push_back(e.seq());
  return out;
}

TEST(EventLog, CloseWatchers_ClosesEachWithTheStatus_AndDropsThem) {
  EventLog log(100, 1 << 20);
  FakeWatch a;
  FakeWatch b;
  log.AddWatcher("p", &a);
  log.AddWatcher("", &b);
  log.CloseWatchers(absl::UnavailableError("coordinator restarting"));
  ASSERT_TRUE(a.closed.has_value());
  ASSERT_TRUE(b.closed.has_value());
  EXPECT_EQ(a.closed->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(log.watchers(), 0u);
  log.Record(EventOf("p"));
  EXPECT_TRUE(a.received.empty());
  EXPECT_TRUE(b.received.empty());
}

TEST(EventLog, SequenceIsSharedByEveryPool_HistoryIsPerPool) {
  EventLog log(100, 1 << 20);
  EXPECT_EQ(log.Record(EventOf("a")), 1);
  EXPECT_EQ(log.Record(EventOf("b")), 2);
  EXPECT_EQ(log.Record(EventOf("a")), 3);
  EXPECT_EQ(SeqsOf(log.Since("a", 0, 0)), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(SeqsOf(log.Since("b", 0, 0)), (std::vector<int64_t>{2}));
  EXPECT_TRUE(log.Since("c", 0, 0).empty());
}

TEST(EventLog, Since_AfterSeqAndNewestLimit) {
  EventLog log(100, 1 << 20);
  for (int i = 0; i < 5; ++i) log.Record(EventOf("a"));
  EXPECT_EQ(SeqsOf(log.Since("a", 2, 0)), (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ(SeqsOf(log.Since("a", 0, 2)), (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(SeqsOf(log.Since("a", 4, 3)), (std::vector<int64_t>{5}));
}

TEST(EventLog, HistoryBoundedByCount_OldestDropped) {
  EventLog log(3, 1 << 20);
  for (int i = 0; i < 5; ++i) log.Record(EventOf("a"));
  EXPECT_EQ(SeqsOf(log.Since("a", 0, 0)), (std::vector<int64_t>{3, 4, 5}));
}

TEST(EventLog, HistoryBoundedByBytes_OldestDropped) {
  const size_t one = [] {
    v1::Event e = EventOf("a", std::string(100, 'x'));
    e.set_seq(1);
    return e.ByteSizeLong();
  }();
  EventLog log(1000, 3 * one);
  for (int i = 0; i < 10; ++i) log.Record(EventOf("a", std::string(100, 'x')));
  const std::vector<v1::Event> kept = log.Since("a", 0, 0);
  EXPECT_GE(kept.size(), 2u);
  EXPECT_LE(kept.size(), 3u);
  EXPECT_EQ(kept.back().seq(), 10);
}

TEST(EventLog, Forget_DropsOnlyThatPoolsHistory) {
  EventLog log(100, 1 << 20);
  log.Record(EventOf("a"));
  log.Record(EventOf("b"));
  log.Forget("a");
  EXPECT_TRUE(log.Since("a", 0, 0).empty());
  EXPECT_EQ(log.Since("b", 0, 0).size(), 1u);
  EXPECT_EQ(log.Record(EventOf("a")), 3);  // the sequence goes on
}

TEST(EventLog, Watchers_GetTheirPoolOrEveryPool) {
  EventLog log(100, 1 << 20);
  FakeWatch of_a;
  FakeWatch of_all;
  log.AddWatcher("a", &of_a);
  log.AddWatcher("", &of_all);
  log.Record(EventOf("a"));
  log.Record(EventOf("b"));
  ASSERT_EQ(of_a.received.size(), 1u);
  EXPECT_EQ(of_a.received[0].event().pool(), "a");
  ASSERT_EQ(of_all.received.size(), 2u);
  EXPECT_EQ(of_all.received[1].event().seq(), 2);
}

TEST(EventLog, WatcherThatRefuses_IsDropped_OthersGoOn) {
  EventLog log(100, 1 << 20);
  FakeWatch slow(1);
  FakeWatch fast;
  log.AddWatcher("", &slow);
  log.AddWatcher("", &fast);
  log.Record(EventOf("a"));
  EXPECT_EQ(log.watchers(), 2u);
  log.Record(EventOf("a"));  // slow refuses: dropped
  EXPECT_EQ(log.watchers(), 1u);
  log.Record(EventOf("a"));
  EXPECT_EQ(slow.received.size(), 1u);
  EXPECT_EQ(fast.received.size(), 3u);
}

TEST(EventLog, RemoveWatcher_StopsItsStream_Idempotent) {
  EventLog log(100, 1 << 20);
  FakeWatch w;
  const uint64_t id = log.AddWatcher("", &w);
  log.Record(EventOf("a"));
  log.RemoveWatcher(id);
  log.RemoveWatcher(id);
  log.Record(EventOf("a"));
  EXPECT_EQ(w.received.size(), 1u);
  EXPECT_EQ(log.watchers(), 0u);
}

TEST(EventLog, Listeners_SeeEveryEventWithItsSeq) {
  EventLog log(1, 1 << 20);
  std::vector<int64_t> seen;
  log.AddListener([&](const v1::Event& e) { seen.push_back(e.seq()); });
  log.Record(EventOf("a"));
  log.Record(EventOf("b"));
  log.Record(EventOf("a"));
  EXPECT_EQ(seen, (std::vector<int64_t>{1, 2, 3}));
}

}  // namespace
}  // namespace cohort::coordinator
