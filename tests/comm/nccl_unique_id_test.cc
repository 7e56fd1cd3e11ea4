// NCCL pieces that work without a GPU: the factory, unique ids, status mapping. Labelled `gpu`
// with the rest of the NCCL tests, though it also passes on CPU-only machines.
#include <string>

#include "agent/comm/backend.h"
#include "agent/comm/nccl_api.h"
#include "agent/comm/nccl_backend.h"
#include "agent/comm/nccl_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/comm/status_matchers.h"

namespace cohort::agent {
namespace {

using ::cohort::testing::IsOk;
using ::cohort::testing::StatusIs;
using ::testing::HasSubstr;

TEST(Nccl, MakeBackend_ReturnsNcclBackend) {
  absl::StatusOr<std::unique_ptr<Backend>> backend = MakeBackend("nccl", BackendOptions());
  ASSERT_THAT(backend, IsOk());
  EXPECT_EQ((*backend)->name(), "nccl");
}

TEST(Nccl, NewUniqueId_Is128FreshBytes) {
  absl::StatusOr<std::string> a = NewNcclUniqueId();
  absl::StatusOr<std::string> b = NewNcclUniqueId();
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ(a->size(), sizeof(ncclUniqueId));
  EXPECT_NE(*a, *b);
}

TEST(Nccl, StoreKeys_FollowTheLayoutNames) {
  EXPECT_EQ(kWorldNcclIdKey, "world/nccl_id");
  EXPECT_EQ(GroupNcclIdKey(GroupKind::kTp, 3), "tp/3/nccl_id");
}

TEST(NcclStatus, InProgressIsNotAnError) {
  EXPECT_THAT(NcclToStatus(RealNcclApi(), ncclSuccess, "x"), IsOk());
  EXPECT_THAT(NcclToStatus(RealNcclApi(), ncclInProgress, "x"), IsOk());
}

TEST(NcclStatus, ErrorsCarryExpressionAndNcclText) {
  EXPECT_THAT(NcclToStatus(RealNcclApi(), ncclInvalidArgument, "ncclAllReduce(buf)"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ncclAllReduce(buf)")));
  EXPECT_THAT(NcclToStatus(RealNcclApi(), ncclRemoteError, "x"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(NcclToStatus(RealNcclApi(), ncclSystemError, "x"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(NcclToStatus(RealNcclApi(), ncclInvalidUsage, "x"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(
      NcclToStatus(RealNcclApi(), ncclInternalError, "x"),
      StatusIs(absl::StatusCode::kInternal, HasSubstr(ncclGetErrorString(ncclInternalError))));
}

absl::Status ReturnsViaMacro(ncclResult_t r) {
  COHORT_NCCL_RETURN_IF_ERROR(RealNcclApi(), r, nullptr);
  return absl::OkStatus();
}

TEST(NcclStatus, MacroReturnsOnErrorOnly) {
  EXPECT_THAT(ReturnsViaMacro(ncclInProgress), IsOk());
  EXPECT_THAT(ReturnsViaMacro(ncclUnhandledCudaError),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("r:")));
}

}  // namespace
}  // namespace cohort::agent
