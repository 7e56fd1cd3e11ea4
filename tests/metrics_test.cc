// Prometheus metrics: the coordinator's (a real CoordinatorServer with 8 in-process Gloo agents,
// scraped over real HTTP on loopback) and the agent's; plus the event-driven metrics on a fake
// clock, without any network.
#include "coordinator/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "agent/agent.h"
#include "agent/agent_metrics.h"
#include "agent/coordinator_client.h"
#include "common/layout_proto.h"
#include "coordinator/server.h"
#include "tests/http_get.h"
#include "tests/inprocess_pool.h"
#include "tests/test_util.h"

namespace cohort {
namespace {

using ::cohort::testing::HttpGetMetrics;
using ::testing::HasSubstr;

// ---- Scraping --------------------------------------------------------------------------------

// One sample of the text format: name{k="v",...} value.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

std::vector<Sample> ParseSamples(absl::string_view text) {
  std::vector<Sample> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (line.front() == '#') continue;
    const size_t space = line.rfind(' ');
    if (space == absl::string_view::npos) continue;
    Sample sample;
    absl::string_view series = line.substr(0, space);
    if (!absl::SimpleAtod(line.substr(space + 1), &sample.value)) continue;  // NaN and friends
    const size_t brace = series.find('{');
    sample.name = std::string(series.substr(0, brace));
    if (brace != absl::string_view::npos) {
      absl::string_view labels = series.substr(brace + 1, series.size() - brace - 2);
      // Our label values hold no '"' or ',' (pool names, identities, method names).
      for (absl::string_view pair : absl::StrSplit(labels, ',', absl::SkipEmpty())) {
        const size_t eq = pair.find('=');
        sample.labels[std::string(pair.substr(0, eq))] =
            std::string(pair.substr(eq + 2, pair.size() - eq - 3));
      }
    }
    out.push_back(std::move(sample));
  }
  return out;
}

// Sum of every sample named `name` whose labels include `labels`; nullopt if none matches.
std::optional<double> Value(const std::vector<Sample>& samples, const std::string& name,
                            const std::map<std::string, std::string>& labels = {}) {
  std::optional<double> sum;
  for (const Sample& s : samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) match = false;
    }
    if (match) sum = sum.value_or(0) + s.value;
  }
  return sum;
}

int Count(const std::vector<Sample>& samples, const std::string& name) {
  int n = 0;
  for (const Sample& s : samples) n += s.name == name;
  return n;
}

// ---- A pool of 8 in-process Gloo agents around a CoordinatorServer with metrics on -----------

const ParallelConfig kDp2Cfg2U2{
    .world_size = 8, .data_parallel_size = 2, .cfg_parallel_size = 2, .ulysses_degree = 2};

class MetricsPoolTest : public testing::InProcessPoolTest {
 protected:
  coordinator::ServerOptions ServerOptionsForTest() const override {
    coordinator::ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.metrics_listen_address = "127.0.0.1:0";
    return options;
  }

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(InProcessPoolTest::SetUp());
    ASSERT_GT(server_->metrics_port(), 0);
  }

  // Starts 8 agents, initializes dp2 x cfg2 x ulysses2 on Gloo and waits for READY.
  void StartReadyPool() {
    ASSERT_NO_FATAL_FAILURE(StartAgents(8));
    v1::InitializeRequest request;
    *request.mutable_config() = ToProto(kDp2Cfg2U2);
    request.mutable_options()->set_backend("gloo");
    COHORT_ASSERT_OK(client_->Initialize(request).status());
    absl::StatusOr<v1::PoolState> ready = WaitFor([](const v1::PoolState& s) {
      return s.phase() == v1::POOL_PHASE_READY || s.phase() == v1::POOL_PHASE_FAILED;
    });
    COHORT_ASSERT_OK(ready.status());
    ASSERT_EQ(ready->phase(), v1::POOL_PHASE_READY) << ready->error();
  }

  std::vector<Sample> Scrape() {
    absl::StatusOr<std::string> body = HttpGetMetrics(server_->metrics_port());
    EXPECT_TRUE(body.ok()) << body.status();
    return body.ok() ? ParseSamples(*body) : std::vector<Sample>{};
  }
};

TEST_F(MetricsPoolTest, Metrics_ScrapeCountsMatchPool) {
  ASSERT_NO_FATAL_FAILURE(StartReadyPool());
  const std::vector<Sample> m = Scrape();
  const std::map<std::string, std::string> pool = {{"pool", "default"}};
  EXPECT_EQ(Value(m, "cohort_pool_members", {{"pool", "default"}, {"phase", "ready"}}), 8);
  EXPECT_EQ(Value(m, "cohort_pool_members", {{"pool", "default"}, {"phase", "failed"}}), 0);
  EXPECT_EQ(Value(m, "cohort_pool_generation", pool), 1);
  EXPECT_EQ(Value(m, "cohort_pool_world_size", pool), 8);
  EXPECT_EQ(Value(m, "cohort_pools", {{"phase", "ready"}}), 1);
  EXPECT_EQ(Value(m, "cohort_pools", {{"phase", "waiting"}}), 0);
  EXPECT_EQ(Value(m, "cohort_pool_phase", {{"pool", "default"}, {"phase", "ready"}}), 1);
  EXPECT_EQ(Value(m, "cohort_pool_phase", pool), 1);  // exactly one phase is set
  EXPECT_EQ(Value(m, "cohort_time_to_ready_seconds_count", pool), 1);
  EXPECT_GT(Value(m, "cohort_time_to_ready_seconds_sum", pool).value_or(-1), 0);
  EXPECT_GT(Value(m, "cohort_pool_init_seconds", pool).value_or(-1), 0);
  // One heartbeat-age series per connected member, each with its rank and identity.
  EXPECT_EQ(Count(m, "cohort_member_heartbeat_age_seconds"), 8);
  EXPECT_GE(Value(m, "cohort_member_heartbeat_age_seconds",
                  {{"pool", "default"}, {"rank", "3"}, {"identity", "agent-3"}})
                .value_or(-1),
            0);
  EXPECT_EQ(Value(m, "cohort_events_total", {{"pool", "default"}, {"kind", "joined"}}), 8);
  EXPECT_EQ(Value(m, "cohort_events_total", {{"pool", "default"}, {"kind", "member_ready"}}), 8);
  EXPECT_EQ(Value(m, "cohort_events_total", {{"pool", "default"}, {"kind", "ready"}}), 1);
  EXPECT_EQ(Value(m, "cohort_failures_detected_total", pool).value_or(0), 0);
}

TEST_F(MetricsPoolTest, Metrics_RpcCountersByMethodAndCode) {
  ASSERT_NO_FATAL_FAILURE(StartReadyPool());
  const std::vector<Sample> m = Scrape();
  const std::string agent_service = "cohort.v1.AgentService";
  EXPECT_EQ(Value(m, "cohort_rpcs_total",
                  {{"service", agent_service}, {"method", "Join"}, {"code", "OK"}}),
            8);
  EXPECT_GT(Value(m, "cohort_rpcs_total",
                  {{"service", agent_service}, {"method", "KvSet"}, {"code", "OK"}})
                .value_or(0),
            0);
  EXPECT_GT(Value(m, "cohort_rpcs_total",
                  {{"service", agent_service}, {"method", "KvGet"}, {"code", "OK"}})
                .value_or(0),
            0);
  EXPECT_GT(Value(m, "cohort_rpcs_total",
                  {{"service", "cohort.v1.AdminService"}, {"method", "Initialize"}, {"code", "OK"}})
                .value_or(0),
            0);
  // Latency of unary calls: one observation per call.
  EXPECT_EQ(Value(m, "cohort_rpc_duration_seconds_count",
                  {{"service", agent_service}, {"method", "Join"}}),
            8);
  // Sessions are streams: counted only once they end, never timed.
  EXPECT_EQ(Value(m, "cohort_rpc_duration_seconds_count", {{"method", "Session"}}), std::nullopt);
  // Gloo stores its addresses: KvSet entries, but no NCCL unique id.
  EXPECT_GT(Value(m, "cohort_kv_entries_set_total", {{"pool", "default"}}).value_or(0), 0);
  EXPECT_EQ(Value(m, "cohort_unique_ids_relayed_total", {{"pool", "default"}}).value_or(0), 0);
}

TEST_F(MetricsPoolTest, Metrics_UniqueIdsRelayed_CountsStoredNcclIdKeysOnly) {
  ASSERT_NO_FATAL_FAILURE(StartReadyPool());
  const std::vector<Sample> before = Scrape();
  const double entries_before =
      Value(before, "cohort_kv_entries_set_total", {{"pool", "default"}}).value_or(0);
  // What an NCCL rank 0 writes (its world id and a group id), plus one ordinary key.
  v1::KvSetRequest request;
  request.set_pool("default");
  request.set_generation(1);
  request.set_set_once(true);
  for (const char* key :
       {"metrics_test/world/0/nccl_id", "metrics_test/tp/1/nccl_id", "metrics_test/other"}) {
    v1::KvEntry* e = request.add_entries();
    e->set_key(key);
    e->set_value("x");
  }
  COHORT_ASSERT_OK(client_->KvSet(request));
  // Refused writes relay nothing: a stale generation, and the same ids again (set-once).
  v1::KvSetRequest stale = request;
  stale.set_generation(7);
  EXPECT_EQ(client_->KvSet(stale).code(), absl::StatusCode::kAborted);
  EXPECT_EQ(client_->KvSet(request).code(), absl::StatusCode::kAlreadyExists);

  const std::vector<Sample> m = Scrape();
  EXPECT_EQ(Value(m, "cohort_unique_ids_relayed_total", {{"pool", "default"}}), 2);
  EXPECT_EQ(Value(m, "cohort_kv_entries_set_total", {{"pool", "default"}}), entries_before + 3);
  EXPECT_EQ(Value(m, "cohort_rpcs_total", {{"method", "KvSet"}, {"code", "ABORTED"}}), 1);
  EXPECT_EQ(Value(m, "cohort_rpcs_total", {{"method", "KvSet"}, {"code", "ALREADY_EXISTS"}}), 1);
}

// A store call naming a session that does not exist is refused by the store's rules: counted
// by action, role needed and code, and as an "authorization" refusal.
TEST_F(MetricsPoolTest, Metrics_AccessDenied_ByActionRoleAndCode) {
  ASSERT_NO_FATAL_FAILURE(StartReadyPool());
  v1::KvSetRequest request;
  request.set_pool("default");
  request.set_generation(1);
  request.set_session_id("00000000000000000000000000000000");
  v1::KvEntry* e = request.add_entries();
  e->set_key("world/0/0");
  e->set_value("x");
  EXPECT_EQ(client_->KvSet(request).code(), absl::StatusCode::kUnauthenticated);
  const std::vector<Sample> m = Scrape();
  EXPECT_EQ(Value(m, "cohort_coordinator_access_denied_total",
                  {{"action", "store"}, {"role_needed", "agent"}, {"code", "UNAUTHENTICATED"}}),
            1);
  EXPECT_EQ(Value(m, "cohort_coordinator_limit_refusals_total", {{"check", "authorization"}}), 1);
}

TEST_F(MetricsPoolTest, Metrics_AgentLeaves_FailureDetectedAndPoolNotReady) {
  ASSERT_NO_FATAL_FAILURE(StartReadyPool());
  agents_[5]->Stop();
  EXPECT_TRUE(AwaitAborts(7));  // the survivors were told to abort
  COHORT_ASSERT_OK(
      WaitFor([](const v1::PoolState& s) { return s.phase() != v1::POOL_PHASE_READY; }).status());
  const std::vector<Sample> m = Scrape();
  EXPECT_EQ(Value(m, "cohort_failures_detected_total", {{"pool", "default"}}), 1);
  EXPECT_EQ(Value(m, "cohort_pools", {{"phase", "ready"}}), 0);
  EXPECT_EQ(Value(m, "cohort_member_heartbeat_age_seconds", {{"identity", "agent-5"}}),
            std::nullopt);
}

TEST_F(MetricsPoolTest, Metrics_AgentEndpoint_ServesRankAndGroups) {
  ASSERT_NO_FATAL_FAILURE(StartReadyPool());
  auto endpoint = agent::AgentMetricsServer::Start("127.0.0.1:0", agents_[3].get());
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_THAT((*endpoint)->url(), HasSubstr(absl::StrCat(":", (*endpoint)->port(), "/metrics")));
  absl::StatusOr<std::string> body = HttpGetMetrics((*endpoint)->port());
  ASSERT_TRUE(body.ok()) << body.status();
  const std::vector<Sample> m = ParseSamples(*body);
  const std::map<std::string, std::string> me = {{"pool", "default"}, {"identity", "agent-3"}};
  EXPECT_EQ(Value(m, "cohort_agent_rank", me), 3);
  EXPECT_EQ(Value(m, "cohort_agent_world_size", me), 8);
  EXPECT_EQ(Value(m, "cohort_agent_ready_generation", me), 1);
  // dp2 x cfg2 x ulysses2: world, dp, cfg, pp, ulysses, ring, sp, tp, fs, dit (no ep).
  const int groups = Count(m, "cohort_agent_group_size");
  EXPECT_GE(groups, 5);
  EXPECT_EQ(Value(m, "cohort_agent_group_state", {{"state", "ready"}}), groups);
  EXPECT_EQ(Value(m, "cohort_agent_group_state", {{"state", "error"}}), 0);
  EXPECT_EQ(Value(m, "cohort_agent_group_size", {{"kind", "world"}, {"index", "0"}}), 8);
  EXPECT_EQ(Value(m, "cohort_agent_group_size", {{"kind", "ulysses"}}), 2);
  EXPECT_GT(Value(m, "cohort_agent_group_creation_seconds", {{"kind", "world"}}).value_or(0), 0);
  EXPECT_EQ(Value(m, "cohort_agent_group_ops_in_flight"), 0);
}

TEST_F(MetricsPoolTest, Metrics_PortInUse_Unavailable) {
  coordinator::ServerOptions options;
  options.metrics_listen_address = absl::StrCat("127.0.0.1:", server_->metrics_port());
  auto second = coordinator::CoordinatorServer::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
}

TEST(MetricsOptionsTest, Metrics_AddressNotIpPort_InvalidArgument) {
  for (const char* bad : {"9464", "127.0.0.1:", "127.0.0.1:http", ":9464", "127.0.0.1:70000"}) {
    coordinator::ServerOptions options;
    options.metrics_listen_address = bad;
    auto server = coordinator::CoordinatorServer::Start(options);
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(MetricsOptionsTest, Metrics_Off_NoPortAndNoMetrics) {
  auto server = coordinator::CoordinatorServer::Start({});
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->metrics_port(), 0);
  EXPECT_EQ((*server)->metrics_url(), "");
  EXPECT_EQ((*server)->metrics(), nullptr);
}

// ---- Event-driven metrics on a fake clock ---------------------------------------------------

class NullSink : public coordinator::SessionSink {
 public:
  void Send(const v1::CoordinatorMessage&) override {}
  void Close(const absl::Status&) override {}
};

TEST(MetricsEventsTest, Metrics_TimeToReadyAndLostMembers_FromEvents) {
  FakeClock clock;
  TimerQueue timers(&clock);
  auto coord = std::make_unique<coordinator::Coordinator>(coordinator::CoordinatorOptions{}, &clock,
                                                          &timers);
  coordinator::CoordinatorMetrics metrics(coord.get());
  NullSink sink;
  std::vector<std::string> sessions;
  for (int r = 0; r < 4; ++r) {
    v1::JoinRequest join;
    join.set_pool("jobs");
    join.set_identity(absl::StrCat("a", r));
    join.set_incarnation("1");
    join.add_backends("gloo");
    join.set_rank_hint(r);
    absl::StatusOr<v1::JoinResponse> joined = coord->Join(join);
    ASSERT_TRUE(joined.ok()) << joined.status();
    COHORT_ASSERT_OK(coord->Attach(joined->session_id(), &sink));
    sessions.push_back(joined->session_id());
  }
  v1::InitializeRequest init;
  init.set_pool("jobs");
  *init.mutable_config() = ToProto(ParallelConfig{.world_size = 4, .data_parallel_size = 4});
  init.mutable_options()->set_backend("gloo");
  COHORT_ASSERT_OK(coord->Initialize(init).status());
  clock.Advance(absl::Milliseconds(1500));
  for (const std::string& session : sessions) {
    v1::AgentMessage report;
    report.mutable_report()->set_generation(1);
    report.mutable_report()->set_ok(true);
    COHORT_ASSERT_OK(coord->HandleAgentMessage(session, report));
  }
  coord->Detach(sessions[2], &sink, "killed");

  const std::vector<Sample> m = ParseSamples(metrics.Serialize());
  const std::map<std::string, std::string> pool = {{"pool", "jobs"}};
  EXPECT_EQ(Value(m, "cohort_time_to_ready_seconds_count", pool), 1);
  EXPECT_DOUBLE_EQ(Value(m, "cohort_time_to_ready_seconds_sum", pool).value_or(-1), 1.5);
  EXPECT_EQ(Value(m, "cohort_time_to_ready_seconds_bucket", {{"pool", "jobs"}, {"le", "1"}}), 0);
  EXPECT_EQ(Value(m, "cohort_time_to_ready_seconds_bucket", {{"pool", "jobs"}, {"le", "2.5"}}), 1);
  EXPECT_EQ(Value(m, "cohort_failures_detected_total", pool), 1);
  EXPECT_EQ(Value(m, "cohort_events_total", {{"pool", "jobs"}, {"kind", "member_lost"}}), 1);
  EXPECT_EQ(Value(m, "cohort_events_total", {{"pool", "jobs"}, {"kind", "plan"}}), 1);
  // Scrape-time gauges agree with the Coordinator's own state.
  absl::StatusOr<v1::PoolState> state = coord->GetState("jobs");
  COHORT_ASSERT_OK(state.status());
  EXPECT_EQ(Value(m, "cohort_pool_generation", pool), state->generation());
  std::string phase = v1::PoolPhase_Name(state->phase()).substr(strlen("POOL_PHASE_"));
  for (char& c : phase) c = static_cast<char>(tolower(c));
  EXPECT_EQ(Value(m, "cohort_pool_phase", {{"pool", "jobs"}, {"phase", phase}}), 1);
  EXPECT_NE(phase, "ready");
  std::map<std::string, int> by_phase;
  for (const v1::MemberState& member : state->members()) {
    std::string name = v1::MemberPhase_Name(member.phase()).substr(strlen("MEMBER_PHASE_"));
    for (char& c : name) c = static_cast<char>(tolower(c));
    ++by_phase[name];
  }
  EXPECT_EQ(Value(m, "cohort_pool_members", pool), 4);
  for (const auto& [phase, n] : by_phase) {
    EXPECT_EQ(Value(m, "cohort_pool_members", {{"pool", "jobs"}, {"phase", phase}}), n) << phase;
  }
  coord.reset();  // the Coordinator goes first: it holds the metrics' listener
}

}  // namespace
}  // namespace cohort
