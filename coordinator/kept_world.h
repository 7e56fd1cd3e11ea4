// KeptWorld: the world communicator a pool keeps across a model-parallel destroy, and the rule
// for reusing it. A clean DESTROY_SCOPE_MODEL_PARALLEL teardown of a READY generation leaves
// every agent holding its world communicator; the next generation reuses it (no rebuild) only
// if the very same processes (incarnations) hold the very same ranks. Anything else — a member
// lost, a failed generation, a new world size — drops it.
//
// Thread safety: none; the Coordinator guards each pool's KeptWorld with its lock.
#ifndef COHORT_COORDINATOR_KEPT_WORLD_H_
#define COHORT_COORDINATOR_KEPT_WORLD_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace cohort::coordinator {

class KeptWorld {
 public:
  // Whether the agents hold a world communicator from an earlier generation.
  bool alive() const { return alive_; }
  // The generation that built it (meaningful while alive).
  int64_t generation() const { return generation_; }

  // The world of `generation` is kept; `incarnations`: rank -> the incarnation holding it.
  void Keep(int64_t generation, std::map<int, std::string> incarnations);
  // Nothing is kept (any more).
  void Drop();

  // Whether a generation of `world` ranks can reuse the kept world: it is alive and every rank
  // of [0, world) is held by the incarnation that held it when kept. `incarnation_at(r)`: the
  // incarnation holding rank r now, or null when nobody does.
  bool ReusableBy(int world, const std::function<const std::string*(int)>& incarnation_at) const;

 private:
  bool alive_ = false;
  int64_t generation_ = 0;
  std::map<int, std::string> incarnations_;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_KEPT_WORLD_H_
