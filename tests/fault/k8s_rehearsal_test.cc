// A rehearsal of the Kubernetes deployment without Kubernetes (issue 12). The plaintext overlay
// is rendered with `kubectl kustomize`, and the coordinator Deployment's and the agent
// StatefulSet's containers run as plain processes with exactly the arguments and environment
// the manifests give them: the pool ConfigMap through envFrom, the downward API (pod name,
// namespace, the apps.kubernetes.io/pod-index label, the pod IP) and $(VAR) expansion as the
// kubelet does it. What cannot exist here is replaced, and only that (Localize below):
//   - the pods' fixed ports (0.0.0.0:N) become 127.0.0.1:0 (tests never use fixed ports), and
//     the Service name in COHORT_COORDINATOR becomes the coordinator's loopback address;
//   - the state volume's mount path becomes a scratch directory that outlives the coordinator
//     process, as the PVC outlives its pod;
//   - COHORT_BACKEND=nccl becomes gloo (no GPU here; the NCCL path has its own tests).
// It proves: pod name -> identity and pod index -> rank; pod N restarted after a planned leave
// (SIGTERM) gets rank N back and the pool is READY again; a pod rescheduled to another node (a
// new pod IP) keeps its rank; a rolling update of the coordinator (SIGTERM, then the new pod on
// the same Service address and state volume) never takes the READY pool out of READY.
// Figures go to stdout ("rehearsal: ..."); every wait has a deadline and none bounds a time.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "tests/cluster.h"
#include "tests/http_get.h"
#include "tests/scratch_dir.h"
#include "yaml-cpp/yaml.h"

namespace cohort::testing {
namespace {

constexpr absl::Duration kDeadline = absl::Seconds(90);
constexpr char kNamespace[] = "cohort-rehearsal";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

// `kubectl kustomize <overlay>`; empty (and a failure recorded) when it cannot run.
std::string Render(const std::string& overlay) {
  const std::string command = "kubectl kustomize " + overlay + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "cannot run " << command;
    return "";
  }
  std::string out;
  char buffer[4096];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  const int status = pclose(pipe);
  if (status != 0) {
    ADD_FAILURE() << command << " failed (kubectl is installed by the machine image; "
                  << "deploy/install-deps.sh says where to get it):\n"
                  << out;
    return "";
  }
  return out;
}

// What the downward API gives a pod.
struct PodFacts {
  std::string name;
  std::string ip = "127.0.0.1";
  std::map<std::string, std::string> labels;
};

// One container of a rendered workload, with the ConfigMaps it can reference.
struct Workload {
  YAML::Node container;
  std::map<std::string, std::map<std::string, std::string>> config_maps;
};

absl::StatusOr<Workload> FindWorkload(const std::string& rendered, const std::string& kind,
                                      const std::string& name) {
  Workload w;
  YAML::Node pod_spec;
  for (const YAML::Node& doc : YAML::LoadAll(rendered)) {
    if (!doc.IsMap()) continue;
    const std::string doc_kind = doc["kind"].as<std::string>("");
    const std::string doc_name = doc["metadata"]["name"].as<std::string>("");
    if (doc_kind == "ConfigMap") {
      for (const auto& kv : doc["data"]) {
        w.config_maps[doc_name][kv.first.as<std::string>()] = kv.second.as<std::string>();
      }
    }
    if (doc_kind == kind && doc_name == name) pod_spec = doc["spec"]["template"]["spec"];
  }
  if (!pod_spec.IsDefined() || !pod_spec["containers"].IsSequence()) {
    return absl::NotFoundError(absl::StrCat("no ", kind, " ", name, " with containers"));
  }
  w.container = pod_spec["containers"][0];
  return w;
}

// The container's environment as the kubelet builds it: envFrom first, then env (which wins),
// downward-API fields from `pod`, $(VAR) in values expanded from what is defined before.
absl::StatusOr<std::map<std::string, std::string>> ContainerEnv(
    const Workload& w, const PodFacts& pod,
    const std::map<std::string, std::string>& config_overrides) {
  std::map<std::string, std::string> env;
  for (const YAML::Node& from : w.container["envFrom"]) {
    const std::string cm = from["configMapRef"]["name"].as<std::string>("");
    auto it = w.config_maps.find(cm);
    if (it == w.config_maps.end()) return absl::NotFoundError("envFrom names no ConfigMap: " + cm);
    for (const auto& [k, v] : it->second) {
      auto o = config_overrides.find(k);
      env[k] = o != config_overrides.end() ? o->second : v;
    }
  }
  for (const YAML::Node& e : w.container["env"]) {
    const std::string name = e["name"].as<std::string>();
    if (e["value"].IsDefined()) {
      env[name] = e["value"].as<std::string>();
      continue;
    }
    const std::string path = e["valueFrom"]["fieldRef"]["fieldPath"].as<std::string>("");
    if (path == "metadata.name") {
      env[name] = pod.name;
    } else if (path == "metadata.namespace") {
      env[name] = kNamespace;
    } else if (path == "status.podIP") {
      env[name] = pod.ip;
    } else if (absl::StartsWith(path, "metadata.labels['") && absl::EndsWith(path, "']")) {
      const std::string label = path.substr(17, path.size() - 19);
      auto it = pod.labels.find(label);
      // A label the pod does not carry gives an empty value (the kubelet's behaviour).
      env[name] = it == pod.labels.end() ? "" : it->second;
    } else {
      return absl::UnimplementedError("the rehearsal does not know fieldPath '" + path +
                                      "'; teach ContainerEnv what the kubelet puts there");
    }
  }
  return env;
}

// $(VAR) -> its value when VAR is defined (left as is otherwise); $$ -> $.
std::string Expand(const std::string& arg, const std::map<std::string, std::string>& env) {
  std::string out;
  for (size_t i = 0; i < arg.size(); ++i) {
    if (arg[i] == '$' && i + 1 < arg.size() && arg[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (arg[i] == '$' && i + 1 < arg.size() && arg[i + 1] == '(') {
      const size_t end = arg.find(')', i);
      if (end != std::string::npos) {
        auto it = env.find(arg.substr(i + 2, end - i - 2));
        if (it != env.end()) {
          out += it->second;
          i = end;
          continue;
        }
      }
    }
    out += arg[i];
  }
  return out;
}

// What cannot exist here (see the file comment): fixed pod ports, mount paths.
std::string Localize(std::string arg, const std::string& state_dir) {
  const size_t any = arg.find("0.0.0.0:");
  if (any != std::string::npos) arg = arg.substr(0, any) + "127.0.0.1:0";
  return absl::StrReplaceAll(arg, {{"/var/lib/cohort/state", state_dir}});
}

// argv and env (for ChildProcess::Spawn) of `w`'s container for `pod`.
struct Command {
  std::vector<std::string> argv;
  std::vector<std::string> env;
};

absl::StatusOr<Command> CommandFor(const Workload& w, const std::string& binary,
                                   const PodFacts& pod, const std::string& state_dir,
                                   const std::string& service_address) {
  absl::StatusOr<std::map<std::string, std::string>> env =
      ContainerEnv(w, pod, {{"COHORT_BACKEND", "gloo"}});
  if (!env.ok()) return env.status();
  if (auto it = env->find("COHORT_COORDINATOR"); it != env->end()) it->second = service_address;
  Command c;
  c.argv.push_back(binary);
  for (const YAML::Node& a : w.container["args"]) {
    c.argv.push_back(Localize(Expand(a.as<std::string>(), *env), state_dir));
  }
  c.env = Cluster::NoPodEnv();
  for (const auto& [k, v] : *env) c.env.push_back(k + "=" + v);
  return c;
}

// The first line of `child`'s stdout that contains `marker`, after it.
std::optional<std::string> ReadAfter(ChildProcess& child, const std::string& marker) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    std::optional<std::string> line = child.ReadLine(deadline - absl::Now());
    if (!line.has_value()) return std::nullopt;
    const size_t at = line->find(marker);
    if (at != std::string::npos) return line->substr(at + marker.size());
  }
  return std::nullopt;
}

class Rehearsal : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string rendered =
        Render(std::string(COHORT_SOURCE_DIR) + "/deploy/k8s/overlays/plaintext");
    ASSERT_FALSE(rendered.empty());
    absl::StatusOr<Workload> coordinator =
        FindWorkload(rendered, "Deployment", "cohort-coordinator");
    ASSERT_TRUE(coordinator.ok()) << coordinator.status();
    absl::StatusOr<Workload> agents = FindWorkload(rendered, "StatefulSet", "cohort-agent");
    ASSERT_TRUE(agents.ok()) << agents.status();
    coordinator_ = *coordinator;
    agents_ = *agents;
    for (const YAML::Node& doc : YAML::LoadAll(rendered)) {
      if (doc["kind"].as<std::string>("") == "StatefulSet") {
        replicas_ = doc["spec"]["replicas"].as<int>(0);
      }
    }
    ASSERT_GT(replicas_, 0);
    state_dir_ = scratch_.path() + "/pvc";
    ASSERT_EQ(mkdir(state_dir_.c_str(), 0700), 0);
  }

  // Starts the coordinator pod; `listen`: the Service's address to keep (empty: any port).
  void StartCoordinator(const std::string& pod_name) {
    absl::StatusOr<Command> c =
        CommandFor(coordinator_, Cluster::CoordinatorBinary(), {.name = pod_name}, state_dir_, "");
    ASSERT_TRUE(c.ok()) << c.status();
    if (!address_.empty()) {
      // The Service keeps its address across the rolling update: the new pod listens there.
      for (std::string& a : c->argv) {
        if (absl::StartsWith(a, "--listen=")) a = "--listen=" + address_;
      }
    }
    auto child =
        ChildProcess::Spawn(c->argv, absl::StrCat(scratch_.path(), "/", pod_name, ".log"), c->env);
    ASSERT_TRUE(child.has_value());
    coordinator_process_ = std::make_unique<ChildProcess>(std::move(*child));
    std::optional<std::string> listening = ReadAfter(*coordinator_process_, "listening on ");
    ASSERT_TRUE(listening.has_value()) << "the coordinator printed no address";
    address_ = *listening;
    stub_ = v1::AdminService::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }

  // Starts pod `index` of the StatefulSet (pod IP `ip`).
  void StartAgentPod(int index, const std::string& ip = "127.0.0.1") {
    PodFacts pod{.name = absl::StrCat("cohort-agent-", index), .ip = ip};
    pod.labels["apps.kubernetes.io/pod-index"] = absl::StrCat(index);
    absl::StatusOr<Command> c = CommandFor(agents_, std::string(COHORT_BIN_DIR) + "/cohort-agent",
                                           pod, state_dir_, address_);
    ASSERT_TRUE(c.ok()) << c.status();
    const std::string log =
        absl::StrCat(scratch_.path(), "/", pod.name, "-", agent_starts_++, ".log");
    auto child = ChildProcess::Spawn(c->argv, log, c->env);
    ASSERT_TRUE(child.has_value());
    agent_logs_[index] = log;
    agent_processes_[index] = std::make_unique<ChildProcess>(std::move(*child));
    // The pod's metrics port (9465 in the manifest, any port here), printed once it joined.
    std::optional<std::string> url = ReadAfter(*agent_processes_[index], "metrics on ");
    ASSERT_TRUE(url.has_value()) << "pod " << index << " printed no metrics URL";
    const size_t colon = url->rfind(':');
    metrics_port_[index] = std::stoi(url->substr(colon + 1));
  }

  // What pod `index` itself says (its /metrics): the generation READY there (0: none) and how
  // many of its communicators are READY.
  struct AgentView {
    int64_t ready_generation = -1;
    int groups_ready = 0;
  };
  absl::StatusOr<AgentView> Scrape(int index) {
    absl::StatusOr<std::string> body = HttpGetMetrics(metrics_port_.at(index));
    if (!body.ok()) return body.status();
    AgentView view;
    for (absl::string_view line : absl::StrSplit(*body, '\n', absl::SkipEmpty())) {
      if (absl::StartsWith(line, "cohort_agent_ready_generation")) {
        view.ready_generation = std::stoll(std::string(line.substr(line.rfind(' ') + 1)));
      }
      if (absl::StartsWith(line, "cohort_agent_group_state") &&
          absl::StrContains(line, "state=\"ready\"") && absl::EndsWith(line, " 1")) {
        ++view.groups_ready;
      }
    }
    return view;
  }

  // Every pod says generation `generation` is READY on all of its `groups` communicators.
  void ExpectAgentsReady(int64_t generation, int groups, const std::string& when) {
    for (const auto& [index, port] : metrics_port_) {
      absl::StatusOr<AgentView> view = Scrape(index);
      ASSERT_TRUE(view.ok()) << "pod " << index << " " << when << ": " << view.status();
      EXPECT_EQ(view->ready_generation, generation) << "pod " << index << " " << when;
      EXPECT_EQ(view->groups_ready, groups) << "pod " << index << " " << when;
    }
  }

  // The pool's state once its version passes `after_version` (a long poll of at most a second;
  // -1: at once). Waits for the coordinator to be reachable (a new pod starting).
  absl::StatusOr<v1::PoolState> GetState(int64_t after_version = -1) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    context.set_wait_for_ready(true);
    v1::GetStateRequest request;
    request.set_pool("default");
    if (after_version >= 0) {
      request.mutable_wait()->set_after_version(after_version);
      request.mutable_wait()->set_timeout_ms(1000);
    }
    v1::GetStateResponse response;
    grpc::Status s = stub_->GetState(&context, request, &response);
    if (!s.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    }
    return response.state();
  }

  // Polls GetState until `done`; every state seen goes to `seen` (when given).
  absl::StatusOr<v1::PoolState> WaitFor(const std::function<bool(const v1::PoolState&)>& done,
                                        std::vector<v1::PoolPhase>* seen = nullptr) {
    const absl::Time deadline = absl::Now() + kDeadline;
    std::string last = "no answer";
    int64_t version = -1;
    while (absl::Now() < deadline) {
      absl::StatusOr<v1::PoolState> s = GetState(version);
      if (s.ok()) {
        version = s->version();
        if (seen != nullptr && (seen->empty() || seen->back() != s->phase())) {
          seen->push_back(s->phase());
        }
        if (done(*s)) return s;
        last = absl::StrCat(v1::PoolPhase_Name(s->phase()), " generation ", s->generation(), " ",
                            s->error());
      } else {
        // NOT_FOUND: the new coordinator has not restored the pool yet; the next call waits.
        last = s.status().ToString();
        version = -1;
        if (s.status().code() != absl::StatusCode::kNotFound &&
            s.status().code() != absl::StatusCode::kUnavailable &&
            s.status().code() != absl::StatusCode::kDeadlineExceeded) {
          return s.status();
        }
      }
    }
    return absl::DeadlineExceededError("pool state never matched; last: " + last);
  }

  static bool AllReadyAt(const v1::PoolState& s, int64_t generation, int world) {
    int connected = 0;
    for (const v1::MemberState& m : s.members()) connected += m.rank() >= 0 && m.connected();
    return s.phase() == v1::POOL_PHASE_READY && s.generation() == generation &&
           connected == world && s.members_ready() == world;
  }

  std::vector<v1::Event> Events() {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::GetEventsRequest request;
    request.set_pool("default");
    v1::GetEventsResponse response;
    grpc::Status status = stub_->GetEvents(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.events().begin(), response.events().end()};
  }

  void TearDown() override {
    if (!HasFailure()) return;
    // The scratch directory goes with the test: show the end of every log.
    for (const std::string& name : scratch_.List()) {
      if (!absl::EndsWith(name, ".log")) continue;
      const std::string text = ReadFile(scratch_ / name);
      std::cout << "==== " << name << " (last 3000 bytes)\n"
                << text.substr(text.size() > 3000 ? text.size() - 3000 : 0) << "\n";
    }
  }

  ScratchDir scratch_;
  Workload coordinator_;
  Workload agents_;
  int replicas_ = 0;
  std::string state_dir_;
  std::string address_;
  std::unique_ptr<v1::AdminService::Stub> stub_;
  std::unique_ptr<ChildProcess> coordinator_process_;
  std::map<int, std::unique_ptr<ChildProcess>> agent_processes_;
  std::map<int, std::string> agent_logs_;
  std::map<int, int> metrics_port_;
  int agent_starts_ = 0;
};

TEST_F(Rehearsal, PlaintextOverlay_IdentityToRank_RestartedPodKeepsRank_RollingUpdateStaysReady) {
  // The manifests' own pool: the ConfigMap's world size, as many pods as the StatefulSet has.
  const auto& pool = coordinator_.config_maps.begin()->second;
  const int world = std::stoi(pool.at("COHORT_WORLD_SIZE"));
  ASSERT_EQ(replicas_, world) << "the StatefulSet's replicas and the pool's world size differ";

  // --- Deploy: the coordinator pod, then every agent pod at once (podManagementPolicy Parallel).
  ASSERT_NO_FATAL_FAILURE(StartCoordinator("cohort-coordinator-5d8f7c9b6-x2k4q"));
  const absl::Time deployed = absl::Now();
  for (int i = 0; i < replicas_; ++i) ASSERT_NO_FATAL_FAILURE(StartAgentPod(i));
  absl::StatusOr<v1::PoolState> ready =
      WaitFor([&](const v1::PoolState& s) { return AllReadyAt(s, 1, world); });
  ASSERT_TRUE(ready.ok()) << ready.status();
  const absl::Duration to_ready = absl::Now() - deployed;
  // Pod name -> identity, pod index -> rank.
  for (const v1::MemberState& m : ready->members()) {
    EXPECT_EQ(m.identity(), absl::StrCat("cohort-agent-", m.rank()));
  }
  const std::string log0 = ReadFile(agent_logs_[0]);
  EXPECT_TRUE(absl::StrContains(log0, "identity cohort-agent-0 (from flag --identity")) << log0;
  EXPECT_TRUE(absl::StrContains(log0, "rank hint 0 (from env POD_INDEX)")) << log0;

  // --- Restart pod 3: the kubelet sends SIGTERM (a planned leave), the pod comes back.
  const absl::Time sigterm = absl::Now();
  agent_processes_[3]->Signal(SIGTERM);
  std::optional<int> exited = agent_processes_[3]->WaitExit(kDeadline);
  ASSERT_TRUE(exited.has_value()) << "pod 3 did not exit on SIGTERM";
  EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0) << *exited;
  const absl::Duration leave_took = absl::Now() - sigterm;
  absl::StatusOr<v1::PoolState> degraded =
      WaitFor([](const v1::PoolState& s) { return s.phase() == v1::POOL_PHASE_DEGRADED; });
  ASSERT_TRUE(degraded.ok()) << degraded.status();
  EXPECT_EQ(degraded->reason(), "left");
  ASSERT_NO_FATAL_FAILURE(StartAgentPod(3));
  absl::StatusOr<v1::PoolState> back =
      WaitFor([&](const v1::PoolState& s) { return AllReadyAt(s, 2, world); });
  ASSERT_TRUE(back.ok()) << back.status();
  const absl::Duration leave_to_ready = absl::Now() - sigterm;
  for (const v1::MemberState& m : back->members()) {
    EXPECT_EQ(m.identity(), absl::StrCat("cohort-agent-", m.rank()));
  }

  // --- Pod 5 rescheduled to another node: killed, back with a new pod IP; it keeps rank 5.
  agent_processes_[5]->Signal(SIGKILL);
  ASSERT_TRUE(agent_processes_[5]->WaitExit(kDeadline).has_value());
  ASSERT_NO_FATAL_FAILURE(StartAgentPod(5, "127.0.0.5"));
  absl::StatusOr<v1::PoolState> moved = WaitFor([&](const v1::PoolState& s) {
    if (!AllReadyAt(s, 3, world)) return false;
    for (const v1::MemberState& m : s.members()) {
      if (m.identity() == "cohort-agent-5") return m.device().host_address() == "127.0.0.5";
    }
    return false;
  });
  ASSERT_TRUE(moved.ok()) << moved.status();
  for (const v1::MemberState& m : moved->members()) {
    EXPECT_EQ(m.identity(), absl::StrCat("cohort-agent-", m.rank()));
  }

  // --- Rolling update of the coordinator (strategy Recreate): SIGTERM, then the new pod on the
  // same Service address and state volume. A watcher on the old one sees no phase change, and
  // the new one restores READY at the same generation without a new plan or an abort.
  std::vector<v1::WatchEvent> watched;
  grpc::ClientContext watch_context;
  watch_context.set_deadline(absl::ToChronoTime(absl::Now() + kDeadline));
  v1::WatchRequest watch_request;
  watch_request.set_pool("default");
  std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> watch =
      stub_->Watch(&watch_context, watch_request);
  std::thread watcher([&] {
    v1::WatchEvent e;
    while (watch->Read(&e)) watched.push_back(e);
  });
  // Every pod's communicators: the world and one per model-parallel group kind.
  const int groups = moved->members(0).groups_size();
  ASSERT_NO_FATAL_FAILURE(ExpectAgentsReady(3, groups, "before the update"));
  const absl::Time update = absl::Now();
  coordinator_process_->Signal(SIGTERM);
  std::optional<int> old_exit = coordinator_process_->WaitExit(kDeadline);
  ASSERT_TRUE(old_exit.has_value()) << "the old coordinator did not exit on SIGTERM";
  EXPECT_TRUE(WIFEXITED(*old_exit) && WEXITSTATUS(*old_exit) == 0) << *old_exit;
  const absl::Duration drain_took = absl::Now() - update;
  // No coordinator at all now (Recreate): the engines' view, the pods' own, is still READY.
  ASSERT_NO_FATAL_FAILURE(ExpectAgentsReady(3, groups, "with no coordinator running"));
  watcher.join();
  (void)watch->Finish();
  for (const v1::WatchEvent& e : watched) {
    if (!e.has_event()) continue;
    EXPECT_NE(e.event().kind(), v1::EVENT_KIND_PHASE) << e.event().message();
    EXPECT_NE(e.event().kind(), v1::EVENT_KIND_MEMBER_LOST) << e.event().message();
    EXPECT_NE(e.event().kind(), v1::EVENT_KIND_ABORT) << e.event().message();
  }
  const absl::Time new_pod = absl::Now();
  ASSERT_NO_FATAL_FAILURE(StartCoordinator("cohort-coordinator-7b4c6d8f5-m9z3w"));
  std::vector<v1::PoolPhase> seen;
  absl::StatusOr<v1::PoolState> restored =
      WaitFor([&](const v1::PoolState& s) { return AllReadyAt(s, 3, world); }, &seen);
  ASSERT_TRUE(restored.ok()) << restored.status();
  const absl::Duration update_took = absl::Now() - update;
  const absl::Duration reattach_took = absl::Now() - new_pod;
  std::string phases;
  for (v1::PoolPhase p : seen) {
    absl::StrAppend(&phases, phases.empty() ? "" : " ", v1::PoolPhase_Name(p));
  }
  // The new coordinator vouches for no member before it is back: RECOVERING until the last one
  // reattached, then READY at the same generation. Nothing else (no rebuild, no DEGRADED).
  for (v1::PoolPhase p : seen) {
    EXPECT_TRUE(p == v1::POOL_PHASE_RECOVERING || p == v1::POOL_PHASE_READY) << phases;
  }
  ASSERT_NO_FATAL_FAILURE(ExpectAgentsReady(3, groups, "after the update"));
  for (const v1::Event& e : Events()) {
    EXPECT_NE(e.kind(), v1::EVENT_KIND_PLAN) << e.message();
    EXPECT_NE(e.kind(), v1::EVENT_KIND_ABORT) << e.message();
    EXPECT_NE(e.kind(), v1::EVENT_KIND_MEMBER_LOST) << e.message();
    EXPECT_NE(e.kind(), v1::EVENT_KIND_FAILED) << e.message();
  }
  for (auto& [index, process] : agent_processes_) {
    EXPECT_FALSE(process->WaitExit(absl::ZeroDuration()).has_value()) << "pod " << index;
  }

  std::cout << "rehearsal: world " << world << " (" << pool.at("COHORT_DP") << "dp x "
            << pool.at("COHORT_CFG") << "cfg x " << pool.at("COHORT_ULYSSES")
            << "ulysses), gloo on loopback\n"
            << "rehearsal: deploy -> READY (generation 1): " << absl::FormatDuration(to_ready)
            << "\n"
            << "rehearsal: pod 3 SIGTERM -> exited 0 (leave + teardown): "
            << absl::FormatDuration(leave_took) << "; DEGRADED reason '" << degraded->reason()
            << "'; pod 3 back as rank 3, READY (generation 2) "
            << absl::FormatDuration(leave_to_ready) << " after the SIGTERM\n"
            << "rehearsal: coordinator rolling update: old pod SIGTERM -> exited 0 in "
            << absl::FormatDuration(drain_took) << "; new pod start -> all " << world
            << " members reattached, READY: " << absl::FormatDuration(reattach_took)
            << " (SIGTERM -> READY " << absl::FormatDuration(update_took)
            << "); phases on the new pod: " << phases << "; generation " << restored->generation()
            << "; every pod READY on its " << groups
            << " communicators before, during (no coordinator) and after" << std::endl;
}

}  // namespace
}  // namespace cohort::testing
