// KeptWorld on its own: the world kept by a model-parallel destroy is reused only by the same
// incarnations on the same ranks; dropping it forgets it.
#include "coordinator/kept_world.h"

#include <map>
#include <string>

#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

// Rank r is held by holders[r] (absent: nobody).
std::function<const std::string*(int)> Holders(const std::map<int, std::string>& holders) {
  return [&holders](int r) -> const std::string* {
    auto it = holders.find(r);
    return it == holders.end() ? nullptr : &it->second;
  };
}

TEST(KeptWorld, NothingKept_NotReusable) {
  KeptWorld world;
  const std::map<int, std::string> now = {{0, "a"}};
  EXPECT_FALSE(world.alive());
  EXPECT_FALSE(world.ReusableBy(1, Holders(now)));
}

TEST(KeptWorld, SameIncarnationsOnSameRanks_Reusable) {
  KeptWorld world;
  world.Keep(3, {{0, "a"}, {1, "b"}});
  EXPECT_TRUE(world.alive());
  EXPECT_EQ(world.generation(), 3);
  const std::map<int, std::string> now = {{0, "a"}, {1, "b"}};
  EXPECT_TRUE(world.ReusableBy(2, Holders(now)));
}

TEST(KeptWorld, AnotherIncarnation_SwappedRanks_OrAMissingRank_NotReusable) {
  KeptWorld world;
  world.Keep(3, {{0, "a"}, {1, "b"}});
  const std::map<int, std::string> restarted = {{0, "a"}, {1, "b2"}};
  const std::map<int, std::string> swapped = {{0, "b"}, {1, "a"}};
  const std::map<int, std::string> missing = {{0, "a"}};
  EXPECT_FALSE(world.ReusableBy(2, Holders(restarted)));
  EXPECT_FALSE(world.ReusableBy(2, Holders(swapped)));
  EXPECT_FALSE(world.ReusableBy(2, Holders(missing)));
  const std::map<int, std::string> bigger = {{0, "a"}, {1, "b"}, {2, "c"}};
  EXPECT_FALSE(world.ReusableBy(3, Holders(bigger)));  // a rank it never had
}

TEST(KeptWorld, Drop_ForgetsIt) {
  KeptWorld world;
  world.Keep(3, {{0, "a"}});
  world.Drop();
  const std::map<int, std::string> now = {{0, "a"}};
  EXPECT_FALSE(world.alive());
  EXPECT_FALSE(world.ReusableBy(1, Holders(now)));
}

}  // namespace
}  // namespace cohort::coordinator
