#include "coordinator/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <exception>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "cohort/v1/agent.pb.h"
#include "common/metrics_util.h"
#include "prometheus/exposer.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"
#include "spdlog/spdlog.h"

namespace cohort::coordinator {
namespace {

constexpr char kDefaultPool[] = "default";
constexpr char kKvSetMethod[] = "/cohort.v1.AgentService/KvSet";
constexpr char kUniqueIdSuffix[] = "nccl_id";

// Time to READY: from tens of milliseconds (a small Gloo world) to minutes (thousands of NCCL
// ranks).
const prometheus::Histogram::BucketBoundaries& ReadyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
  return *buckets;
}

// RPC latency: sub-millisecond unary calls up to long-polls of a minute.
const prometheus::Histogram::BucketBoundaries& RpcBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
  return *buckets;
}

// "POOL_PHASE_READY" -> "ready".
std::string EnumLabel(const std::string& name, absl::string_view prefix) {
  absl::string_view view = name;
  absl::ConsumePrefix(&view, prefix);
  return absl::AsciiStrToLower(view);
}
std::string PoolPhaseLabel(v1::PoolPhase phase) {
  return EnumLabel(v1::PoolPhase_Name(phase), "POOL_PHASE_");
}
std::string MemberPhaseLabel(v1::MemberPhase phase) {
  return EnumLabel(v1::MemberPhase_Name(phase), "MEMBER_PHASE_");
}
std::string EventKindLabel(v1::EventKind kind) {
  return EnumLabel(v1::EventKind_Name(kind), "EVENT_KIND_");
}

// N from a READY event's "READY in N ms"; -1 if the message does not have that form.
int64_t ReadyMillis(absl::string_view message) {
  int64_t ms = -1;
  if (absl::ConsumePrefix(&message, "READY in ") && absl::ConsumeSuffix(&message, " ms") &&
      absl::SimpleAtoi(message, &ms) && ms >= 0) {
    return ms;
  }
  return -1;
}

// "DEADLINE_EXCEEDED" for grpc::StatusCode::DEADLINE_EXCEEDED (the codes are absl's).
std::string CodeLabel(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

// "/cohort.v1.AgentService/KvSet" -> {"cohort.v1.AgentService", "KvSet"}.
std::pair<std::string, std::string> SplitMethod(absl::string_view path) {
  absl::ConsumePrefix(&path, "/");
  const size_t slash = path.rfind('/');
  if (slash == absl::string_view::npos) return {"", std::string(path)};
  return {std::string(path.substr(0, slash)), std::string(path.substr(slash + 1))};
}

template <typename Enum>
std::vector<Enum> ValidPhases(bool (*is_valid)(int), int min, int max) {
  std::vector<Enum> out;
  for (int i = min; i <= max; ++i) {
    if (i != 0 && is_valid(i)) out.push_back(static_cast<Enum>(i));
  }
  return out;
}

// One interceptor per call: counts it by method and final status code, times unary calls, and
// counts the entries (and unique ids) a successful KvSet stored.
class RpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(grpc::experimental::ServerRpcInfo* info, CoordinatorMetrics* metrics)
      : metrics_(metrics),
        method_(info->method() != nullptr ? info->method() : ""),
        unary_(info->type() == grpc::experimental::ServerRpcInfo::Type::UNARY),
        kv_set_(method_ == kKvSetMethod),
        start_(absl::Now()) {}

  ~RpcMetricsInterceptor() override {
    // A call that ended without a status passing through us (cancelled before its handler
    // finished) still counts.
    if (!recorded_) Record(grpc::StatusCode::CANCELLED);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (kv_set_ && methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      // The request is deserialized by now; gRPC hands it over untyped.
      if (const auto* request = static_cast<const v1::KvSetRequest*>(methods->GetRecvMessage())) {
        pool_ = request->pool().empty() ? kDefaultPool : request->pool();
        entries_ = request->entries_size();
        unique_ids_ = static_cast<int>(std::count_if(
            request->entries().begin(), request->entries().end(),
            [](const v1::KvEntry& e) { return absl::EndsWith(e.key(), kUniqueIdSuffix); }));
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Record(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Record(grpc::StatusCode code) {
    recorded_ = true;
    metrics_->RecordRpc(method_, code, unary_, absl::Now() - start_);
    // Only what the store accepted was relayed (a refused or stale write relays nothing).
    if (kv_set_ && code == grpc::StatusCode::OK && entries_ > 0) {
      metrics_->RecordKvSet(pool_, entries_, unique_ids_);
    }
  }

  CoordinatorMetrics* const metrics_;
  const std::string method_;
  const bool unary_;
  const bool kv_set_;
  const absl::Time start_;
  bool recorded_ = false;
  std::string pool_;
  int entries_ = 0;
  int unique_ids_ = 0;
};

class RpcMetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsInterceptorFactory(CoordinatorMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcMetricsInterceptor(info, metrics_);
  }

 private:
  CoordinatorMetrics* const metrics_;
};

}  // namespace

// Scrape-time gauges from Coordinator::AllStates(). Collect() runs on the exposer's thread, with
// no lock of ours held; AllStates() takes the coordinator's lock only to copy the states.
class CoordinatorMetrics::StateCollector final : public prometheus::Collectable {
 public:
  explicit StateCollector(Coordinator* coordinator) : coordinator_(coordinator) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    static const std::vector<v1::PoolPhase> kPoolPhases =
        ValidPhases<v1::PoolPhase>(v1::PoolPhase_IsValid, v1::PoolPhase_MIN, v1::PoolPhase_MAX);
    static const std::vector<v1::MemberPhase> kMemberPhases = ValidPhases<v1::MemberPhase>(
        v1::MemberPhase_IsValid, v1::MemberPhase_MIN, v1::MemberPhase_MAX);

    const std::vector<v1::PoolState> states = coordinator_->AllStates();
    auto pools = GaugeFamily("cohort_pools", "Pools by phase.");
    auto pool_phase =
        GaugeFamily("cohort_pool_phase", "1 for the pool's current phase, 0 for the others.");
    auto members = GaugeFamily("cohort_pool_members", "Members of the pool by phase.");
    auto generation = GaugeFamily("cohort_pool_generation", "The pool's current generation.");
    auto world_size = GaugeFamily("cohort_pool_world_size", "The pool's world size (0: unset).");
    auto init_seconds = GaugeFamily("cohort_pool_init_seconds",
                                    "Plans sent to READY of the pool's last READY generation.");
    auto heartbeat_age = GaugeFamily("cohort_member_heartbeat_age_seconds",
                                     "Seconds since a connected member's last heartbeat.");

    std::map<v1::PoolPhase, int> pools_by_phase;
    for (const v1::PoolState& state : states) {
      const std::string& pool = state.pool();
      ++pools_by_phase[state.phase()];
      for (v1::PoolPhase phase : kPoolPhases) {
        AddGauge(pool_phase, {{"phase", PoolPhaseLabel(phase)}, {"pool", pool}},
                 state.phase() == phase ? 1 : 0);
      }
      std::map<v1::MemberPhase, int> by_phase;
      for (const v1::MemberState& member : state.members()) {
        ++by_phase[member.phase()];
        if (member.connected()) {
          AddGauge(heartbeat_age,
                   {{"identity", member.identity()},
                    {"pool", pool},
                    {"rank", absl::StrCat(member.rank())}},
                   member.heartbeat_age_ms() / 1000.0);
        }
      }
      for (v1::MemberPhase phase : kMemberPhases) {
        AddGauge(members, {{"phase", MemberPhaseLabel(phase)}, {"pool", pool}}, by_phase[phase]);
      }
      AddGauge(generation, {{"pool", pool}}, static_cast<double>(state.generation()));
      AddGauge(world_size, {{"pool", pool}}, state.world_size());
      if (state.init_ms() > 0) AddGauge(init_seconds, {{"pool", pool}}, state.init_ms() / 1000.0);
    }
    for (v1::PoolPhase phase : kPoolPhases) {
      AddGauge(pools, {{"phase", PoolPhaseLabel(phase)}}, pools_by_phase[phase]);
    }
    // Refusals at the door and past limits, kept by the Coordinator (a counter read at scrape
    // time: it only grows).
    prometheus::MetricFamily refusals;
    refusals.name = "cohort_coordinator_limit_refusals_total";
    refusals.help =
        "Requests refused by an input check or past a limit, by check (the "
        "coordinator flag of the limit, or the field checked).";
    refusals.type = prometheus::MetricType::Counter;
    for (const auto& [check, count] : coordinator_->RefusalCounts()) {
      prometheus::ClientMetric metric;
      metric.label = {{"check", check}};
      metric.counter.value = static_cast<double>(count);
      refusals.metric.push_back(std::move(metric));
    }

    // Requests refused by the access policy or the store's rules (each is also a refusal above,
    // check "authorization").
    prometheus::MetricFamily denied;
    denied.name = "cohort_coordinator_access_denied_total";
    denied.help =
        "Requests refused by the access policy or the store's rules, by action, the role it "
        "needs and the status code.";
    denied.type = prometheus::MetricType::Counter;
    for (const auto& [key, count] : coordinator_->AccessDenials()) {
      prometheus::ClientMetric metric;
      metric.label = {{"action", key.action}, {"code", key.code}, {"role_needed", key.role_needed}};
      metric.counter.value = static_cast<double>(count);
      denied.metric.push_back(std::move(metric));
    }

    std::vector<prometheus::MetricFamily> out;
    for (auto* family : {&pools, &pool_phase, &members, &generation, &world_size, &init_seconds,
                         &heartbeat_age, &refusals, &denied}) {
      if (!family->metric.empty()) out.push_back(std::move(*family));
    }
    return out;
  }

 private:
  Coordinator* const coordinator_;
};

CoordinatorMetrics::CoordinatorMetrics(Coordinator* coordinator)
    : coordinator_(coordinator),
      registry_(std::make_shared<prometheus::Registry>()),
      state_collector_(std::make_shared<StateCollector>(coordinator)),
      events_(prometheus::BuildCounter()
                  .Name("cohort_events_total")
                  .Help("Coordinator events by pool and kind.")
                  .Register(*registry_)),
      failures_(prometheus::BuildCounter()
                    .Name("cohort_failures_detected_total")
                    .Help("Members declared lost (session broke or heartbeats missed).")
                    .Register(*registry_)),
      time_to_ready_(prometheus::BuildHistogram()
                         .Name("cohort_time_to_ready_seconds")
                         .Help("Plans sent to pool READY, per generation.")
                         .Register(*registry_)),
      unique_ids_(prometheus::BuildCounter()
                      .Name("cohort_unique_ids_relayed_total")
                      .Help("NCCL unique ids (store keys ending in nccl_id) stored for relay.")
                      .Register(*registry_)),
      kv_entries_(prometheus::BuildCounter()
                      .Name("cohort_kv_entries_set_total")
                      .Help("Rendezvous store entries stored by KvSet.")
                      .Register(*registry_)),
      rpcs_(prometheus::BuildCounter()
                .Name("cohort_rpcs_total")
                .Help("gRPC calls served, by method and final status code.")
                .Register(*registry_)),
      rpc_duration_(prometheus::BuildHistogram()
                        .Name("cohort_rpc_duration_seconds")
                        .Help("Latency of unary gRPC calls (KvGet includes its wait).")
                        .Register(*registry_)) {
  coordinator_->AddEventListener([this](const v1::Event& event) { RecordEvent(event); });
}

CoordinatorMetrics::~CoordinatorMetrics() = default;

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
CoordinatorMetrics::NewInterceptorFactory() {
  return std::make_unique<RpcMetricsInterceptorFactory>(this);
}

std::vector<std::weak_ptr<prometheus::Collectable>> CoordinatorMetrics::collectables() const {
  return {registry_, state_collector_};
}

std::string CoordinatorMetrics::Serialize() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  std::vector<prometheus::MetricFamily> state = state_collector_->Collect();
  families.insert(families.end(), std::make_move_iterator(state.begin()),
                  std::make_move_iterator(state.end()));
  return prometheus::TextSerializer().Serialize(families);
}

void CoordinatorMetrics::RecordEvent(const v1::Event& event) {
  const std::string& pool = event.pool();
  events_.Add({{"pool", pool}, {"kind", EventKindLabel(event.kind())}}).Increment();
  switch (event.kind()) {
    case v1::EVENT_KIND_MEMBER_LOST:
      failures_.Add({{"pool", pool}}).Increment();
      break;
    case v1::EVENT_KIND_PLAN: {
      absl::MutexLock lock(&mu_);
      plans_sent_unix_ms_[pool] = event.unix_ms();
      break;
    }
    case v1::EVENT_KIND_READY: {
      // "READY in N ms" carries the coordinator's own measure; otherwise PLAN -> READY.
      int64_t ms = ReadyMillis(event.message());
      if (ms < 0) {
        absl::MutexLock lock(&mu_);
        auto it = plans_sent_unix_ms_.find(pool);
        ms = it == plans_sent_unix_ms_.end() ? -1 : event.unix_ms() - it->second;
      }
      if (ms >= 0) {
        time_to_ready_.Add({{"pool", pool}}, ReadyBuckets()).Observe(ms / 1000.0);
      }
      break;
    }
    default:
      break;
  }
}

void CoordinatorMetrics::RecordRpc(absl::string_view method_path, grpc::StatusCode code, bool unary,
                                   absl::Duration latency) {
  // A client may ask for any method name: unknown ones share one series, so that label
  // values stay bounded.
  auto [service, method] = code == grpc::StatusCode::UNIMPLEMENTED
                               ? std::pair<std::string, std::string>("", "unimplemented")
                               : SplitMethod(method_path);
  rpcs_.Add({{"service", service}, {"method", method}, {"code", CodeLabel(code)}}).Increment();
  if (unary) {
    rpc_duration_.Add({{"service", service}, {"method", method}}, RpcBuckets())
        .Observe(absl::ToDoubleSeconds(latency));
  }
}

void CoordinatorMetrics::RecordKvSet(const std::string& pool, int entries, int unique_ids) {
  kv_entries_.Add({{"pool", pool}}).Increment(entries);
  // Added even when zero, so that the series exists (0) for every pool that used the store.
  unique_ids_.Add({{"pool", pool}}).Increment(unique_ids);
}

}  // namespace cohort::coordinator
