// Teardown on its own: the first failure replaces the pool's earlier error and later ones are
// appended; only a clean model-parallel teardown of a READY generation keeps the world; a new
// teardown starts clean.
#include "coordinator/teardown.h"

#include <string>

#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

TEST(Teardown, Start_RecordsScopeAndOrigin_Clean) {
  Teardown teardown;
  teardown.Start(v1::DESTROY_SCOPE_ALL, /*from_ready=*/true);
  EXPECT_EQ(teardown.scope(), v1::DESTROY_SCOPE_ALL);
  EXPECT_TRUE(teardown.from_ready());
  EXPECT_TRUE(teardown.ok());
}

TEST(Teardown, FirstFailure_ReplacesThePoolsEarlierError) {
  Teardown teardown;
  teardown.Start(v1::DESTROY_SCOPE_MODEL_PARALLEL, /*from_ready=*/false);
  EXPECT_EQ(teardown.Fail("generation 3 failed: rank 1 lost", "rank 0 (a) failed its teardown"),
            "rank 0 (a) failed its teardown");
  EXPECT_FALSE(teardown.ok());
}

TEST(Teardown, LaterFailures_AreAppended) {
  Teardown teardown;
  teardown.Start(v1::DESTROY_SCOPE_MODEL_PARALLEL, /*from_ready=*/true);
  std::string error = "before";
  error = teardown.Fail(error, "first");
  error = teardown.Fail(error, "second");
  error = teardown.Fail(error, "third");
  EXPECT_EQ(error, "first; second; third");
}

TEST(Teardown, KeepsWorld_OnlyCleanModelParallelFromReady) {
  Teardown teardown;
  teardown.Start(v1::DESTROY_SCOPE_MODEL_PARALLEL, /*from_ready=*/true);
  EXPECT_TRUE(teardown.KeepsWorld());
  teardown.Start(v1::DESTROY_SCOPE_ALL, /*from_ready=*/true);
  EXPECT_FALSE(teardown.KeepsWorld());
  teardown.Start(v1::DESTROY_SCOPE_MODEL_PARALLEL, /*from_ready=*/false);
  EXPECT_FALSE(teardown.KeepsWorld());
  teardown.Start(v1::DESTROY_SCOPE_MODEL_PARALLEL, /*from_ready=*/true);
  teardown.Fail("", "rank 1 (b) was lost during the teardown");
  EXPECT_FALSE(teardown.KeepsWorld());
}

TEST(Teardown, Start_AfterAFailedOne_IsCleanAgain) {
  Teardown teardown;
  teardown.Start(v1::DESTROY_SCOPE_ALL, /*from_ready=*/false);
  teardown.Fail("", "x");
  teardown.Start(v1::DESTROY_SCOPE_MODEL_PARALLEL, /*from_ready=*/true);
  EXPECT_TRUE(teardown.ok());
  EXPECT_EQ(teardown.Fail("old", "new"), "new");
}

TEST(Teardown, What_NamesTheScope) {
  Teardown teardown;
  EXPECT_STREQ(teardown.What(), "model-parallel groups");
  teardown.Start(v1::DESTROY_SCOPE_ALL, /*from_ready=*/false);
  EXPECT_STREQ(teardown.What(), "everything");
}

}  // namespace
}  // namespace cohort::coordinator
