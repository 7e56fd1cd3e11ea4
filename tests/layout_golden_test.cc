// Parity with the seed: every case of the golden data (tests/data/golden_public.json, copied from
// shared/golden/public.json) — every group list in creation order, every per_rank field, the
// masked EP alternative, and every invalid case refused.
#include <map>

#include "common/layout.h"
#include "tests/test_util.h"

namespace cohort {
namespace {

using ::cohort::testing::Field;
using google::protobuf::Value;

int AsInt(const Value& v) { return static_cast<int>(v.number_value()); }

RankGroups AsGroups(const Value& v) {
  RankGroups groups;
  for (const Value& g : v.list_value().values()) {
    RankList ranks;
    for (const Value& r : g.list_value().values()) ranks.push_back(AsInt(r));
    groups.push_back(ranks);
  }
  return groups;
}

struct GoldenCase {
  std::string name;
  Value json;
};

std::vector<GoldenCase> LoadCases() {
  Value root = testing::ParseJsonOrDie(
      testing::ReadFileOrDie(std::string(COHORT_TEST_DATA_DIR) + "/golden_public.json"));
  std::vector<GoldenCase> cases;
  for (const Value& c : Field(root, "cases").list_value().values()) {
    cases.push_back({Field(c, "name").string_value(), c});
  }
  return cases;
}

ParallelConfig ConfigOf(const Value& c) {
  const Value& j = Field(c, "config");
  ParallelConfig config;
  config.world_size = AsInt(Field(j, "world_size"));
  config.data_parallel_size = AsInt(Field(j, "data_parallel_size"));
  config.cfg_parallel_size = AsInt(Field(j, "cfg_parallel_size"));
  if (Field(j, "sequence_parallel_size").has_number_value()) {
    config.sequence_parallel_size = AsInt(Field(j, "sequence_parallel_size"));
  }
  config.ulysses_degree = AsInt(Field(j, "ulysses_degree"));
  config.ring_degree = AsInt(Field(j, "ring_degree"));
  config.tensor_parallel_size = AsInt(Field(j, "tensor_parallel_size"));
  config.pipeline_parallel_size = AsInt(Field(j, "pipeline_parallel_size"));
  config.fully_shard_degree = AsInt(Field(j, "fully_shard_degree"));
  config.hsdp_replicate_size = AsInt(Field(j, "hsdp_replicate_size"));
  config.enable_expert_parallel = Field(j, "enable_expert_parallel").bool_value();
  config.is_moe = Field(j, "is_moe").bool_value();
  return config;
}

class GoldenTest : public ::testing::TestWithParam<GoldenCase> {};

TEST(GoldenData, HasEveryCase) {
  std::vector<GoldenCase> cases = LoadCases();
  EXPECT_EQ(cases.size(), 37u);
  int valid = 0;
  for (const GoldenCase& c : cases) valid += Field(c.json, "valid").bool_value();
  EXPECT_EQ(valid, 32);
}

TEST_P(GoldenTest, MatchesSeed) {
  const Value& c = GetParam().json;
  const ParallelConfig config = ConfigOf(c);
  absl::StatusOr<Layout> layout = Layout::Build(config);
  if (!Field(c, "valid").bool_value()) {
    ASSERT_FALSE(layout.ok()) << "the seed fails on this config; cohort must refuse it";
    EXPECT_EQ(layout.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_FALSE(layout.status().message().empty());
    return;
  }
  ASSERT_TRUE(layout.ok()) << layout.status();

  const Value& derived = Field(c, "derived");
  EXPECT_EQ(layout->derived().dit_parallel_size, AsInt(Field(derived, "dit_parallel_size")));
  EXPECT_EQ(layout->derived().effective_dp_size, AsInt(Field(derived, "effective_dp_size")));
  EXPECT_EQ(layout->derived().standalone_hsdp, Field(derived, "standalone_hsdp").bool_value());

  // Same kinds, in the same (creation) order, with the same groups in the same order.
  const Value& groups = Field(c, "groups");
  std::vector<std::string> expected_kinds;
  for (const auto& [key, value] : groups.struct_value().fields()) expected_kinds.push_back(key);
  std::vector<std::string> kinds;
  for (GroupKind kind : layout->kinds()) kinds.emplace_back(GroupKindName(kind));
  EXPECT_THAT(kinds, ::testing::UnorderedElementsAreArray(expected_kinds));
  const Value meta_order = testing::ParseJsonOrDie(
      R"(["world","dp","cfg","pp","ulysses","ring","sp","tp","fs","ep","dit"])");
  std::vector<std::string> creation_order;
  for (const Value& k : meta_order.list_value().values()) {
    if (groups.struct_value().fields().count(k.string_value())) {
      creation_order.push_back(k.string_value());
    }
  }
  EXPECT_EQ(kinds, creation_order);
  for (GroupKind kind : layout->kinds()) {
    EXPECT_EQ(layout->groups(kind), AsGroups(Field(groups, std::string(GroupKindName(kind)))))
        << "kind " << GroupKindName(kind);
  }

  if (config.enable_expert_parallel) {
    ParallelConfig masked = config;
    masked.ep_layout = EpLayout::kMasked;
    absl::StatusOr<Layout> alt = Layout::Build(masked);
    ASSERT_TRUE(alt.ok()) << alt.status();
    EXPECT_EQ(alt->groups(GroupKind::kEp),
              AsGroups(Field(Field(c, "alternatives"), "ep_masked_tp_sp_cfg_dp")));
  }

  const auto& per_rank = Field(c, "per_rank").list_value().values();
  ASSERT_EQ(per_rank.size(), static_cast<size_t>(config.world_size));
  for (const Value& expected : per_rank) {
    const int rank = AsInt(Field(expected, "rank"));
    SCOPED_TRACE("rank " + std::to_string(rank));
    const RankView v = layout->ViewOf(rank);
    for (const auto& [kind_name, value] :
         Field(expected, "rank_in_group").struct_value().fields()) {
      const int k = static_cast<int>(*ParseGroupKind(kind_name));
      EXPECT_EQ(v.rank_in_group[k], AsInt(value)) << kind_name;
      EXPECT_EQ(v.group_size[k], AsInt(Field(Field(expected, "group_world_size"), kind_name)))
          << kind_name;
    }
    EXPECT_EQ(Field(expected, "rank_in_group").struct_value().fields().size(),
              config.enable_expert_parallel ? 8u : 7u);
    EXPECT_EQ(v.ulysses_rank, AsInt(Field(expected, "ulysses_rank")));
    EXPECT_EQ(v.ulysses_world_size, AsInt(Field(expected, "ulysses_world_size")));
    EXPECT_EQ(v.ring_rank, AsInt(Field(expected, "ring_rank")));
    EXPECT_EQ(v.ring_world_size, AsInt(Field(expected, "ring_world_size")));
    EXPECT_EQ(v.is_pipeline_first_stage, Field(expected, "is_pipeline_first_stage").bool_value());
    EXPECT_EQ(v.is_pipeline_last_stage, Field(expected, "is_pipeline_last_stage").bool_value());
    EXPECT_EQ(v.is_dp_last_group, Field(expected, "is_dp_last_group").bool_value());
    EXPECT_EQ(v.dit_world_size, AsInt(Field(expected, "dit_world_size")));
    EXPECT_EQ(v.pp_next_rank, AsInt(Field(expected, "pp_next_rank")));
    EXPECT_EQ(v.pp_prev_rank, AsInt(Field(expected, "pp_prev_rank")));
    EXPECT_EQ(v.pp_skip_rank, AsInt(Field(expected, "pp_skip_rank")));
  }
}

INSTANTIATE_TEST_SUITE_P(Seed, GoldenTest, ::testing::ValuesIn(LoadCases()),
                         [](const ::testing::TestParamInfo<GoldenCase>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace cohort
