// The door checks on their own: JoinRequest checks name the check that refused, store keys,
// free text cleaned and bounded, and what a teardown report releases.
#include "coordinator/agent_input.h"

#include <string>
#include <vector>

#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

v1::JoinRequest Valid() {
  v1::JoinRequest r;
  r.set_identity("host:0");
  r.set_incarnation("inc-1");
  return r;
}

TEST(CheckJoinRequest, ValidRequest_Passes) {
  EXPECT_FALSE(CheckJoinRequest(Valid(), Limits()).has_value());
}

TEST(CheckJoinRequest, EachRefusalNamesItsCheck) {
  const Limits limits;
  v1::JoinRequest r = Valid();
  r.clear_identity();
  ASSERT_TRUE(CheckJoinRequest(r, limits).has_value());
  EXPECT_EQ(CheckJoinRequest(r, limits)->check, "identity");
  r = Valid();
  r.clear_incarnation();
  EXPECT_EQ(CheckJoinRequest(r, limits)->check, "incarnation");
  r = Valid();
  r.set_rank_hint(static_cast<int>(limits.max_world_size));
  EXPECT_EQ(CheckJoinRequest(r, limits)->check, "rank-hint");
  r = Valid();
  r.mutable_device()->set_hostname(std::string(254, 'h'));
  EXPECT_EQ(CheckJoinRequest(r, limits)->check, "join-field");
  r = Valid();
  r.mutable_held()->set_holding(true);
  r.mutable_held()->set_world_size(static_cast<int>(limits.max_world_size) + 1);
  const std::optional<Refusal> refused = CheckJoinRequest(r, limits);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->check, "max-world-size");
  EXPECT_EQ(refused->status.code(), absl::StatusCode::kResourceExhausted);
}

TEST(CheckKeys, CountAndLengthBounded) {
  const std::vector<std::string> keys = {"a", "", std::string(kMaxKeyLength + 1, 'k')};
  auto key = [&](int i) -> const std::string& { return keys[i]; };
  EXPECT_TRUE(CheckKeys(1, key).ok());
  EXPECT_EQ(CheckKeys(0, key).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckKeys(2, key).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckKeys(kMaxKeysPerRequest + 1, key).code(), absl::StatusCode::kInvalidArgument);
}

TEST(CleanAgentMessage, FreeTextCutAndPrintable_GroupsBounded) {
  v1::AgentMessage m;
  m.mutable_report()->set_error(std::string(100000, 'e') + "\x1b[31m");
  for (int i = 0; i < 100; ++i)
    m.mutable_report()->add_groups()->set_error(
        "\x07"
        "bell");
  CleanAgentMessage(&m);
  EXPECT_LE(m.report().error().size(), kMaxFreeText + 16);
  EXPECT_EQ(m.report().error().find('\x1b'), std::string::npos);
  EXPECT_LE(m.report().groups_size(), 64);
  EXPECT_EQ(m.report().groups(0).error().find('\x07'), std::string::npos);
}

TEST(CleanAgentMessage, LeaveReasonCutAndPrintable) {
  v1::AgentMessage m;
  m.mutable_leave()->set_reason("\x1b[2J" + std::string(100000, 'r'));
  CleanAgentMessage(&m);
  EXPECT_LE(m.leave().reason().size(), 256u + 16);
  EXPECT_EQ(m.leave().reason().find('\x1b'), std::string::npos);
}

TEST(ApplyTeardown, NamedGroupsOrEveryGroupTheScopeCovers_SameGenerationOnly) {
  v1::GenerationReport report;
  report.set_generation(2);
  v1::GroupReport* world = report.add_groups();
  world->set_kind(v1::GROUP_KIND_WORLD);
  world->set_state(v1::COMM_STATE_READY);
  v1::GroupReport* tp = report.add_groups();
  tp->set_kind(v1::GROUP_KIND_TP);
  tp->set_state(v1::COMM_STATE_READY);

  v1::TeardownReport other;
  other.set_generation(1);
  ApplyTeardown(other, v1::COMM_STATE_DESTROYED, &report);
  EXPECT_EQ(report.groups(1).state(), v1::COMM_STATE_READY);

  v1::TeardownReport mp;
  mp.set_generation(2);
  mp.set_scope(v1::DESTROY_SCOPE_MODEL_PARALLEL);
  ApplyTeardown(mp, v1::COMM_STATE_DESTROYED, &report);
  EXPECT_EQ(report.groups(0).state(), v1::COMM_STATE_READY);  // the world survives
  EXPECT_EQ(report.groups(1).state(), v1::COMM_STATE_DESTROYED);

  v1::TeardownReport named;
  named.set_generation(2);
  v1::GroupReport* g = named.add_groups();
  g->set_kind(v1::GROUP_KIND_WORLD);
  g->set_state(v1::COMM_STATE_ABORTED);
  ApplyTeardown(named, v1::COMM_STATE_DESTROYED, &report);
  EXPECT_EQ(report.groups(0).state(), v1::COMM_STATE_ABORTED);
}

}  // namespace
}  // namespace cohort::coordinator
