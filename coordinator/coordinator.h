// Coordinator: the facade of the coordinator's logic — membership, pools and generations,
// plans, reports, teardown, recovery and the rendezvous store — with no gRPC types. It holds the
// one lock and wires the parts together. The gRPC adapters (AgentServiceImpl and
// AdminServiceImpl in services.h) turn RPCs into calls on it, with the Caller of each.
//
// The parts, each with its own tests:
//   Roster (roster.h)              a pool's members, rank assignment, standby promotion and
//                                  reassignment plans, durable identity -> rank
//   EventLog (event_log.h)         event numbering, bounded per-pool history, Watch streams and
//                                  listeners (metrics, health)
//   KvStore (kv_store.h)           one generation's rendezvous store and its waiters
//   ShrinkDp, CanGrowBack          elastic dp as pure functions of the config (elastic_dp.h)
//   ElasticDpState                 the config to grow back to, and a grow-back in progress
//                                  (elastic_dp_state.h)
//   BuildPlan (plan.h)             the plan each rank of a generation gets
//   agent_input.h                  the checks and cleaning of what agents send
//   StateStore, StatePersister     the durable state, saved outside the lock and coalesced
//                                  (state_store.h, state_persister.h)
//   Caller, Authorizer             who calls, and whether they may (caller.h, authorizer.h);
//                                  PolicyAuthorizer (policy.h), the audit log (audit.h)
//   CheckStoreKeys                 the store's key scheme and ownership (store_access.h)
//   SessionTable (session_table.h) live session ids -> pool and identity; the ids themselves
//   HeartbeatMonitor               which members are overdue, and the coordinator's own stalls
//                                  (heartbeat_monitor.h)
//   GenerationTracker              the ranks READY in the generation being built, its build time
//                                  (generation_tracker.h)
//   Teardown (teardown.h)          the teardown in progress: scope, origin, failures -> the
//                                  pool's error, whether the world is kept
//   StateWaiters (state_waiters.h) a pool's WaitForState long-polls
//   JudgeRecovery (recovery.h)     whether a restarted coordinator can restore a pool from what
//                                  its members hold
// What stays here: pools and their phases (below), and applying what the parts decide: the
// messages to agents, events, timers, the durable state and recovery. The parts are plain
// classes with no lock of their own, used only under mu_.
//
// Pool phases (every change is an EVENT_KIND_PHASE event and a PoolState transition):
//
//   WAITING --(a config, and every rank attached)--> INITIALIZING --(all READY)--> READY
//   INITIALIZING --(an error report, or the deadline)--> FAILED
//   INITIALIZING, READY --(a member lost)--> DEGRADED
//   DEGRADED --(every rank attached again: the same identity back, or a standby; after a
//       loss, not before --regroup-settle has passed since the last loss, or
//       --regroup-settle-max since the first)-->
//       INITIALIZING (the next generation, same layout)
//   DEGRADED --(elastic dp: a replica still missing after --elastic-dp-after)--> WAITING
//       (dp shrunk); READY --(elastic dp: agents enough for the full config)--> DESTROYING -->
//       WAITING (the full config back)
//   INITIALIZING, READY, FAILED, DEGRADED (or DESTROYED keeping the world, scope ALL)
//       --Destroy--> DESTROYING --(every report, or the teardown deadline)--> DESTROYED
//   WAITING, FAILED, DEGRADED, DESTROYED --Initialize--> WAITING (the new config)
//   RECOVERING (a restarted coordinator): every rank back and holding the same READY
//       generation -> READY at that generation (DESTROYED when they hold only the world),
//       nothing rebuilt; otherwise (conflicting reports, or not all back within the attach
//       timeout) holders abort -> WAITING, and the next generation starts.
//
// Rank assignment: see roster.h. A new incarnation of an identity whose session is gone takes
// that identity's old rank; a second live incarnation is refused.
//
// Thread safety: every public method may be called from any thread. Callbacks passed in (KV
// gets, state waits) run without the coordinator's lock held; SessionSink::Send, WatchSink::Send
// and event listeners are called under the lock and must only enqueue. The durable state is
// saved after the lock is released (FlushState).
#ifndef COHORT_COORDINATOR_COORDINATOR_H_
#define COHORT_COORDINATOR_COORDINATOR_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cohort/v1/admin.pb.h"
#include "cohort/v1/agent.pb.h"
#include "common/clock.h"
#include "common/layout.h"
#include "common/timer_queue.h"
#include "coordinator/authorizer.h"
#include "coordinator/caller.h"
#include "coordinator/elastic_dp_state.h"
#include "coordinator/event_log.h"
#include "coordinator/generation_tracker.h"
#include "coordinator/heartbeat_monitor.h"
#include "coordinator/kept_world.h"
#include "coordinator/kv_store.h"
#include "coordinator/limits.h"
#include "coordinator/phase_history.h"
#include "coordinator/plan.h"
#include "coordinator/roster.h"
#include "coordinator/session_table.h"
#include "coordinator/state_persister.h"
#include "coordinator/state_store.h"
#include "coordinator/state_waiters.h"
#include "coordinator/teardown.h"

namespace cohort::coordinator {

// The status message of a session closed, or a join refused, by a coordinator that is stopping
// to be replaced (Coordinator::BeginShutdown).
inline constexpr char kCoordinatorRestarting[] = "coordinator restarting; retry";

// Where the coordinator sends a member's session messages (the gRPC stream, or a test fake).
class SessionSink {
 public:
  virtual ~SessionSink() = default;
  // Queues a message; must not block or call back into the Coordinator.
  virtual void Send(const v1::CoordinatorMessage& message) = 0;
  // Ends the session from the coordinator's side (after queued messages are written) with `why`:
  // OK after a planned leave; UNAVAILABLE when the coordinator is restarting (the agent joins
  // again at once, keeping its communicators); ABORTED otherwise (superseded, missed heartbeats,
  // pool deleted).
  virtual void Close(const absl::Status& why) = 0;
};

struct CoordinatorOptions {
  // Heartbeat interval agents are told to keep, and how many may be missed before a member is
  // declared lost.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  int heartbeat_misses = 3;
  // How long a joined agent may take to attach its session.
  absl::Duration attach_timeout = absl::Seconds(30);
  // Default generation deadline when Initialize does not give one.
  absl::Duration default_init_deadline = absl::Seconds(60);
  // How long Destroy waits for teardown reports before declaring the pool destroyed anyway.
  absl::Duration teardown_deadline = absl::Seconds(30);
  // Where the small durable state (pool configs, identity -> rank) is written atomically after
  // every change (outside the lock, coalesced: see FlushState), and read back at startup.
  // Empty: nothing is persisted. Used by the constructor that takes no StateStore.
  std::string state_file;
  // --state-file-reset: CoordinatorServer::Start checks the state file (StateFile::Open) before
  // it builds the Coordinator; a file that does not parse or validate is moved aside and the
  // coordinator starts empty instead of refusing to start. The Coordinator itself never
  // touches a bad file: it logs, starts empty and does not write the state file.
  bool state_file_reset = false;
  // Refill the rank of a lost member with a standby at once (instead of waiting for the same
  // identity to come back).
  bool refill_from_standby = true;
  // Elastic data parallelism: when a whole dp replica is lost and nothing refills it within
  // this long, shrink dp and rebuild; grow back when agents return. Zero: off.
  absl::Duration elastic_dp_after = absl::ZeroDuration();
  // After a member is lost (or leaves), how long a DEGRADED pool waits before it starts the next
  // generation, so that losses arriving together are rebuilt by one generation instead of one
  // each (every generation aborts and re-plans all N ranks: at 4,096 agents, 41 deaths in quick
  // succession cost 41 generations). The window opens at the first loss; each later loss inside
  // it pushes the start back to `regroup_settle` after itself, but never past
  // `regroup_settle_max` after the first loss. 250 ms covers the deaths of one node's agents,
  // whose sessions end within milliseconds of each other, and is small next to a generation's
  // NCCL init (seconds); pushing back covers a kill of 1 % of 16,384 agents, whose losses reach
  // the coordinator over a second on a loaded machine (a start 250 ms after the first one was
  // failed by the next loss at once, five times over). Losses found by the heartbeat sweep come
  // one sweep (the heartbeat interval) apart at worst; a window longer than the interval
  // coalesces those too. An operator's Initialize starts at once; a failure that is not a loss
  // (an error report, the deadline, a communicator error) does not wait. Zero: start at once.
  absl::Duration regroup_settle = absl::Milliseconds(250);
  // The cap on the window: the start comes at most this long after the first loss (at least
  // regroup_settle).
  absl::Duration regroup_settle_max = absl::Seconds(2);
  // Events kept per pool (the oldest are dropped first).
  size_t event_log_size = 1000;
  // Create a pool when an agent joins an unknown one (otherwise only `pools` and those made by
  // Initialize exist). The coordinator's --auto-create-pools / --no-auto-create-pools.
  bool create_pools_on_join = true;
  // Who may do what (authorizer.h); null: everyone may do everything.
  std::shared_ptr<const Authorizer> authorizer;
  // Bounds on everything a client's input can grow (limits.h).
  Limits limits;
  // Pools configured at startup: they start themselves once their world is complete.
  struct StartupPool {
    std::string name;
    ParallelConfig config;
    v1::InitOptions options;
  };
  std::vector<StartupPool> pools;
};

class Coordinator {
 public:
  // Keeps its durable state in a FileStateStore at options.state_file (none when empty).
  Coordinator(CoordinatorOptions options, Clock* clock, TimerQueue* timers);
  // Keeps its durable state in `store` (null: nothing is persisted; options.state_file is then
  // not used). A store whose Load fails is never written: the coordinator logs and starts empty.
  Coordinator(CoordinatorOptions options, Clock* clock, TimerQueue* timers,
              std::unique_ptr<StateStore> store);
  // Saves the last change to the durable state before returning.
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // Every agent and admin entry point takes the Caller (caller.h) and asks the Authorizer
  // (options.authorizer) first: a refusal is returned (or passed to the callback) before any
  // state is read or changed. Errors, besides those listed per method: PERMISSION_DENIED or
  // UNAUTHENTICATED from the Authorizer. The default Caller is Caller::InProcess().

  // ---- Agent-facing --------------------------------------------------------------------------

  // Admits an agent. Errors: INVALID_ARGUMENT (no identity or incarnation); ALREADY_EXISTS (a
  // different, still-connected incarnation holds the identity: retry after it is gone);
  // NOT_FOUND (unknown pool and pools are not created on join); PERMISSION_DENIED (the caller's
  // principal may not join as this identity: Authorizer::AuthorizeJoinIdentity). The session is
  // bound to the caller's principal (Authorizer::Identify(caller).subject).
  absl::StatusOr<v1::JoinResponse> Join(const v1::JoinRequest& request,
                                        const Caller& caller = Caller::InProcess());

  // Binds a session stream to a joined member. Errors: NOT_FOUND (unknown or superseded
  // session id: join again); PERMISSION_DENIED (the session was opened by another principal).
  // The caller needs Action::kJoin on the session's pool.
  absl::Status Attach(const std::string& session_id, SessionSink* sink,
                      const Caller& caller = Caller::InProcess());

  // The session stream ended (the agent went away or the transport broke). Idempotent; only
  // acts while `sink` is still the member's sink.
  void Detach(const std::string& session_id, SessionSink* sink, const std::string& reason);

  // A message on an attached session. Errors: NOT_FOUND (session not attached); ABORTED (a
  // report for a generation other than the pool's current one: it is ignored).
  absl::Status HandleAgentMessage(const std::string& session_id, const v1::AgentMessage& message);

  // Rendezvous store. Errors: NOT_FOUND (pool); ABORTED (generation is not current);
  // ALREADY_EXISTS (set_once key written twice). When the request names a session, or the
  // authorizer requires one (a policy is loaded) and the caller is not in process, the store's
  // rules apply (store_access.h): UNAUTHENTICATED (no session, or not a live one),
  // PERMISSION_DENIED (not a member of the current generation through that session and
  // principal; a key another rank owns; KvGet: a key of a group the caller is not in),
  // INVALID_ARGUMENT (a key outside the scheme).
  absl::Status KvSet(const v1::KvSetRequest& request, const Caller& caller = Caller::InProcess());
  // Calls `done` exactly once: with the values, DEADLINE_EXCEEDED naming the missing keys, or
  // ABORTED if the generation changes first — unless the returned cancel function is called
  // first (the caller went away): the waiter is then dropped at once and `done` never called.
  // The cancel function is empty when `done` already ran.
  using Cancel = std::function<void()>;
  Cancel KvGet(const v1::KvGetRequest& request,
               std::function<void(absl::StatusOr<v1::KvGetResponse>)> done,
               const Caller& caller = Caller::InProcess());

  // ---- Admin ---------------------------------------------------------------------------------

  // Errors: INVALID_ARGUMENT (bad config: the layout engine's message; unknown backend; a
  // backend some member cannot drive); FAILED_PRECONDITION (the pool is initializing, ready or
  // destroying: destroy first).
  absl::StatusOr<v1::InitializeResponse> Initialize(const v1::InitializeRequest& request,
                                                    const Caller& caller = Caller::InProcess());
  // Errors: NOT_FOUND (pool); FAILED_PRECONDITION (nothing to destroy).
  absl::StatusOr<v1::DestroyResponse> Destroy(const v1::DestroyRequest& request,
                                              const Caller& caller = Caller::InProcess());
  // Tells every member to run the verification all-reduce again. Errors: NOT_FOUND;
  // FAILED_PRECONDITION unless the pool is READY.
  absl::StatusOr<v1::CheckResponse> Check(const v1::CheckRequest& request,
                                          const Caller& caller = Caller::InProcess());
  // Errors: NOT_FOUND (pool). `rank` keeps only that member and the groups holding it; `kind`
  // keeps only groups of that kind.
  absl::StatusOr<v1::PoolState> GetState(const std::string& pool,
                                         std::optional<int> rank = std::nullopt,
                                         std::optional<GroupKind> kind = std::nullopt,
                                         const Caller& caller = Caller::InProcess());
  // The pools the caller may read (Action::kRead), by name. Errors: the Authorizer's refusal
  // of reading at all (Authorize(caller, kRead, "")): UNAUTHENTICATED, PERMISSION_DENIED.
  absl::StatusOr<std::vector<v1::PoolSummary>> ListPools(
      const Caller& caller = Caller::InProcess());
  // Errors: NOT_FOUND (pool).
  absl::StatusOr<std::vector<v1::Event>> GetEvents(const std::string& pool, int64_t after_seq,
                                                   int limit,
                                                   const Caller& caller = Caller::InProcess());
  // Streams events of `pool` (empty: all pools) to `sink`, after a snapshot of each watched
  // pool when `snapshot`. Returns an id for RemoveWatcher. Errors: NOT_FOUND (pool).
  absl::StatusOr<uint64_t> AddWatcher(const std::string& pool, bool snapshot, WatchSink* sink,
                                      const Caller& caller = Caller::InProcess());
  void RemoveWatcher(uint64_t id);
  // Called under the coordinator's lock for every event (metrics, health): must be quick and
  // must not call back into the Coordinator.
  void AddEventListener(std::function<void(const v1::Event&)> listener);
  // Every pool's full state, for metrics collection.
  std::vector<v1::PoolState> AllStates();
  // Calls `done` once the pool's version exceeds `after_version` or at `deadline` (with the
  // state either way). Errors passed to done: NOT_FOUND.
  // Errors passed to done: NOT_FOUND; RESOURCE_EXHAUSTED past --max-state-waiters. Like KvGet,
  // returns a cancel function for a caller that goes away.
  Cancel WaitForState(const std::string& pool, int64_t after_version, absl::Time deadline,
                      std::function<void(absl::StatusOr<v1::PoolState>)> done,
                      const Caller& caller = Caller::InProcess());

  // Checks heartbeats now (the TimerQueue also runs this every heartbeat interval).
  void SweepHeartbeats();

  // Runs `fn` once the attach timeout has passed (a session stream that has not attached by
  // then is closed). Returns an id for CancelAttachTimer.
  TimerQueue::TimerId AfterAttachTimeout(std::function<void()> fn);
  void CancelAttachTimer(TimerQueue::TimerId id);

  // Deletes a pool and everything it holds. Errors: NOT_FOUND; FAILED_PRECONDITION while
  // members are attached, unless `force` (their sessions are then closed).
  absl::Status DeletePool(const std::string& pool, bool force,
                          const Caller& caller = Caller::InProcess());

  // Requests refused at the door or past a limit, by the check that refused them (e.g.
  // "max-members-per-pool", "identity"): for the refusals metric.
  std::map<std::string, int64_t> RefusalCounts() const;
  // Requests refused by the Authorizer or the store's access rules, by (action (ActionName),
  // role needed, status code name): for cohort_coordinator_access_denied_total. Each is also
  // counted as "authorization" in RefusalCounts.
  struct DenialKey {
    std::string action;
    std::string role_needed;
    std::string code;
    bool operator<(const DenialKey& o) const {
      return std::tie(action, role_needed, code) < std::tie(o.action, o.role_needed, o.code);
    }
  };
  std::map<DenialKey, int64_t> AccessDenials() const;
  const CoordinatorOptions& options() const { return options_; }

  // Durable state: every change (a join that takes a rank, a plan, a destroy, a deleted pool) is
  // snapshotted under the lock and saved after it is released, by the first call to get there
  // (StatePersister; what a crash before the save loses is said there). A call that made a change
  // and found nobody else saving returns after its own save. FlushState returns once every change
  // made before it is saved (e.g. before reading the state file in a test or at shutdown).
  void FlushState();
  // The coordinator is going away to be replaced (SIGTERM): from now on Join and Attach are
  // refused with UNAVAILABLE kCoordinatorRestarting, a session that ends is no member loss (no
  // MEMBER_LOST, no failed generation, no abort), timers declare nothing; the durable state is
  // saved as it is (a READY pool stays READY) and every open session is then closed with
  // kCoordinatorRestarting, so agents keep their communicators and join the next coordinator at
  // once. Idempotent. Call before the server stops.
  void BeginShutdown();
  // Saves of the durable state so far (0 without a store).
  int64_t StateSaves() const;

 private:
  struct Pool {
    std::string name;
    int world_size = 0;
    std::optional<ParallelConfig> config;
    v1::InitOptions options;
    std::optional<Layout> layout;
    // The phase, and the recent transitions (moved only by SetPhase).
    PhaseHistory phases;
    int64_t generation = 0;
    int64_t version = 0;
    // Members, ranks and durable ranks.
    Roster roster;
    std::string error;
    KvStore kv;
    // World communicator kept by a model-parallel destroy, and who held each rank then.
    KeptWorld world;
    // Which ranks of the generation being built are READY, and how long the last build took.
    GenerationTracker build;
    TimerQueue::TimerId deadline_timer = 0;
    // The teardown in progress (phase DESTROYING).
    Teardown teardown;
    TimerQueue::TimerId teardown_timer = 0;
    // WaitForState long-polls.
    StateWaiters state_waiters;
    TimerQueue::TimerId recovery_timer = 0;
    // Elastic dp: the config before the pool shrank (grow back to it when agents return), and
    // whether it is growing back.
    ElasticDpState elastic;
    TimerQueue::TimerId elastic_timer = 0;
    // The settle window after a loss (options.regroup_settle): while it is armed, MaybeStart
    // starts nothing; it calls MaybeStart when it fires. `settle_window` numbers the timers, so
    // a callback of a cancelled or moved one that was already due does nothing.
    // `settle_opened`: the first loss's time (the cap, regroup_settle_max, counts from it).
    TimerQueue::TimerId settle_timer = 0;
    uint64_t settle_window = 0;
    absl::Time settle_opened;
  };
  using Completions = std::vector<std::function<void()>>;

  Pool* FindPool(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Pool& GetOrCreatePool(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Member* FindMemberBySession(const std::string& session_id, Pool** pool)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Changes bump the version and wake state waiters (their completions go to `out`).
  void Touch(Pool& pool, Completions& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts the next generation if the pool has a config, is waiting and its world is complete,
  // and no settle window is open.
  void MaybeStart(Pool& pool, Completions& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartGeneration(Pool& pool, Completions& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The plans of the pool's current generation (its layout must outlive the builder).
  PlanBuilder PlansOf(const Pool& pool) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks the generation failed (FAILED, or DEGRADED when it restarts by itself once the world
  // is complete again, with `reason`) and tells every connected member to abort it.
  void FailGeneration(Pool& pool, const std::string& error, Completions& out,
                      v1::PoolPhase next = v1::POOL_PHASE_FAILED, const std::string& reason = "")
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleReport(Pool& pool, Member& member, const v1::GenerationReport& report,
                    Completions& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleTeardownReport(Pool& pool, Member& member, const v1::TeardownReport& report,
                            Completions& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishTeardownIfDone(Pool& pool, bool force, Completions& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // How a member went: lost (its session broke, its heartbeats stopped: a failure) or left (a
  // planned leave the agent announced: recorded as LEFT, not as a failure).
  enum class Departure { kLost, kLeft };
  // The member is gone: its generation fails (the pool goes DEGRADED with reason "lost" or
  // "left") and a standby refills its rank; the next generation starts once the settle window
  // has passed (StartAfterSettle). The caller has already closed its session.
  void LoseMember(Pool& pool, Member& member, const std::string& reason, Completions& out,
                  Departure departure = Departure::kLost) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a loss: MaybeStart once the settle window (options.regroup_settle) has passed. Opens
  // the window if none is open; a loss inside an open one moves its end to regroup_settle after
  // this loss, but not past regroup_settle_max after the first; a zero window calls MaybeStart
  // now.
  void StartAfterSettle(Pool& pool, Completions& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ABORTED unless `generation` is the pool's current, not failed, generation.
  absl::Status CheckKvGeneration(const Pool& pool, int64_t generation) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnGenerationDeadline(const std::string& pool, int64_t generation);
  void OnTeardownDeadline(const std::string& pool, int64_t generation);
  // RECOVERING: restores the pool from its members' held state once every rank is back, or
  // (`give_up`) aborts what they hold and starts over.
  void TryRecover(Pool& pool, bool give_up, Completions& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartRecovery(Pool& pool) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // INVALID_ARGUMENT unless a joining agent's held state is self-consistent (world size, rank
  // inside it, a built generation, a valid config of that world).
  absl::Status ValidateHeld(const v1::HeldState& held) const;
  // Tells a member to abort what it holds.
  void AbortHeld(Pool& pool, Member& member, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gives the free ranks inside the world to attached standbys: each its own rank hint when
  // free, then the lowest free ranks in order of arrival.
  void PromoteStandbys(Pool& pool, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Assigns every rank anew (nothing is built, e.g. elastic dp growing back): each attached
  // member its rank hint where free, else its current rank where free, else the lowest free.
  void ReassignByHints(Pool& pool, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets a member's rank (-1: standby), records it and tells the agent.
  void GiveRank(Pool& pool, Member& m, int rank, const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gives a lost member's rank to the earliest standby, if the policy allows.
  void RefillFromStandby(Pool& pool, Member& lost, Completions& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Elastic dp: drop the dp replicas with missing ranks and rebuild on the rest.
  void ShrinkDp(Pool& pool, Completions& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Elastic dp: once enough agents are back, tear down and rebuild the full config.
  void MaybeGrowDp(Pool& pool, Completions& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LoadState() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks the durable state changed; it is saved once the lock is released (Finish).
  void MarkStateChanged() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What the store gets: every pool's config, generation and identity -> rank. nullopt when it
  // would not load back (StateFile::Validate).
  std::optional<v1::DurableState> DurableSnapshot() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After the lock is released: runs the completions collected under it, then saves the durable
  // state if it changed. Agent-driven changes (joins, reports) return at once when another
  // thread is saving (that writer saves them too; a crash before it does loses them, and agents
  // restore them by reporting what they hold). An operator's command (Initialize, Destroy,
  // DeletePool) passes kDurable and returns only once a save holding its change completed: an
  // answered command survives a crash, as it did when every save ran under the lock.
  enum class Durability { kCoalesced, kDurable };
  void Finish(std::vector<std::function<void()>>& completions,
              Durability durability = Durability::kCoalesced) ABSL_LOCKS_EXCLUDED(mu_);
  void CancelTimer(TimerQueue::TimerId& id);
  // timers_->Schedule for a callback that uses this coordinator (see alive_).
  TimerQueue::TimerId Schedule(absl::Time when, std::function<void()> fn);
  // The pool's state; with `only_rank`, only the records of the members holding that rank (and no
  // layout: the caller builds that rank's), the counts still over every member.
  v1::PoolState Snapshot(const Pool& pool, std::optional<int> only_rank = std::nullopt) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Every pool's summary, unfiltered.
  std::vector<v1::PoolSummary> ListAllPools() ABSL_LOCKS_EXCLUDED(mu_);
  // The Authorizer's answer for `caller` doing `action` on `pool` (a refusal is counted, logged
  // and audited: Denied).
  absl::Status Authorize(const Caller& caller, Action action, const std::string& pool) const;
  // Counts `status` (not OK) as an access denial of `action`, writes its audit line, returns it.
  absl::Status Denied(const Caller& caller, Action action, const std::string& pool,
                      absl::Status status) const;
  // The audit line of an operator command that was allowed, with its result.
  void AuditOutcome(const Caller& caller, Action action, const std::string& pool,
                    const absl::Status& result) const;
  // The operator commands once authorized.
  absl::StatusOr<v1::InitializeResponse> InitializeAuthorized(const v1::InitializeRequest& request);
  absl::StatusOr<v1::DestroyResponse> DestroyAuthorized(const v1::DestroyRequest& request);
  absl::StatusOr<v1::CheckResponse> CheckAuthorized(const v1::CheckRequest& request);
  absl::Status DeletePoolAuthorized(const std::string& name, bool force);
  // Whether a store call must pass the store's access rules (it names a session, or the
  // authorizer requires one from every caller outside the process). UNAUTHENTICATED when a
  // session is required and `session_id` is empty.
  absl::StatusOr<bool> StoreRulesApply(const Caller& caller, const std::string& session_id) const;
  // The store's access rules (store_access.h) for the member holding `session_id` in `pool`'s
  // current generation. PERMISSION_DENIED / UNAUTHENTICATED / INVALID_ARGUMENT (a key outside
  // the scheme).
  absl::Status CheckStoreAccess(const Pool& pool, const Caller& caller,
                                const std::string& session_id, const std::vector<std::string>& keys,
                                bool write) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts a refusal by `check` and returns `status` (not OK).
  absl::Status Refuse(const std::string& check, absl::Status status) const;
  // The pool `name`, created if allowed and under the pool limit. Errors: NOT_FOUND (creation
  // off), RESOURCE_EXHAUSTED (--max-pools), INVALID_ARGUMENT (a bad name).
  absl::StatusOr<Pool*> FindOrCreatePool(const std::string& name, bool create)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records an event, streams it to watchers and listeners.
  void Emit(Pool& pool, v1::EventKind kind, int rank, const std::string& identity,
            const std::string& message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `reason`: why, where it says (PoolState.reason: "left" or "lost" for DEGRADED).
  void SetPhase(Pool& pool, v1::PoolPhase phase, const std::string& reason = "")
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleSweep() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The heartbeat sweep that was due at `due`. How late it is counts when it holds the lock:
  // a sweep that fired on time but waited behind a long critical section (StartGeneration for
  // 16,384 ranks) was kept from reading heartbeats just as a stopped process is.
  void Sweep(absl::Time due);

  const CoordinatorOptions options_;
  // options_.authorizer, or AllowAll.
  const std::shared_ptr<const Authorizer> authorizer_;
  Clock* const clock_;
  TimerQueue* const timers_;
  // Expires with the coordinator; every timer it schedules checks it first.
  const std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  mutable absl::Mutex mu_;
  std::map<std::string, Pool> pools_ ABSL_GUARDED_BY(mu_);
  // Live session ids -> their pool and identity.
  SessionTable sessions_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  // BeginShutdown was called (stopping_flag_: the same, read by timers without the lock).
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> stopping_flag_{false};
  // Where the durable state is kept (null: nowhere).
  const std::unique_ptr<StateStore> store_;
  // Saves store_ outside mu_. Null without a store, or when the store could not be loaded (it is
  // then left as it is and never written). Set in the constructor, never changed after.
  std::unique_ptr<StatePersister> persister_;
  TimerQueue::TimerId sweep_timer_ ABSL_GUARDED_BY(mu_) = 0;
  // Who is overdue, and when the coordinator itself last stalled.
  HeartbeatMonitor heartbeats_ ABSL_GUARDED_BY(mu_);
  uint64_t join_seq_ ABSL_GUARDED_BY(mu_) = 0;
  // Settle windows opened so far, over every pool (Pool::settle_window).
  uint64_t settle_windows_ ABSL_GUARDED_BY(mu_) = 0;
  // Every pool's events, the Watch streams and the listeners.
  EventLog events_ ABSL_GUARDED_BY(mu_);
  mutable absl::Mutex refusals_mu_;
  mutable std::map<std::string, int64_t> refusals_ ABSL_GUARDED_BY(refusals_mu_);
  mutable std::map<DenialKey, int64_t> denials_ ABSL_GUARDED_BY(refusals_mu_);
};

// Runs completions collected under the lock.
void RunAll(std::vector<std::function<void()>>& completions);

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_COORDINATOR_H_
