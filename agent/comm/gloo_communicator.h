// GlooCommunicator: one group's full-mesh gloo::Context as a Communicator (the ops), and the
// pieces of Gloo's edge that the backend's mesh connect (gloo_backend.cc) shares with it: the
// exception edge (GlooCall), timeouts in Gloo's units, and failing a transport context's pairs
// (Gloo's own abort path; see "Reaching Gloo's abort path" in gloo_communicator.cc). Internal to
// agent/comm: users create communicators through GlooBackend.

#ifndef COHORT_AGENT_COMM_GLOO_COMMUNICATOR_H_
#define COHORT_AGENT_COMM_GLOO_COMMUNICATOR_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/comm/communicator.h"
#include "gloo/common/error.h"
#include "gloo/context.h"

namespace gloo::transport {
class Context;
class Device;
}  // namespace gloo::transport

namespace cohort::agent {

// A duration in Gloo's unit, clamped to what Gloo accepts (at least 1 ms, at most 10 h).
std::chrono::milliseconds ToChrono(absl::Duration d);

// The exception edge: every call into Gloo goes through here. IoException timeouts become
// DEADLINE_EXCEEDED, other IoExceptions UNAVAILABLE, anything else INTERNAL.
template <typename F>
absl::Status GlooCall(F&& f) {
  try {
    f();
    return absl::OkStatus();
  } catch (const gloo::IoException& e) {
    // Gloo reports its timeouts as IoException: "Timed out waiting 500ms for recv operation",
    // "Connect timeout", "Read timeout".
    const absl::string_view msg = e.what();
    if (absl::StrContains(msg, "imed out") || absl::StrContains(msg, "timeout")) {
      return absl::DeadlineExceededError(absl::StrCat("gloo: ", msg));
    }
    return absl::UnavailableError(absl::StrCat("gloo: ", msg));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("gloo: ", e.what()));
  } catch (...) {
    return absl::InternalError("gloo: unknown exception");
  }
}

// Fails every pair of `transport` (a connect or op waiting on one of them throws at once).
// Returns false when the transport is not Gloo's TCP one. Pairs must not be created concurrently
// (their vector would change under us): callers signal a context only once all its pairs exist.
bool SignalTransport(gloo::transport::Context& transport, const std::string& msg);

// What gloo::rendezvous::Context::connectFullMesh does at its end: `context` now uses
// `transport` (whose pairs are connected) over `device`.
void InstallTransport(gloo::Context& context, std::shared_ptr<gloo::transport::Device> device,
                      std::shared_ptr<gloo::transport::Context> transport);

class GlooCommunicator final : public Communicator {
 public:
  // `context` is connected (InstallTransport); the communicator is kCreating until Ready().
  GlooCommunicator(GroupSpec group, absl::Duration default_timeout,
                   std::shared_ptr<gloo::Context> context);
  ~GlooCommunicator() override;

  void Ready(GroupTiming timing) { MarkReady(std::move(timing)); }

  absl::string_view backend_name() const override { return "gloo"; }
  void* raw_handle() const override { return raw_.load(); }

 protected:
  absl::Status DoAllReduce(void* buf, size_t count, DataType dtype, ReduceOp op,
                           absl::Duration timeout) override;
  absl::Status DoAllGather(const void* in, void* out, size_t count, DataType dtype,
                           absl::Duration timeout) override;
  absl::Status DoBroadcast(void* buf, size_t count, DataType dtype, int root,
                           absl::Duration timeout) override;
  absl::Status DoBarrier(absl::Duration timeout) override;
  absl::Status DoSend(const void* buf, size_t count, DataType dtype, int peer,
                      absl::Duration timeout) override;
  absl::Status DoRecv(void* buf, size_t count, DataType dtype, int peer,
                      absl::Duration timeout) override;
  absl::Status DoAllToAll(const void* in, void* out, size_t count_per_peer, DataType dtype,
                          absl::Duration timeout) override;
  // Fails every pair of the context (Gloo's own failure path), so a blocked op throws at once.
  void Interrupt() override;
  // Dropping the context closes its sockets; Gloo's teardown is local and does not wait for
  // peers, so orderly and abort are the same here (abort already failed the pairs).
  absl::Status Release(bool abort, absl::Time deadline) override;

 private:
  // Tags keep consecutive collectives apart on the wire (Gloo matches by slot = prefix + tag).
  // Ops are serialized by the base class and every rank issues the same sequence, so the ranks'
  // counters agree.
  uint32_t NextTag() { return next_tag_++; }

  std::shared_ptr<gloo::Context> context_;
  std::atomic<void*> raw_;
  uint32_t next_tag_ = 1;
};

}  // namespace cohort::agent

#endif  // COHORT_AGENT_COMM_GLOO_COMMUNICATOR_H_
