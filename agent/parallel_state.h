// The seed's API (vllm_omni.diffusion.distributed.parallel_state) for an inference engine that
// embeds the agent: one process per rank, process-wide state, the same function names.
//
//   init_distributed_environment(options)      joins the pool (rank from the coordinator)
//   initialize_model_parallel(config)          every rank passes the same config; the first
//                                              call sets it on the coordinator, the others
//                                              check it matches; returns once this rank's
//                                              groups are built and verified
//   get_tp_group()->comm().AllReduce(...)      use the groups
//   destroy_model_parallel()                   tears down all but the world
//   destroy_distributed_environment()          tears down everything and leaves the pool
//
// Differences from the seed, on purpose: errors are absl::Status values, never asserts or hangs
// (every call has a timeout); group getters return shared pointers (nullptr when not
// initialized) that stay safe after a teardown (their collectives then fail with an error);
// rank and size getters return -1 when not initialized; the world communicator is built together
// with the model-parallel groups by initialize_model_parallel (init_distributed_environment only
// joins).
#ifndef COHORT_AGENT_PARALLEL_STATE_H_
#define COHORT_AGENT_PARALLEL_STATE_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/agent.h"
#include "common/parallel_config.h"

namespace cohort {

struct ModelParallelOptions {
  // The degrees. world_size 0 means the pool's world size as the coordinator knows it.
  ParallelConfig config;
  std::string backend = "gloo";
  absl::Duration timeout = absl::Seconds(120);
};

// Errors: FAILED_PRECONDITION if already initialized; the agent's Start() errors.
absl::Status init_distributed_environment(const agent::AgentOptions& options);
// Errors: FAILED_PRECONDITION before init_distributed_environment; INVALID_ARGUMENT for a bad
// config or one that differs from the config the pool is being built with; the generation's
// failure; DEADLINE_EXCEEDED.
absl::Status initialize_model_parallel(const ModelParallelOptions& options);
absl::Status destroy_model_parallel(absl::Duration timeout = absl::Seconds(60));
absl::Status destroy_distributed_environment(absl::Duration timeout = absl::Seconds(60));
bool model_parallel_is_initialized();

// The embedded agent (nullptr before init_distributed_environment).
agent::Agent* get_agent();

std::shared_ptr<const agent::Group> get_world_group();
std::shared_ptr<const agent::Group> get_dp_group();
std::shared_ptr<const agent::Group> get_cfg_group();
std::shared_ptr<const agent::Group> get_pp_group();
std::shared_ptr<const agent::Group> get_sp_group();
std::shared_ptr<const agent::Group> get_ulysses_group();
std::shared_ptr<const agent::Group> get_ring_group();
std::shared_ptr<const agent::Group> get_tp_group();
std::shared_ptr<const agent::Group> get_fs_group();
std::shared_ptr<const agent::Group> get_ep_group();
std::shared_ptr<const agent::Group> get_dit_group();

int get_data_parallel_world_size();
int get_data_parallel_rank();
int get_classifier_free_guidance_world_size();
int get_classifier_free_guidance_rank();
int get_pipeline_parallel_world_size();
int get_pipeline_parallel_rank();
int get_sequence_parallel_world_size();
int get_sequence_parallel_rank();
int get_ulysses_parallel_world_size();
int get_ulysses_parallel_rank();
int get_ring_parallel_world_size();
int get_ring_parallel_rank();
int get_tensor_model_parallel_world_size();
int get_tensor_model_parallel_rank();
int get_fully_shard_world_size();
int get_fully_shard_rank();
int get_dit_world_size();
bool is_pipeline_first_stage();
bool is_pipeline_last_stage();
// As in the seed: last in its sp, cfg and pp groups (ignores dp and tp).
bool is_dp_last_group();

}  // namespace cohort

#endif  // COHORT_AGENT_PARALLEL_STATE_H_
