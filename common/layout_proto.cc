#include "common/layout_proto.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"

namespace cohort {
namespace {

google::protobuf::ListValue ToListValue(const RankList& ranks) {
  google::protobuf::ListValue list;
  for (int r : ranks) list.add_values()->set_number_value(r);
  return list;
}

google::protobuf::RepeatedPtrField<google::protobuf::ListValue>* DocumentGroupsField(
    v1::LayoutDocumentGroups& groups, GroupKind kind) {
  switch (kind) {
    case GroupKind::kWorld:
      return groups.mutable_world();
    case GroupKind::kDp:
      return groups.mutable_dp();
    case GroupKind::kCfg:
      return groups.mutable_cfg();
    case GroupKind::kPp:
      return groups.mutable_pp();
    case GroupKind::kUlysses:
      return groups.mutable_ulysses();
    case GroupKind::kRing:
      return groups.mutable_ring();
    case GroupKind::kSp:
      return groups.mutable_sp();
    case GroupKind::kTp:
      return groups.mutable_tp();
    case GroupKind::kFs:
      return groups.mutable_fs();
    case GroupKind::kEp:
      return groups.mutable_ep();
    case GroupKind::kDit:
      return groups.mutable_dit();
  }
  return nullptr;
}

// Fills the per-kind values of the golden per_rank maps (world, dp, cfg, pp, sp, tp, fs, ep).
void FillKindValues(const std::array<int, kNumGroupKinds>& values, bool has_ep,
                    v1::KindValues* out) {
  auto at = [&](GroupKind kind) { return values[static_cast<int>(kind)]; };
  out->set_world(at(GroupKind::kWorld));
  out->set_dp(at(GroupKind::kDp));
  out->set_cfg(at(GroupKind::kCfg));
  out->set_pp(at(GroupKind::kPp));
  out->set_sp(at(GroupKind::kSp));
  out->set_tp(at(GroupKind::kTp));
  out->set_fs(at(GroupKind::kFs));
  if (has_ep) out->set_ep(at(GroupKind::kEp));
}

}  // namespace

v1::ParallelConfig ToProto(const ParallelConfig& c) {
  v1::ParallelConfig p;
  p.set_world_size(c.world_size);
  p.set_data_parallel_size(c.data_parallel_size);
  p.set_cfg_parallel_size(c.cfg_parallel_size);
  if (c.sequence_parallel_size) p.set_sequence_parallel_size(*c.sequence_parallel_size);
  p.set_ulysses_degree(c.ulysses_degree);
  p.set_ring_degree(c.ring_degree);
  p.set_tensor_parallel_size(c.tensor_parallel_size);
  p.set_pipeline_parallel_size(c.pipeline_parallel_size);
  p.set_fully_shard_degree(c.fully_shard_degree);
  p.set_hsdp_replicate_size(c.hsdp_replicate_size);
  p.set_enable_expert_parallel(c.enable_expert_parallel);
  p.set_is_moe(c.is_moe);
  p.set_ep_layout(c.ep_layout == EpLayout::kSeed ? v1::EP_LAYOUT_SEED : v1::EP_LAYOUT_MASKED);
  return p;
}

ParallelConfig FromProto(const v1::ParallelConfig& p) {
  ParallelConfig c;
  c.world_size = p.has_world_size() ? p.world_size() : 1;
  c.data_parallel_size = p.has_data_parallel_size() ? p.data_parallel_size() : 1;
  c.cfg_parallel_size = p.has_cfg_parallel_size() ? p.cfg_parallel_size() : 1;
  if (p.has_sequence_parallel_size()) c.sequence_parallel_size = p.sequence_parallel_size();
  c.ulysses_degree = p.has_ulysses_degree() ? p.ulysses_degree() : 1;
  c.ring_degree = p.has_ring_degree() ? p.ring_degree() : 1;
  c.tensor_parallel_size = p.has_tensor_parallel_size() ? p.tensor_parallel_size() : 1;
  c.pipeline_parallel_size = p.has_pipeline_parallel_size() ? p.pipeline_parallel_size() : 1;
  c.fully_shard_degree = p.has_fully_shard_degree() ? p.fully_shard_degree() : 1;
  c.hsdp_replicate_size = p.has_hsdp_replicate_size() ? p.hsdp_replicate_size() : 1;
  c.enable_expert_parallel = p.enable_expert_parallel();
  c.is_moe = p.is_moe();
  c.ep_layout = p.ep_layout() == v1::EP_LAYOUT_MASKED ? EpLayout::kMasked : EpLayout::kSeed;
  return c;
}

v1::GroupKind ToProto(GroupKind kind) {
  return static_cast<v1::GroupKind>(static_cast<int>(kind) + 1);
}

absl::StatusOr<GroupKind> FromProto(v1::GroupKind kind) {
  const int k = static_cast<int>(kind) - 1;
  if (k < 0 || k >= kNumGroupKinds) {
    return absl::InvalidArgumentError(
        absl::StrCat("group kind ", static_cast<int>(kind), " is not a known kind"));
  }
  return static_cast<GroupKind>(k);
}

v1::Layout ToProto(const Layout& layout) {
  v1::Layout out;
  for (GroupKind kind : layout.kinds()) {
    v1::GroupSet* set = out.add_group_sets();
    set->set_kind(ToProto(kind));
    for (const RankList& g : layout.groups(kind)) {
      set->add_groups()->mutable_ranks()->Add(g.begin(), g.end());
    }
  }
  return out;
}

void SetRanks(const RankList& ranks, bool compact, v1::RankGroup* group) {
  group->clear_ranks();
  group->clear_compact();
  if (!compact) {
    group->mutable_ranks()->Add(ranks.begin(), ranks.end());
    return;
  }
  v1::CompactRanks* runs = group->mutable_compact();
  for (size_t i = 0; i < ranks.size();) {
    v1::RankRun* run = runs->add_runs();
    run->set_first(ranks[i]);
    const int stride = i + 1 < ranks.size() ? ranks[i + 1] - ranks[i] : 1;
    size_t end = i + 1;
    while (end < ranks.size() && ranks[end] - ranks[end - 1] == stride) ++end;
    run->set_count(static_cast<int>(end - i));
    run->set_stride(stride);
    i = end;
  }
}

absl::StatusOr<RankList> RanksOf(const v1::RankGroup& group, int world) {
  if (group.ranks_size() > 0 && group.has_compact()) {
    return absl::InvalidArgumentError("a group lists its ranks and has runs: give one form");
  }
  if (group.ranks_size() == 0 && group.compact().runs_size() == 0) {
    return absl::InvalidArgumentError("a group has no ranks");
  }
  RankList ranks;
  auto add = [&](int64_t r) -> absl::Status {
    if (r < 0 || r >= world) {
      return absl::InvalidArgumentError(
          absl::StrCat("a group has rank ", r, ", outside the world of ", world));
    }
    if (!ranks.empty() && r <= ranks.back()) {
      return absl::InvalidArgumentError(
          absl::StrCat("a group's ranks are not ascending (", ranks.back(), " then ", r, ")"));
    }
    ranks.push_back(static_cast<int>(r));
    return absl::OkStatus();
  };
  for (int r : group.ranks()) {
    if (absl::Status s = add(r); !s.ok()) return s;
  }
  for (const v1::RankRun& run : group.compact().runs()) {
    if (run.count() < 1 || (run.count() > 1 && run.stride() < 1)) {
      return absl::InvalidArgumentError(absl::StrCat("a group has a run of ", run.count(),
                                                     " ranks with stride ", run.stride(),
                                                     ": count and stride must be >= 1"));
    }
    // Ascending ranks inside [0, world): at most `world` of them, so this loop ends early on a
    // run that claims more.
    for (int64_t k = 0; k < run.count(); ++k) {
      if (absl::Status s = add(int64_t{run.first()} + k * run.stride()); !s.ok()) return s;
    }
  }
  return ranks;
}

v1::RankRecord ToRankRecord(const RankView& v, bool has_ep) {
  v1::RankRecord r;
  r.set_rank(v.rank);
  FillKindValues(v.rank_in_group, has_ep, r.mutable_rank_in_group());
  FillKindValues(v.group_size, has_ep, r.mutable_group_world_size());
  r.set_ulysses_rank(v.ulysses_rank);
  r.set_ulysses_world_size(v.ulysses_world_size);
  r.set_ring_rank(v.ring_rank);
  r.set_ring_world_size(v.ring_world_size);
  r.set_is_pipeline_first_stage(v.is_pipeline_first_stage);
  r.set_is_pipeline_last_stage(v.is_pipeline_last_stage);
  r.set_is_dp_last_group(v.is_dp_last_group);
  r.set_dit_world_size(v.dit_world_size);
  r.set_pp_next_rank(v.pp_next_rank);
  r.set_pp_prev_rank(v.pp_prev_rank);
  r.set_pp_skip_rank(v.pp_skip_rank);
  return r;
}

v1::LayoutDocument ToLayoutDocument(const Layout& layout, std::optional<int> rank) {
  v1::LayoutDocument doc;
  doc.set_valid(true);
  for (GroupKind kind : layout.kinds()) {
    auto* field = DocumentGroupsField(*doc.mutable_groups(), kind);
    for (const RankList& g : layout.groups(kind)) *field->Add() = ToListValue(g);
  }
  if (rank.has_value()) {
    *doc.mutable_per_rank() = ToRankRecord(layout.ViewOf(*rank), layout.has(GroupKind::kEp));
  }
  return doc;
}

std::string ToJson(const google::protobuf::Message& message, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;  // compact by default: one line a document, for jq and grep
  options.preserve_proto_field_names = true;
  std::string out;
  // Printing a valid message cannot fail; an empty string would show if it ever did.
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

}  // namespace cohort
