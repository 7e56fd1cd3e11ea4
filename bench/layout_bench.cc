// Layout engine speed: the full layout of a 4,096-rank world and every rank's view of it.
#include <benchmark/benchmark.h>

#include "common/layout.h"
#include "common/layout_proto.h"

namespace cohort {
namespace {

ParallelConfig World4096() {
  // tp8 x ulysses8 x ring4 x pp4 x cfg2 x dp2
  return {.world_size = 4096,
          .data_parallel_size = 2,
          .cfg_parallel_size = 2,
          .ulysses_degree = 8,
          .ring_degree = 4,
          .tensor_parallel_size = 8,
          .pipeline_parallel_size = 4};
}

void BM_Validate4096(benchmark::State& state) {
  const ParallelConfig config = World4096();
  for (auto _ : state) benchmark::DoNotOptimize(ValidateParallelConfig(config));
}
BENCHMARK(BM_Validate4096);

void BM_BuildLayout4096(benchmark::State& state) {
  const ParallelConfig config = World4096();
  for (auto _ : state) {
    absl::StatusOr<Layout> layout = Layout::Build(config);
    benchmark::DoNotOptimize(layout);
  }
  state.SetLabel("tp8 x ulysses8 x ring4 x pp4 x cfg2 x dp2");
}
BENCHMARK(BM_BuildLayout4096)->Unit(benchmark::kMillisecond);

void BM_BuildLayoutAndEveryRankView4096(benchmark::State& state) {
  const ParallelConfig config = World4096();
  for (auto _ : state) {
    absl::StatusOr<Layout> layout = Layout::Build(config);
    for (int r = 0; r < layout->world_size(); ++r) benchmark::DoNotOptimize(layout->ViewOf(r));
  }
}
BENCHMARK(BM_BuildLayoutAndEveryRankView4096)->Unit(benchmark::kMillisecond);

void BM_LayoutToProto4096(benchmark::State& state) {
  absl::StatusOr<Layout> layout = Layout::Build(World4096());
  for (auto _ : state) benchmark::DoNotOptimize(ToProto(*layout));
}
BENCHMARK(BM_LayoutToProto4096)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace cohort

BENCHMARK_MAIN();
