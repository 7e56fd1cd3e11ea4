// fuzz_config: hostile parallel configurations. The first byte selects the interpretation of
// the rest:
//   even: a binary v1::ParallelConfig (as Initialize, startup pools and held state carry it):
//         FromProto -> ValidateParallelConfig (always) -> Layout::Build and layout invariants
//         (worlds up to kMaxBuildWorld), ToProto round trip, the JSON layout document;
//   odd:  `cohortctl layout` arguments (tokens separated by NUL, space or newline): CLI11
//         parsing of ConfigFlags, then LayoutCommand::Run for worlds up to kMaxBuildWorld.
// Contract checks that abort (findings): a config that validates builds; every kind partitions
// the world with ascending members and consistent indices; the proto round trip is lossless;
// `cohortctl layout` exits 0 or 2, and on 2 prints nothing on stdout and one `error:` line.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "cli/layout_command.h"
#include "common/layout.h"
#include "common/layout_proto.h"
#include "common/parallel_config.h"
#include "spdlog/spdlog.h"

namespace cohort::fuzz {
namespace {

// Layouts are built (and checked) only up to this world, to keep executions fast; validation
// runs on everything.
constexpr int64_t kMaxBuildWorld = 4096;

[[noreturn]] void Finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_config: contract broken: %s\n", what.c_str());
  std::abort();
}

void CheckLayout(const ParallelConfig& config, const Layout& layout) {
  const int world = layout.world_size();
  if (world != config.world_size) {
    Finding(absl::StrCat("layout world ", world, " != config world ", config.world_size));
  }
  for (GroupKind kind : layout.kinds()) {
    std::vector<int> seen(world, 0);
    const RankGroups& groups = layout.groups(kind);
    for (size_t g = 0; g < groups.size(); ++g) {
      const RankList& members = groups[g];
      if (members.empty()) Finding(absl::StrCat(GroupKindName(kind), " group ", g, " is empty"));
      for (size_t i = 0; i < members.size(); ++i) {
        const int r = members[i];
        if (r < 0 || r >= world) {
          Finding(absl::StrCat(GroupKindName(kind), " group ", g, " holds rank ", r,
                               " outside the world of ", world));
        }
        if (i > 0 && members[i - 1] >= r) {
          Finding(absl::StrCat(GroupKindName(kind), " group ", g, " does not ascend"));
        }
        if (++seen[r] > 1) {
          Finding(absl::StrCat(GroupKindName(kind), ": rank ", r, " in two groups"));
        }
        if (layout.GroupIndexOf(kind, r) != static_cast<int>(g) ||
            layout.RankInGroup(kind, r) != static_cast<int>(i)) {
          Finding(absl::StrCat(GroupKindName(kind), ": index of rank ", r, " is inconsistent"));
        }
      }
    }
    for (int r = 0; r < world; ++r) {
      if (seen[r] != 1) Finding(absl::StrCat(GroupKindName(kind), ": rank ", r, " in no group"));
    }
  }
  (void)layout.ViewOf(0);
  (void)layout.ViewOf(world - 1);
  if (world <= 256) {
    (void)ToJson(ToLayoutDocument(layout, world - 1));
    (void)ToProto(layout);
  }
}

void FuzzProto(const uint8_t* data, size_t size) {
  v1::ParallelConfig proto;
  if (!proto.ParseFromArray(data, static_cast<int>(size))) return;
  const ParallelConfig config = FromProto(proto);
  absl::StatusOr<DerivedSizes> derived = ValidateParallelConfig(config);
  (void)config.ShortString();
  if (!derived.ok()) {
    if (derived.status().message().empty()) Finding("validation error without a message");
    return;
  }
  // The wire form of a valid config reads back as the same config.
  const ParallelConfig back = FromProto(ToProto(config));
  if (ToProto(back).SerializeAsString() != ToProto(config).SerializeAsString()) {
    Finding("ToProto/FromProto round trip changed a valid config");
  }
  if (config.world_size > kMaxBuildWorld) return;
  absl::StatusOr<Layout> layout = Layout::Build(config);
  if (!layout.ok()) {
    Finding(absl::StrCat("validated config fails to build: ", layout.status().ToString()));
  }
  CheckLayout(config, *layout);
}

void FuzzFlags(const uint8_t* data, size_t size) {
  std::vector<std::string> tokens;
  std::string current;
  for (size_t i = 0; i < size && tokens.size() < 32; ++i) {
    const char c = static_cast<char>(data[i]);
    if (c == '\0' || c == ' ' || c == '\n') {
      if (!current.empty()) tokens.push_back(std::move(current));
      current.clear();
    } else {
      current.push_back(c);
    }
  }
  if (!current.empty() && tokens.size() < 32) tokens.push_back(std::move(current));

  CLI::App app("cohortctl");
  cli::LayoutCommand command;
  CLI::App* sub = command.Register(&app);
  std::vector<std::string> args = {"layout"};
  args.insert(args.end(), tokens.begin(), tokens.end());
  std::reverse(args.begin(), args.end());  // CLI11 parses a vector back to front
  try {
    app.parse(args);
  } catch (const CLI::ParseError&) {
    return;  // cohortctl prints CLI11's message and exits 2
  }
  if (!sub->parsed()) return;
  absl::StatusOr<ParallelConfig> config = command.flags.ToConfig();
  if (config.ok()) {
    absl::StatusOr<DerivedSizes> derived = ValidateParallelConfig(*config);
    if (derived.ok() && config->world_size > kMaxBuildWorld) return;
  }
  std::ostringstream out, err;
  const int status = command.Run(out, err);
  if (status == 0) return;
  if (status != 2) Finding(absl::StrCat("cohortctl layout exited ", status));
  const std::string e = err.str();
  if (!out.str().empty()) Finding("cohortctl layout failed but printed on stdout");
  if (e.rfind("error: ", 0) != 0 || e.find('\n') != e.size() - 1) {
    Finding(absl::StrCat("cohortctl layout's error is not one `error:` line: ", e));
  }
}

}  // namespace
}  // namespace cohort::fuzz

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  if (data[0] % 2 == 0) {
    cohort::fuzz::FuzzProto(data + 1, size - 1);
  } else {
    cohort::fuzz::FuzzFlags(data + 1, size - 1);
  }
  return 0;
}
