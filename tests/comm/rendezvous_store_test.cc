#include "agent/comm/rendezvous_store.h"

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/comm/status_matchers.h"

namespace cohort::agent {
namespace {

using ::cohort::testing::IsOk;
using ::cohort::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// Implements only Set/Get, so MultiSet/MultiGet come from the base class defaults.
class MinimalStore final : public RendezvousStore {
 public:
  absl::Status Set(absl::string_view key, absl::string_view value) override {
    return inner_.Set(key, value);
  }
  absl::StatusOr<std::string> Get(absl::string_view key, absl::Duration timeout) override {
    return inner_.Get(key, timeout);
  }

 private:
  InMemoryRendezvousStore inner_;
};

TEST(InMemoryStore, Get_WaitsForSet) {
  InMemoryRendezvousStore store;
  absl::StatusOr<std::string> got;
  absl::Notification done;
  std::thread getter([&] {
    got = store.Get("world/nccl_id", absl::Seconds(10));
    done.Notify();
  });
  EXPECT_FALSE(done.HasBeenNotified());  // nothing to return yet
  ASSERT_THAT(store.Set("world/nccl_id", "id-bytes"), IsOk());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  getter.join();
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(*got, "id-bytes");
}

TEST(InMemoryStore, Get_Timeout_NamesKey) {
  InMemoryRendezvousStore store;
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> got = store.Get("tp/3/1", absl::Milliseconds(50));
  EXPECT_THAT(got, StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("'tp/3/1'")));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(InMemoryStore, Set_Overwrites) {
  InMemoryRendezvousStore store;
  ASSERT_THAT(store.Set("k", "old"), IsOk());
  ASSERT_THAT(store.Set("k", "new"), IsOk());
  EXPECT_EQ(*store.Get("k", absl::ZeroDuration()), "new");
  EXPECT_EQ(store.size(), 1u);
}

TEST(InMemoryStore, Values_AreBinarySafe) {
  InMemoryRendezvousStore store;
  const std::string bytes("\0a\0b\xff", 5);
  ASSERT_THAT(store.Set("bin", bytes), IsOk());
  EXPECT_EQ(*store.Get("bin", absl::ZeroDuration()), bytes);
}

TEST(InMemoryStore, MultiGet_ReturnsValuesInOrder) {
  InMemoryRendezvousStore store;
  ASSERT_THAT(store.MultiSet({{"b", "2"}, {"a", "1"}, {"c", "3"}}), IsOk());
  absl::StatusOr<std::vector<std::string>> got = store.MultiGet({"c", "a", "b"}, absl::Seconds(1));
  ASSERT_THAT(got, IsOk());
  EXPECT_THAT(*got, ElementsAre("3", "1", "2"));
}

TEST(InMemoryStore, MultiGet_Timeout_NamesOnlyMissingKeys) {
  InMemoryRendezvousStore store;
  ASSERT_THAT(store.Set("present", "x"), IsOk());
  absl::StatusOr<std::vector<std::string>> got =
      store.MultiGet({"present", "absent1", "absent2"}, absl::Milliseconds(20));
  EXPECT_THAT(got, StatusIs(absl::StatusCode::kDeadlineExceeded,
                            ::testing::AllOf(HasSubstr("absent1"), HasSubstr("absent2"),
                                             Not(HasSubstr("present")))));
}

TEST(InMemoryStore, MultiGet_WakesWhenLastKeyArrives) {
  InMemoryRendezvousStore store;
  absl::StatusOr<std::vector<std::string>> got;
  absl::Notification done;
  std::thread getter([&] {
    got = store.MultiGet({"0", "1", "2"}, absl::Seconds(10));
    done.Notify();
  });
  ASSERT_THAT(store.Set("0", "a"), IsOk());
  ASSERT_THAT(store.Set("2", "c"), IsOk());
  ASSERT_THAT(store.Set("1", "b"), IsOk());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  getter.join();
  ASSERT_THAT(got, IsOk());
  EXPECT_THAT(*got, ElementsAre("a", "b", "c"));
}

TEST(PrefixedStore, SetAndGet_UseThePrefix) {
  InMemoryRendezvousStore base;
  PrefixedRendezvousStore gen(base, "gen/7/");
  PrefixedRendezvousStore group(gen, "tp/3/");
  ASSERT_THAT(group.Set("0", "addr0"), IsOk());
  EXPECT_TRUE(base.Contains("gen/7/tp/3/0"));
  EXPECT_EQ(*group.Get("0", absl::ZeroDuration()), "addr0");
  EXPECT_EQ(*gen.Get("tp/3/0", absl::ZeroDuration()), "addr0");
  EXPECT_THAT(group.Get("1", absl::Milliseconds(10)),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("gen/7/tp/3/1")));
}

TEST(PrefixedStore, MultiSetAndMultiGet_UseThePrefix) {
  InMemoryRendezvousStore base;
  PrefixedRendezvousStore store(base, "p/");
  ASSERT_THAT(store.MultiSet({{"x", "1"}, {"y", "2"}}), IsOk());
  EXPECT_TRUE(base.Contains("p/x"));
  EXPECT_TRUE(base.Contains("p/y"));
  EXPECT_THAT(*store.MultiGet({"y", "x"}, absl::Seconds(1)), ElementsAre("2", "1"));
}

TEST(RendezvousStoreDefaults, MultiSetAndMultiGet_LoopOverSetAndGet) {
  MinimalStore store;
  ASSERT_THAT(store.MultiSet({{"a", "1"}, {"b", "2"}}), IsOk());
  EXPECT_THAT(*store.MultiGet({"b", "a"}, absl::Seconds(1)), ElementsAre("2", "1"));
  EXPECT_THAT(store.MultiGet({"a", "zzz"}, absl::Milliseconds(20)),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("zzz")));
}

}  // namespace
}  // namespace cohort::agent
