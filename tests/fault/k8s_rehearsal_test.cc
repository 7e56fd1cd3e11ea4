// A rehearsal of the Kubernetes deployment without Kubernetes (issue 12). An overlay is
// rendered with `kubectl kustomize`, and the coordinator Deployment's and the agents' (a
// StatefulSet, or a LeaderWorkerSet's worker template) containers run as plain processes with
// exactly the arguments and environment the manifests give them: the pool ConfigMap through
// envFrom, the downward API (pod name, namespace, pod labels, the pod IP), the environment the
// LWS controller injects, and $(VAR) expansion as the kubelet does it. What cannot exist here is
// replaced, and only that (Localize and CommandFor below):
//   - the pods' fixed ports (0.0.0.0:N) become 127.0.0.1:0 (tests never use fixed ports), and
//     the Service name in COHORT_COORDINATOR becomes the coordinator's loopback address; with
//     TLS, the agent is told the Service name as the name to verify (--tls-server-name), since
//     the name it dialled (cohort-coordinator) does not resolve here;
//   - every volume mount path becomes a scratch directory holding what the volume would: the
//     PVC (the state) one that outlives the coordinator process, as the PVC outlives its pod;
//     an emptyDir a fresh one per pod; a Secret the files the test mints for it; a ConfigMap
//     its rendered data keys. A volume of another kind fails the test;
//   - COHORT_BACKEND=nccl becomes gloo (no GPU here; the NCCL path has its own tests).
// Plaintext overlay: pod name -> identity and pod index -> rank; pod N restarted after a planned
// leave (SIGTERM) gets rank N back and the pool is READY again; a pod rescheduled to another node
// (a new pod IP) keeps its rank; a rolling update of the coordinator (SIGTERM, then the new pod
// on the same Service address and state volume) never takes the READY pool out of READY.
// LWS overlay (on top of the tls overlay: Secrets, policy): worker index -> rank over mutual TLS
// with the policy; a worker restarted after a planned leave gets its rank back.
// Figures go to stdout ("rehearsal: ..."); every wait has a deadline and none bounds a time.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/transport_security.h"
#include "gmock/gmock.h"
#include "tests/certs.h"
#include "tests/cluster.h"
#include "tests/fake_dns_server.h"
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

// What the downward API gives a pod, and the environment a controller injects into its
// container (LWS_* from the LeaderWorkerSet controller).
struct PodFacts {
  std::string name;
  std::string ip = "127.0.0.1";
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> injected_env;
};

// One container of a rendered workload, with its pod spec (the volumes) and the ConfigMaps it
// can reference.
struct Workload {
  YAML::Node object;  // the whole rendered object
  YAML::Node pod_spec;
  YAML::Node container;
  std::map<std::string, std::map<std::string, std::string>> config_maps;
};

// `kind`/`name` in `rendered`. The pod template: spec.template for the built-in workloads,
// spec.leaderWorkerTemplate.workerTemplate for a LeaderWorkerSet (no leaderTemplate: the leader
// runs the workers' template).
absl::StatusOr<Workload> FindWorkload(const std::string& rendered, const std::string& kind,
                                      const std::string& name) {
  Workload w;
  for (const YAML::Node& doc : YAML::LoadAll(rendered)) {
    if (!doc.IsMap()) continue;
    const std::string doc_kind = doc["kind"].as<std::string>("");
    const std::string doc_name = doc["metadata"]["name"].as<std::string>("");
    if (doc_kind == "ConfigMap") {
      for (const auto& kv : doc["data"]) {
        w.config_maps[doc_name][kv.first.as<std::string>()] = kv.second.as<std::string>();
      }
    }
    if (doc_kind == kind && doc_name == name) {
      w.object = doc;
      w.pod_spec = kind == "LeaderWorkerSet"
                       ? doc["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]
                       : doc["spec"]["template"]["spec"];
    }
  }
  if (!w.pod_spec.IsDefined() || !w.pod_spec["containers"].IsSequence()) {
    return absl::NotFoundError(absl::StrCat("no ", kind, " ", name, " with containers"));
  }
  w.container = w.pod_spec["containers"][0];
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
  // The controller's variables (the LWS webhook adds them to the container unless it sets
  // them itself).
  for (const auto& [k, v] : pod.injected_env) env.emplace(k, v);
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

// What one pod's volumes are here: mount path -> scratch directory.
using Mounts = std::map<std::string, std::string>;

// Secret name -> key -> contents: what the cluster would hold (the test mints it).
using Secrets = std::map<std::string, std::map<std::string, std::string>>;

// Makes the scratch directories behind `w`'s container's volumeMounts for one pod, under
// `pod_dir`: a persistentVolumeClaim is `pvc_dir` (shared, it outlives pods), an emptyDir a new
// directory, a Secret the files of `secrets`, a ConfigMap its data keys (both as the kubelet
// projects them without `items`). Any other volume fails.
absl::StatusOr<Mounts> MountVolumes(const Workload& w, const std::string& pod_dir,
                                    const std::string& pvc_dir, const Secrets& secrets) {
  std::map<std::string, YAML::Node> volumes;
  for (const YAML::Node& v : w.pod_spec["volumes"]) volumes[v["name"].as<std::string>()] = v;
  Mounts mounts;
  for (const YAML::Node& m : w.container["volumeMounts"]) {
    const std::string name = m["name"].as<std::string>();
    const std::string path = m["mountPath"].as<std::string>();
    if (m["subPath"].IsDefined()) {
      return absl::UnimplementedError("the rehearsal does not know subPath mounts (" + name + ")");
    }
    auto it = volumes.find(name);
    if (it == volumes.end()) return absl::NotFoundError("volumeMount of no volume: " + name);
    const YAML::Node& v = it->second;
    if (v["persistentVolumeClaim"].IsDefined()) {
      mounts[path] = pvc_dir;
      continue;
    }
    const std::string dir = pod_dir + "/" + name;
    if (mkdir(dir.c_str(), 0700) != 0) return absl::InternalError("cannot make " + dir);
    mounts[path] = dir;
    std::map<std::string, std::string> files;
    if (v["emptyDir"].IsDefined()) {
      continue;
    } else if (v["secret"].IsDefined()) {
      const std::string secret = v["secret"]["secretName"].as<std::string>("");
      auto s = secrets.find(secret);
      if (s == secrets.end()) {
        return absl::NotFoundError("volume " + name + " mounts Secret " + secret +
                                   ", which the rehearsal was given no files for");
      }
      files = s->second;
    } else if (v["configMap"].IsDefined()) {
      const std::string cm = v["configMap"]["name"].as<std::string>("");
      auto c = w.config_maps.find(cm);
      if (c == w.config_maps.end()) {
        return absl::NotFoundError("volume " + name + " mounts no rendered ConfigMap: " + cm);
      }
      files = c->second;
    } else {
      return absl::UnimplementedError(absl::StrCat(
          "volume ", name, " is of a kind the rehearsal does not know: ", YAML::Dump(v),
          "\n(it knows persistentVolumeClaim, emptyDir, secret, configMap; teach MountVolumes)"));
    }
    if ((v["secret"].IsDefined() && v["secret"]["items"].IsDefined()) ||
        (v["configMap"].IsDefined() && v["configMap"]["items"].IsDefined())) {
      return absl::UnimplementedError("the rehearsal does not know `items` (volume " + name + ")");
    }
    for (const auto& [key, text] : files) ScratchDir::Write(dir + "/" + key, text);
  }
  return mounts;
}

// A path in `arg` under one of `mounts` (a path starting where no path character precedes it)
// moved to its scratch directory; one pass, a mount inside another before the outer one.
std::string MapMountPaths(const std::string& arg, const Mounts& mounts) {
  auto path_char = [](char c) {
    return absl::ascii_isalnum(c) || c == '/' || c == '.' || c == '_' || c == '-';
  };
  std::string out;
  for (size_t i = 0; i < arg.size();) {
    bool mapped = false;
    if (arg[i] == '/' && (i == 0 || !path_char(arg[i - 1]))) {
      for (auto m = mounts.rbegin(); m != mounts.rend() && !mapped; ++m) {
        const std::string& path = m->first;
        const size_t end = i + path.size();
        if (arg.compare(i, path.size(), path) == 0 && (end == arg.size() || arg[end] == '/')) {
          out += m->second;
          i = end;
          mapped = true;
        }
      }
    }
    if (!mapped) out += arg[i++];
  }
  return out;
}

// What cannot exist here (see the file comment): fixed pod ports, mount paths.
std::string Localize(std::string arg, const Mounts& mounts) {
  const size_t any = arg.find("0.0.0.0:");
  if (any != std::string::npos) arg = arg.substr(0, any) + "127.0.0.1:0";
  return MapMountPaths(arg, mounts);
}

// argv and env (for ChildProcess::Spawn) of `w`'s container for `pod`.
struct Command {
  std::vector<std::string> argv;
  std::vector<std::string> env;
};

// COHORT_COORDINATOR (the Service's host:port in the manifests) becomes the coordinator's
// loopback address `service_address`; with `dns_authority` (a FakeDnsServer serving the
// Service's host name as 127.0.0.1) it becomes dns://<dns_authority>/<Service host>:<port of
// service_address> instead: the agent dials the Service's name, as in the cluster.
absl::StatusOr<Command> CommandFor(const Workload& w, const std::string& binary,
                                   const PodFacts& pod, const Mounts& mounts,
                                   const std::string& service_address,
                                   const std::string& dns_authority = "") {
  absl::StatusOr<std::map<std::string, std::string>> env =
      ContainerEnv(w, pod, {{"COHORT_BACKEND", "gloo"}});
  if (!env.ok()) return env.status();
  Command c;
  c.argv.push_back(binary);
  for (const YAML::Node& a : w.container["args"]) {
    c.argv.push_back(Localize(Expand(a.as<std::string>(), *env), mounts));
  }
  for (auto& [k, v] : *env) v = MapMountPaths(v, mounts);
  if (auto it = env->find("COHORT_COORDINATOR"); it != env->end()) {
    const std::string service_host = it->second.substr(0, it->second.rfind(':'));
    it->second = dns_authority.empty()
                     ? service_address
                     : absl::StrCat("dns://", dns_authority, "/", service_host,
                                    service_address.substr(service_address.rfind(':')));
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
  // Renders deploy/k8s/overlays/<overlay> and finds the coordinator Deployment and the agents'
  // workload (`agent_kind`: StatefulSet or LeaderWorkerSet, named cohort-agent).
  void Load(const std::string& overlay, const std::string& agent_kind) {
    const std::string rendered =
        Render(std::string(COHORT_SOURCE_DIR) + "/deploy/k8s/overlays/" + overlay);
    ASSERT_FALSE(rendered.empty());
    absl::StatusOr<Workload> coordinator =
        FindWorkload(rendered, "Deployment", "cohort-coordinator");
    ASSERT_TRUE(coordinator.ok()) << coordinator.status();
    absl::StatusOr<Workload> agents = FindWorkload(rendered, agent_kind, "cohort-agent");
    ASSERT_TRUE(agents.ok()) << agents.status();
    coordinator_ = *coordinator;
    agents_ = *agents;
    agent_kind_ = agent_kind;
    if (agent_kind == "LeaderWorkerSet") {
      // One group (replicas 1) of `size` pods; more groups are not one pool (docs/kubernetes.md).
      ASSERT_EQ(agents_.object["spec"]["replicas"].as<int>(1), 1);
      replicas_ = agents_.object["spec"]["leaderWorkerTemplate"]["size"].as<int>(0);
    } else {
      replicas_ = agents_.object["spec"]["replicas"].as<int>(0);
    }
    ASSERT_GT(replicas_, 0);
    state_dir_ = scratch_.path() + "/pvc";
    ASSERT_EQ(mkdir(state_dir_.c_str(), 0700), 0);
  }

  // The pool ConfigMap (the one the agents' envFrom names).
  const std::map<std::string, std::string>& Pool() const {
    return agents_.config_maps.at(
        agents_.container["envFrom"][0]["configMapRef"]["name"].as<std::string>());
  }

  // The name of agent pod `index`. StatefulSet: cohort-agent-<ordinal>. LeaderWorkerSet (one
  // group, 0): the leader is <lws>-<group>, worker W of the group <lws>-<group>-<W> (the LWS
  // controller names the leader StatefulSet <lws> and each group's worker StatefulSet
  // <lws>-<group> with ordinals from 1; kubernetes-sigs/lws documentation, "Architecture and
  // Relationship with StatefulSet").
  std::string AgentPodName(int index) const {
    if (agent_kind_ == "LeaderWorkerSet" && index > 0) {
      return absl::StrCat("cohort-agent-0-", index);
    }
    return absl::StrCat("cohort-agent-", index);
  }

  // What the cluster gives agent pod `index` (pod IP `ip`): its name, labels, and for a
  // LeaderWorkerSet the controller's labels and environment (kubernetes-sigs/lws,
  // site/content/en/docs/reference/labels-annotations-and-environment-variables.md).
  PodFacts AgentPod(int index, const std::string& ip) const {
    PodFacts pod{.name = AgentPodName(index), .ip = ip};
    if (agent_kind_ == "LeaderWorkerSet") {
      // The leader's ordinal in the leader StatefulSet is its group index (0 here), worker W's
      // in its group's worker StatefulSet is W: for group 0 this label equals the worker index
      // by accident; the manifest does not read it (POD_INDEX is the worker-index label).
      pod.labels["apps.kubernetes.io/pod-index"] = absl::StrCat(index);
      pod.labels["leaderworkerset.sigs.k8s.io/name"] = "cohort-agent";
      pod.labels["leaderworkerset.sigs.k8s.io/group-index"] = "0";
      pod.labels["leaderworkerset.sigs.k8s.io/worker-index"] = absl::StrCat(index);
      pod.injected_env["LWS_LEADER_ADDRESS"] =
          absl::StrCat("cohort-agent-0.cohort-agent.", kNamespace);
      pod.injected_env["LWS_GROUP_SIZE"] = absl::StrCat(replicas_);
      pod.injected_env["LWS_WORKER_INDEX"] = absl::StrCat(index);
    } else {
      pod.labels["apps.kubernetes.io/pod-index"] = absl::StrCat(index);
    }
    return pod;
  }

  // A new directory for one pod's volumes, and what they hold.
  absl::StatusOr<Mounts> MountsFor(const Workload& w, const std::string& pod_name) {
    const std::string dir = absl::StrCat(scratch_.path(), "/", pod_name, "-", pod_starts_++);
    if (mkdir(dir.c_str(), 0700) != 0) return absl::InternalError("cannot make " + dir);
    return MountVolumes(w, dir, state_dir_, secrets_);
  }

  // Starts the coordinator pod; `listen`: the Service's address to keep (empty: any port).
  void StartCoordinator(const std::string& pod_name) {
    absl::StatusOr<Mounts> mounts = MountsFor(coordinator_, pod_name);
    ASSERT_TRUE(mounts.ok()) << mounts.status();
    absl::StatusOr<Command> c =
        CommandFor(coordinator_, Cluster::CoordinatorBinary(), {.name = pod_name}, *mounts, "");
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
    stub_ = v1::AdminService::NewStub(CreateChannel(address_, admin_security_));
  }

  // Starts agent pod `index` (pod IP `ip`): StatefulSet ordinal or LWS worker index.
  void StartAgentPod(int index, const std::string& ip = "127.0.0.1") {
    const PodFacts pod = AgentPod(index, ip);
    absl::StatusOr<Mounts> mounts = MountsFor(agents_, pod.name);
    ASSERT_TRUE(mounts.ok()) << mounts.status();
    absl::StatusOr<Command> c =
        CommandFor(agents_, std::string(COHORT_BIN_DIR) + "/cohort-agent", pod, *mounts, address_,
                   service_dns_ != nullptr ? service_dns_->authority() : "");
    ASSERT_TRUE(c.ok()) << c.status();
    agent_commands_[index] = *c;
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
  // Pod `index` gets SIGTERM (a planned leave): it exits 0 (`took`: until then) and the pool goes
  // DEGRADED with reason "left".
  void LeaveAndExpectDegradedLeft(int index, absl::Duration* took) {
    const absl::Time sigterm = absl::Now();
    agent_processes_[index]->Signal(SIGTERM);
    std::optional<int> exited = agent_processes_[index]->WaitExit(kDeadline);
    ASSERT_TRUE(exited.has_value()) << "pod " << index << " did not exit on SIGTERM";
    EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0) << *exited;
    *took = absl::Now() - sigterm;
    absl::StatusOr<v1::PoolState> degraded =
        WaitFor([](const v1::PoolState& s) { return s.phase() == v1::POOL_PHASE_DEGRADED; });
    ASSERT_TRUE(degraded.ok()) << degraded.status();
    EXPECT_EQ(degraded->reason(), "left");
  }

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
  std::string agent_kind_;
  int replicas_ = 0;
  Secrets secrets_;                          // what the Secret volumes hold
  TransportSecurityOptions admin_security_;  // the admin client's (insecure by default)
  std::map<int, Command> agent_commands_;    // the last start of each agent pod
  // The cluster DNS for the Service's name (null: agents get the coordinator's address).
  std::unique_ptr<FakeDnsServer> service_dns_;
  int pod_starts_ = 0;
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
  ASSERT_NO_FATAL_FAILURE(Load("plaintext", "StatefulSet"));
  // The manifests' own pool: the ConfigMap's world size, as many pods as the StatefulSet has.
  const auto& pool = Pool();
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
  absl::Duration leave_took;
  ASSERT_NO_FATAL_FAILURE(LeaveAndExpectDegradedLeft(3, &leave_took));
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
            << absl::FormatDuration(leave_took) << "; DEGRADED reason 'left'"
            << "; pod 3 back as rank 3, READY (generation 2) "
            << absl::FormatDuration(leave_to_ready) << " after the SIGTERM\n"
            << "rehearsal: coordinator rolling update: old pod SIGTERM -> exited 0 in "
            << absl::FormatDuration(drain_took) << "; new pod start -> all " << world
            << " members reattached, READY: " << absl::FormatDuration(reattach_took)
            << " (SIGTERM -> READY " << absl::FormatDuration(update_took)
            << "); phases on the new pod: " << phases << "; generation " << restored->generation()
            << "; every pod READY on its " << groups
            << " communicators before, during (no coordinator) and after" << std::endl;
}

TEST_F(Rehearsal, LwsOverlay_WorkerIndexToRank_MutualTlsWithPolicy_RestartedWorkerKeepsRank) {
  ASSERT_NO_FATAL_FAILURE(Load("lws", "LeaderWorkerSet"));
  // The manifests' own pool: the ConfigMap's world size, as many pods as the LWS group has.
  const auto& pool = Pool();
  const int world = std::stoi(pool.at("COHORT_WORLD_SIZE"));
  ASSERT_EQ(replicas_, world) << "the LeaderWorkerSet's size and the pool's world size differ";

  // The two Secrets of the tls overlay, as docs/kubernetes.md ("TLS Secrets") says they must
  // be, in cert-manager's layout. The coordinator's certificate names the Service only (no IP
  // SAN): an agent that verified the loopback address it dials here would be refused.
  TestCerts& certs = TestCerts::Get();
  ASSERT_TRUE(certs.ok());
  ASSERT_TRUE(certs.Mint(absl::StrCat("--server lws-coordinator --dns cohort-coordinator,",
                                      "cohort-coordinator.", kNamespace, ".svc,",
                                      "cohort-coordinator.", kNamespace, ".svc.cluster.local")));
  ASSERT_TRUE(certs.Mint("--client lws-agents --uri spiffe://cohort/agents --server-auth"));
  auto secret = [&](const std::string& name) {
    return std::map<std::string, std::string>{
        {"tls.crt", ScratchDir::Read(certs.Path(name + ".crt"))},
        {"tls.key", ScratchDir::Read(certs.Path(name + ".key"))},
        {"ca.crt", ScratchDir::Read(certs.Path("ca.crt"))}};
  };
  secrets_["cohort-coordinator-tls"] = secret("lws-coordinator");
  secrets_["cohort-agent-tls"] = secret("lws-agents");
  // The Service's name resolves (to the coordinator's loopback address) through a DNS server
  // of the test's, so the agents dial cohort-coordinator and check the certificate for it.
  service_dns_ = std::make_unique<FakeDnsServer>("cohort-coordinator", "127.0.0.1");
  ASSERT_TRUE(service_dns_->ok());
  // The admin client: a viewer of the policy (spiffe://cohort/viewer), checking the Service's
  // name as cohortctl --tls-server-name does through kubectl port-forward.
  admin_security_ = certs.Client("viewer");
  admin_security_.server_name = "cohort-coordinator";

  // --- Deploy: the coordinator pod, then the group's pods at once (the leader, then workers).
  ASSERT_NO_FATAL_FAILURE(StartCoordinator("cohort-coordinator-6c9d7f8b4-q7r2t"));
  const absl::Time deployed = absl::Now();
  for (int w = 0; w < world; ++w) ASSERT_NO_FATAL_FAILURE(StartAgentPod(w));
  absl::StatusOr<v1::PoolState> ready =
      WaitFor([&](const v1::PoolState& s) { return AllReadyAt(s, 1, world); });
  ASSERT_TRUE(ready.ok()) << ready.status();
  const absl::Duration to_ready = absl::Now() - deployed;
  // Pod name -> identity, worker index -> rank.
  for (const v1::MemberState& m : ready->members()) {
    EXPECT_EQ(m.identity(), AgentPodName(m.rank()));
  }
  EXPECT_EQ(AgentPodName(0), "cohort-agent-0");
  EXPECT_EQ(AgentPodName(7), "cohort-agent-0-7");
  const std::string log3 = ReadFile(agent_logs_[3]);
  EXPECT_TRUE(absl::StrContains(log3, "identity cohort-agent-0-3 (from flag --identity")) << log3;
  EXPECT_TRUE(absl::StrContains(log3, "rank hint 3 (from env POD_INDEX)")) << log3;
  // What the agents were given: the Secret's files at their scratch paths, the Service's name
  // (resolved by the test's DNS server), no --insecure and no --tls-server-name.
  const Command& agent3 = agent_commands_[3];
  std::map<std::string, std::string> env3;
  for (const std::string& e : agent3.env) {
    const size_t eq = e.find('=');
    if (eq != std::string::npos) env3[e.substr(0, eq)] = e.substr(eq + 1);
  }
  for (const char* name : {"COHORT_TLS_CERT", "COHORT_TLS_KEY", "COHORT_TLS_CA"}) {
    EXPECT_TRUE(absl::StartsWith(env3[name], scratch_.path())) << name << "=" << env3[name];
  }
  EXPECT_EQ(ScratchDir::Read(env3["COHORT_TLS_CERT"]), secrets_["cohort-agent-tls"]["tls.crt"]);
  EXPECT_EQ(env3["LWS_WORKER_INDEX"], "3");
  EXPECT_EQ(env3["POD_INDEX"], "3");
  EXPECT_EQ(env3["COHORT_COORDINATOR"],
            absl::StrCat("dns://", service_dns_->authority(), "/cohort-coordinator",
                         address_.substr(address_.rfind(':'))));
  EXPECT_GT(service_dns_->AnswersWith("127.0.0.1"), 0);
  for (const std::string& a : agent3.argv) {
    EXPECT_FALSE(absl::StartsWith(a, "--insecure") || absl::StartsWith(a, "--tls-server-name"))
        << a;
  }

  // Mutual TLS and the mounted policy: no client certificate -> no connection; a certificate of
  // the cluster's CA that no principal of policy.yaml names -> refused, and the refusal is in
  // the audit log (--audit-log=/dev/stdout: the coordinator's stdout).
  auto get_state_as = [&](const TransportSecurityOptions& security) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::GetStateRequest request;
    request.set_pool("default");
    v1::GetStateResponse response;
    return v1::AdminService::NewStub(CreateChannel(address_, security))
        ->GetState(&context, request, &response);
  };
  TransportSecurityOptions anonymous = certs.Client("");
  anonymous.server_name = "cohort-coordinator";
  EXPECT_FALSE(get_state_as(anonymous).ok());
  TransportSecurityOptions stranger = certs.Client("agent-0");  // spiffe://cohort/agent/agent-0
  stranger.server_name = "cohort-coordinator";
  const grpc::Status refused = get_state_as(stranger);
  // No principal matches: UNAUTHENTICATED (docs/security.md).
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAUTHENTICATED) << refused.error_message();
  std::optional<std::string> audit = ReadAfter(*coordinator_process_, "who=");
  ASSERT_TRUE(audit.has_value())
      << "no audit line for the refused Read on the coordinator's stdout";
  audit = "who=" + *audit;
  EXPECT_TRUE(absl::StrContains(*audit, "role=none action=Read pool=default")) << *audit;
  EXPECT_TRUE(absl::StrContains(*audit, "result=UNAUTHENTICATED")) << *audit;

  // --- Restart worker 3: the kubelet sends SIGTERM (a planned leave; restartPolicy None: the
  // LWS controller recreates that pod alone), the pod comes back with the same environment.
  const absl::Time sigterm = absl::Now();
  absl::Duration leave_took;
  ASSERT_NO_FATAL_FAILURE(LeaveAndExpectDegradedLeft(3, &leave_took));
  // The pod's environment without the paths of its volumes (a new pod has new scratch ones).
  auto without_volumes = [&](const std::vector<std::string>& env) {
    std::vector<std::string> kept;
    for (const std::string& e : env) {
      if (!absl::StrContains(e, scratch_.path())) kept.push_back(e);
    }
    return kept;
  };
  const std::vector<std::string> before_env = without_volumes(agent_commands_[3].env);
  ASSERT_NO_FATAL_FAILURE(StartAgentPod(3));
  absl::StatusOr<v1::PoolState> back =
      WaitFor([&](const v1::PoolState& s) { return AllReadyAt(s, 2, world); });
  ASSERT_TRUE(back.ok()) << back.status();
  const absl::Duration leave_to_ready = absl::Now() - sigterm;
  bool rank3 = false;
  for (const v1::MemberState& m : back->members()) {
    EXPECT_EQ(m.identity(), AgentPodName(m.rank()));
    rank3 |= m.identity() == "cohort-agent-0-3" && m.rank() == 3;
  }
  EXPECT_TRUE(rank3);
  // The same environment, up to the scratch directories of the new pod's volumes.
  EXPECT_EQ(before_env, without_volumes(agent_commands_[3].env));
  for (auto& [index, process] : agent_processes_) {
    EXPECT_FALSE(process->WaitExit(absl::ZeroDuration()).has_value()) << "pod " << index;
  }

  std::cout << "rehearsal (lws, mTLS): world " << world << " = one LeaderWorkerSet group of "
            << replicas_ << " (" << AgentPodName(0) << " .. " << AgentPodName(world - 1) << "; "
            << pool.at("COHORT_DP") << "dp x " << pool.at("COHORT_CFG") << "cfg x "
            << pool.at("COHORT_ULYSSES")
            << "ulysses), gloo on loopback, mutual TLS + policy; the agents dial "
            << "cohort-coordinator (resolved by the test's DNS server: "
            << service_dns_->AnswersWith("127.0.0.1") << " answers)\n"
            << "rehearsal (lws, mTLS): deploy -> READY (generation 1): "
            << absl::FormatDuration(to_ready) << "; worker index = rank for all " << world << "\n"
            << "rehearsal (lws, mTLS): no client certificate: no connection; a certificate of the "
               "CA outside the policy: refused, audit line '"
            << *audit << "'\n"
            << "rehearsal (lws, mTLS): cohort-agent-0-3 SIGTERM -> exited 0 (leave + teardown): "
            << absl::FormatDuration(leave_took) << "; DEGRADED reason 'left'"
            << "; back as rank 3, READY (generation 2) " << absl::FormatDuration(leave_to_ready)
            << " after the SIGTERM" << std::endl;
}

// A volume the rehearsal cannot stand in for fails it, saying which and why.
TEST(RehearsalVolumes, UnknownVolumeKindFailsClearly) {
  ScratchDir scratch;
  Workload w;
  w.pod_spec = YAML::Load(
      "containers: [{name: agent, volumeMounts: [{name: host, mountPath: /data}]}]\n"
      "volumes: [{name: host, hostPath: {path: /srv/data}}]\n");
  w.container = w.pod_spec["containers"][0];
  absl::StatusOr<Mounts> mounts = MountVolumes(w, scratch.path(), scratch.path(), {});
  ASSERT_FALSE(mounts.ok());
  EXPECT_EQ(mounts.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_TRUE(absl::StrContains(mounts.status().message(), "volume host is of a kind"))
      << mounts.status();
  EXPECT_TRUE(absl::StrContains(mounts.status().message(), "hostPath")) << mounts.status();
  // A Secret the test gave no files for fails too.
  w.pod_spec["volumes"][0] = YAML::Load("{name: host, secret: {secretName: nobody}}");
  const std::string pod_dir = scratch / "pod-1";
  ASSERT_EQ(mkdir(pod_dir.c_str(), 0700), 0);
  mounts = MountVolumes(w, pod_dir, scratch.path(), {});
  ASSERT_FALSE(mounts.ok());
  EXPECT_TRUE(absl::StrContains(mounts.status().message(), "Secret nobody")) << mounts.status();
}

// Mount paths move in arguments and values, whole path components only.
TEST(RehearsalVolumes, MountPathsMapToScratchDirectories) {
  const Mounts mounts = {{"/etc/cohort/tls", "/s/tls"},
                         {"/etc/cohort", "/s/etc"},
                         {"/tmp", "/s/tmp"},
                         {"/dev/shm", "/s/shm"}};
  EXPECT_EQ(MapMountPaths("--tls-cert=/etc/cohort/tls/tls.crt", mounts),
            "--tls-cert=/s/tls/tls.crt");
  EXPECT_EQ(MapMountPaths("/etc/cohort/policy/policy.yaml", mounts), "/s/etc/policy/policy.yaml");
  EXPECT_EQ(MapMountPaths("/tmp", mounts), "/s/tmp");
  EXPECT_EQ(MapMountPaths("--audit-log=/dev/stdout", mounts), "--audit-log=/dev/stdout");
  EXPECT_EQ(MapMountPaths("/tmpfs/x /var/tmp/y", mounts), "/tmpfs/x /var/tmp/y");
  EXPECT_EQ(MapMountPaths("a=/tmp/x,b=/tmp/y", mounts), "a=/s/tmp/x,b=/s/tmp/y");
}

}  // namespace
}  // namespace cohort::testing
