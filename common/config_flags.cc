#include "common/config_flags.h"

namespace cohort {

void ConfigFlags::Register(CLI::App* app, bool world_size_required) {
  auto* world = app->add_option("--world-size,-n", world_size,
                                "Number of ranks; must equal the product of the degrees");
  if (world_size_required) world->required();
  app->add_option("--dp", dp, "data_parallel_size (outermost dimension)")->capture_default_str();
  app->add_option("--cfg", cfg, "cfg_parallel_size (classifier-free guidance)")
      ->capture_default_str();
  app->add_option("--sp", sp, "sequence_parallel_size; default ulysses x ring, must equal it");
  app->add_option("--ulysses", ulysses, "ulysses_degree (all-to-all sequence parallelism)")
      ->capture_default_str();
  app->add_option("--ring", ring, "ring_degree (ring-attention sequence parallelism)")
      ->capture_default_str();
  app->add_option("--tp", tp, "tensor_parallel_size (innermost dimension)")->capture_default_str();
  app->add_option("--pp", pp, "pipeline_parallel_size")->capture_default_str();
  app->add_option("--fs", fs, "fully_shard_degree (HSDP shard size)")->capture_default_str();
  app->add_option("--hsdp-replicate", hsdp_replicate,
                  "hsdp_replicate_size (standalone HSDP replicas; needs --fs)")
      ->capture_default_str();
  app->add_flag("--ep", ep, "enable expert parallelism (needs --moe)");
  app->add_flag("--moe", moe, "the model is a mixture of experts");
  app->add_option("--ep-layout", ep_layout,
                  "expert-parallel layout: 'seed' (vllm-omni's contiguous blocks) or 'masked' "
                  "(one group per pipeline stage)")
      ->capture_default_str();
}

absl::StatusOr<ParallelConfig> ConfigFlags::ToConfig() const {
  ParallelConfig c;
  c.world_size = world_size;
  c.data_parallel_size = dp;
  c.cfg_parallel_size = cfg;
  c.sequence_parallel_size = sp;
  c.ulysses_degree = ulysses;
  c.ring_degree = ring;
  c.tensor_parallel_size = tp;
  c.pipeline_parallel_size = pp;
  c.fully_shard_degree = fs;
  c.hsdp_replicate_size = hsdp_replicate;
  c.enable_expert_parallel = ep;
  c.is_moe = moe;
  absl::StatusOr<EpLayout> layout = ParseEpLayout(ep_layout);
  if (!layout.ok()) return layout.status();
  c.ep_layout = *layout;
  return c;
}

}  // namespace cohort
