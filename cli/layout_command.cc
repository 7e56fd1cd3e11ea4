#include "cli/layout_command.h"

#include "absl/strings/str_cat.h"
#include "cli/output.h"
#include "cli/table.h"
#include "common/layout_proto.h"

namespace cohort::cli {
namespace {

const char* YesNo(bool b) { return b ? "yes" : "no"; }

}  // namespace

CLI::App* LayoutCommand::Register(CLI::App* app) {
  CLI::App* cmd = app->add_subcommand(
      "layout", "Compute the groups of a parallel configuration offline (no coordinator needed)");
  cmd->footer(
      "Groups follow vllm-omni's parallel_state exactly: dimensions tp-sp-pp-cfg-dp, innermost\n"
      "first, with sp split into ulysses and ring groups.\n\n"
      "Examples:\n"
      "  cohortctl layout --world-size 8 --dp 2 --cfg 2 --ulysses 2\n"
      "  cohortctl layout -n 16 --tp 2 --ulysses 2 --ring 2 --pp 2 --rank 5 -o json");
  flags.Register(cmd, /*world_size_required=*/true);
  cmd->add_option("--rank,-r", rank, "Show the view of this rank (0 <= R < world size)");
  cmd->add_option("--output,-o", output, "Output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  return cmd;
}

int LayoutCommand::Run(std::ostream& out, std::ostream& err) const {
  absl::StatusOr<ParallelConfig> config = flags.ToConfig();
  absl::StatusOr<Layout> layout =
      config.ok() ? Layout::Build(*config) : absl::StatusOr<Layout>(config.status());
  if (!layout.ok()) {
    err << "error: " << layout.status().message() << "\n";
    return 2;
  }
  if (rank.has_value() && (*rank < 0 || *rank >= layout->world_size())) {
    err << "error: --rank " << *rank << " is outside the world; use 0.." << layout->world_size() - 1
        << "\n";
    return 2;
  }
  std::optional<int> r;
  if (rank.has_value()) r = static_cast<int>(*rank);
  if (output == "json") {
    // The one document without defaults: the golden format has no "ep" key for a layout
    // without expert parallelism, and printing defaults would add "ep": [].
    out << JsonDocument(ToLayoutDocument(*layout, r), /*print_defaults=*/false) << "\n";
  } else if (r.has_value()) {
    PrintRankTable(*layout, *r, out);
  } else {
    PrintLayoutTable(*layout, out);
  }
  return 0;
}

void PrintLayoutTable(const Layout& layout, std::ostream& out) {
  out << "layout: " << layout.config().ShortString() << "\n\n";
  Table table({"KIND", "GROUPS", "SIZE", "MEMBERS"});
  for (GroupKind kind : layout.kinds()) {
    const RankGroups& groups = layout.groups(kind);
    std::string members;
    for (const RankList& g : groups) {
      if (!members.empty()) members += " ";
      members += FormatRanks(g);
    }
    table.AddRow({std::string(GroupKindName(kind)), absl::StrCat(groups.size()),
                  absl::StrCat(groups.front().size()), members});
  }
  table.Print(out);
}

void PrintRankTable(const Layout& layout, int rank, std::ostream& out) {
  const RankView v = layout.ViewOf(rank);
  out << "rank " << rank << " of " << layout.world_size() << " in " << layout.config().ShortString()
      << "\n\n";
  Table table({"KIND", "GROUP", "RANK_IN_GROUP", "SIZE", "MEMBERS"});
  for (GroupKind kind : layout.kinds()) {
    const int k = static_cast<int>(kind);
    table.AddRow({std::string(GroupKindName(kind)), absl::StrCat(v.group_index[k]),
                  absl::StrCat(v.rank_in_group[k]), absl::StrCat(v.group_size[k]),
                  FormatRanks(layout.GroupOf(kind, rank))});
  }
  table.Print(out);
  out << "\n";
  Table facts({"PROPERTY", "VALUE"});
  facts.AddRow({"pipeline first/last stage", absl::StrCat(YesNo(v.is_pipeline_first_stage), "/",
                                                          YesNo(v.is_pipeline_last_stage))});
  facts.AddRow({"pp next/prev/skip rank",
                absl::StrCat(v.pp_next_rank, "/", v.pp_prev_rank, "/", v.pp_skip_rank)});
  facts.AddRow({"is_dp_last_group", YesNo(v.is_dp_last_group)});
  facts.AddRow({"dit_world_size", absl::StrCat(v.dit_world_size)});
  facts.Print(out);
}

}  // namespace cohort::cli
