// Teardown: what one pool's teardown in progress (phase DESTROYING) is — its scope, whether it
// tears down a READY generation, whether every report so far was clean — and the two rules that
// follow from it: how failures become the pool's error, and whether the agents keep their world
// communicator afterwards. Which members have reported stays on each Member (teardown_reported):
// a member leaves with its report. The Coordinator sends the Teardown messages, runs the
// deadline and moves the phase; this only keeps the record.
//
// Thread safety: none; the Coordinator guards each pool's Teardown with its lock.
#ifndef COHORT_COORDINATOR_TEARDOWN_H_
#define COHORT_COORDINATOR_TEARDOWN_H_

#include <string>

#include "cohort/v1/admin.pb.h"

namespace cohort::coordinator {

class Teardown {
 public:
  // A teardown of `scope` starts; `from_ready`: the generation it tears down was READY;
  // `reason`: why, as the agents' Teardown messages and the store's refusals say it. Clean until
  // a failure is recorded.
  void Start(v1::DestroyScope scope, bool from_ready, std::string reason = "destroy requested");

  v1::DestroyScope scope() const { return scope_; }
  bool from_ready() const { return from_ready_; }
  // No failure recorded since Start.
  bool ok() const { return ok_; }
  const std::string& reason() const { return reason_; }

  // Records a failure (a member failed its teardown, was lost during it, or did not report in
  // time) and returns the pool's error after it, given the error it has now: the teardown's
  // first failure replaces the error the pool had before the destroy (that one is history, in
  // the events); later failures are appended, "; "-separated.
  std::string Fail(const std::string& pool_error, const std::string& failure);

  // Whether the agents keep their world communicator afterwards: only a clean model-parallel
  // teardown of a READY generation leaves it intact on every rank.
  bool KeepsWorld() const;
  // What it destroys, as events and logs say it: "everything" or "model-parallel groups".
  const char* What() const;

 private:
  v1::DestroyScope scope_ = v1::DESTROY_SCOPE_MODEL_PARALLEL;
  bool from_ready_ = false;
  bool ok_ = true;
  std::string reason_;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_TEARDOWN_H_
