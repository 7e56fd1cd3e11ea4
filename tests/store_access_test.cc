// The rendezvous store's key scheme and ownership: who owns each key of a layout, who may read
// it, and the messages of a refusal.
#include "coordinator/store_access.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohort::coordinator {
namespace {

using ::testing::HasSubstr;

Layout TpLayout() {
  // world 8, tp 2, dp 4: tp groups {0,1}, {2,3}, {4,5}, {6,7}.
  ParallelConfig config;
  config.world_size = 8;
  config.tensor_parallel_size = 2;
  config.data_parallel_size = 4;
  absl::StatusOr<Layout> layout = Layout::Build(config);
  EXPECT_TRUE(layout.ok()) << layout.status();
  return *std::move(layout);
}

TEST(StoreAccess, ScopeOfKey_GlooAndNcclKeys) {
  const Layout layout = TpLayout();
  const RankList& tp2 = layout.groups(GroupKind::kTp)[2];
  absl::StatusOr<KeyScope> gloo = ScopeOfKey(layout, "tp/2/1");
  ASSERT_TRUE(gloo.ok()) << gloo.status();
  EXPECT_EQ(gloo->owner, tp2[1]);
  EXPECT_EQ(gloo->group, tp2);
  absl::StatusOr<KeyScope> nccl = ScopeOfKey(layout, "tp/2/nccl_id");
  ASSERT_TRUE(nccl.ok());
  EXPECT_EQ(nccl->owner, tp2[0]);
  absl::StatusOr<KeyScope> world = ScopeOfKey(layout, "world/nccl_id");
  ASSERT_TRUE(world.ok());
  EXPECT_EQ(world->owner, 0);
  EXPECT_EQ(world->group.size(), 8u);
  absl::StatusOr<KeyScope> world_gloo = ScopeOfKey(layout, "world/0/7");
  ASSERT_TRUE(world_gloo.ok());
  EXPECT_EQ(world_gloo->owner, 7);
}

TEST(StoreAccess, KeysOutsideTheScheme_InvalidArgumentListingIt) {
  const Layout layout = TpLayout();
  for (const char* key :
       {"secret", "tp/9/0", "tp/1/2", "tp/x/0", "ep/0/0", "tp/1/0/extra", "tp/-1/0", "tp/1/"}) {
    absl::StatusOr<KeyScope> scope = ScopeOfKey(layout, key);
    ASSERT_FALSE(scope.ok()) << key;
    EXPECT_EQ(scope.status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_THAT(scope.status().message(), HasSubstr("<kind>/<group index>/<group rank>")) << key;
  }
}

TEST(StoreAccess, WriteOnlyOwnKeys_MessageNamesOwner) {
  const Layout layout = TpLayout();
  const RankList& tp1 = layout.groups(GroupKind::kTp)[1];
  EXPECT_TRUE(CheckStoreKeys(layout, tp1[0], {"tp/1/0", "tp/1/nccl_id"}, true).ok());
  absl::Status s = CheckStoreKeys(layout, tp1[1], {"tp/1/0"}, true);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(), absl::StrCat("key 'tp/1/0' belongs to global rank ", tp1[0],
                                      " (rank 0 of tp group 1); you are rank ", tp1[1]));
  EXPECT_EQ(CheckStoreKeys(layout, 3, {"world/nccl_id"}, true).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(CheckStoreKeys(layout, 0, {"world/nccl_id"}, true).ok());
}

TEST(StoreAccess, ReadOnlyOwnGroups) {
  const Layout layout = TpLayout();
  const RankList& tp1 = layout.groups(GroupKind::kTp)[1];
  EXPECT_TRUE(CheckStoreKeys(layout, tp1[1], {"tp/1/0", "world/0/5", "world/nccl_id"}, false).ok());
  const int outsider = layout.groups(GroupKind::kTp)[0][0];
  absl::Status s = CheckStoreKeys(layout, outsider, {"tp/1/0"}, false);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("is of tp group 1"));
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("you are rank ", outsider, ", not a member")));
}

}  // namespace
}  // namespace cohort::coordinator
