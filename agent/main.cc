// cohort-agent: joins a pool and holds its communicators until told to destroy them, the
// session is lost for good, or SIGINT/SIGTERM: a planned leave (the coordinator records it as
// such), orderly teardown, exit 0 — all within --leave-budget, or exit 1 when it runs out.
#include <signal.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "agent/agent.h"
#include "agent/agent_health_server.h"
#include "agent/agent_metrics.h"
#include "agent/identity.h"
#include "common/command_line.h"
#include "common/duration_flag.h"
#include "common/lock_order_checks.h"
#include "common/logging.h"
#include "common/metrics_tls.h"
#include "common/transport_flags.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  cohort::SkipLockOrderChecksInReleaseBuilds();
  cohort::agent::AgentOptions options;
  const cohort::agent::AgentOptions defaults;
  CLI::App app{"cohort-agent: one per GPU; builds the communicators the coordinator plans"};
  app.name("cohort-agent");
  cohort::AddVersionFlag(&app);
  app.footer(
      "In a pod, POD_NAME / POD_INDEX (downward API) stand in for --identity / --rank-hint.\n"
      "Example: cohort-agent --coordinator 10.0.0.5:7070 --identity $POD_NAME --rank-hint 3 "
      "--device 0 \\\n"
      "             --tls-cert agent.crt --tls-key agent.key --tls-ca ca.crt "
      "--tls-server-name cohort-coordinator\n"
      "         cohort-agent --insecure --coordinator 127.0.0.1:7070   (loopback demo)");
  int rank_hint = -1;
  std::string log_level;
  // Like cohortctl: the flag, else $COHORT_COORDINATOR, else the default.
  if (const char* env = std::getenv("COHORT_COORDINATOR"); env != nullptr && *env != '\0') {
    options.coordinator_address = env;
  }
  app.add_option("--coordinator,-c", options.coordinator_address,
                 "Coordinator host:port (default: $COHORT_COORDINATOR or " +
                     defaults.coordinator_address + ")");
  cohort::TransportFlags transport;
  transport.Register(&app, cohort::TransportSecurityOptions::Side::kClient,
                     &options.transport_security);
  app.add_option("--pool", options.pool, "Pool to join")->capture_default_str();
  CLI::Option* identity_flag =
      app.add_option("--identity", options.identity,
                     "Stable identity (default: $POD_NAME, else <hostname>:<device>)");
  app.add_option("--incarnation", options.incarnation,
                 "Per-process incarnation (default: generated)");
  CLI::Option* rank_hint_flag = app.add_option(
      "--rank-hint", rank_hint,
      "Preferred rank, e.g. a StatefulSet ordinal; -1: none (default: $COHORT_POD_INDEX, else "
      "$POD_INDEX, else $LWS_WORKER_INDEX, else the ordinal suffix of $POD_NAME, else none)");
  app.add_option("--device", options.device, "CUDA device index (-1: CPU only)")
      ->capture_default_str();
  options.allow_checks = true;  // the binary's communicators are its own
  app.add_option("--backends", options.backends,
                 "Backends this agent offers (default: all compiled in)");
  app.add_option("--host-address", options.host_address,
                 "IP address peers reach this agent at (Gloo binds here)")
      ->capture_default_str();
  cohort::AddDurationOption(&app, "--connect-timeout", &options.connect_timeout,
                            "How long to keep retrying an unreachable coordinator");
  cohort::AddMillisecondsAlias(&app, "--connect-timeout-ms", &options.connect_timeout,
                               "--connect-timeout");
  std::string metrics_listen;
  app.add_option("--metrics-listen", metrics_listen,
                 "IP:PORT to serve Prometheus metrics on at /metrics (port 0: any; default: off; "
                 "HTTPS with TLS)");
  bool metrics_insecure = false;
  app.add_flag("--metrics-insecure", metrics_insecure,
               "With TLS, serve /metrics over plain HTTP (gRPC stays TLS)")
      ->needs("--metrics-listen")
      ->group("Transport security");
  std::string health_listen;
  app.add_option("--health-listen", health_listen,
                 "IP:PORT of a plaintext port serving only grpc.health.v1 for the kubelet's gRPC "
                 "probes (port 0: any; default: off): \"\" SERVING unless the agent is broken "
                 "(liveness), \"cohort.agent.ready\" SERVING while joined (readiness)");
  absl::Duration leave_budget = absl::Seconds(20);
  cohort::AddDurationOption(
      &app, "--leave-budget", &leave_budget,
      "How long SIGTERM/SIGINT may take: announce the leave, tear the communicators down, exit "
      "(half of it at most waiting for the coordinator's answer). Keep it under the pod's "
      "terminationGracePeriodSeconds (default 30s); past it the agent exits with status 1");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error");
  // Exit status 2 on a bad flag (CLI11_PARSE would exit 105-115); 0 after --help or --version.
  if (std::optional<int> exit = cohort::ParseCommandLine(&app, argc, argv, std::cout, std::cerr)) {
    return *exit;
  }
  if (absl::Status s = cohort::SetupLogging("agent", log_level); !s.ok()) {
    std::cerr << "error: " << s.message() << "\n";
    return 2;
  }
  // Identity and rank hint: the flags, else the pod's environment (identity.h has the order).
  cohort::agent::PodIdentityFlags pod_flags;
  if (identity_flag->count() > 0) pod_flags.identity = options.identity;
  if (rank_hint_flag->count() > 0) pod_flags.rank_hint = rank_hint;
  absl::StatusOr<cohort::agent::PodIdentity> pod =
      cohort::agent::ResolvePodIdentity(pod_flags, cohort::agent::ProcessEnv());
  if (!pod.ok()) {
    std::cerr << "error: " << pod.status().message() << "\n";
    return 2;
  }
  if (pod->identity.empty()) {
    // The default provider, resolved here so that the log says what the agent joins as.
    absl::StatusOr<std::string> fallback =
        cohort::agent::HostnameDeviceIdentity(options.device).Identity();
    if (!fallback.ok()) {
      std::cerr << "error: no identity: " << fallback.status().message()
                << "; pass --identity or set POD_NAME\n";
      return 2;
    }
    options.identity = *fallback;
    spdlog::info("identity {} (from default <hostname>:<device>)", options.identity);
  } else {
    options.identity = pod->identity;
    spdlog::info("identity {} (from {})", options.identity, pod->identity_source);
  }
  options.rank_hint = pod->rank_hint;
  if (pod->rank_hint.has_value()) {
    spdlog::info("rank hint {} (from {})", *pod->rank_hint, pod->rank_hint_source);
  } else {
    spdlog::info("rank hint none (from {})", pod->rank_hint_source);
  }
  if (!pod->pod_namespace.empty()) {
    spdlog::info("pod namespace {} (from env POD_NAMESPACE; not part of the identity)",
                 pod->pod_namespace);
  }
  if (options.coordinator_address != defaults.coordinator_address) {
    spdlog::info("option --coordinator={}", options.coordinator_address);
  }
  spdlog::info("transport: {}", options.transport_security.Describe(
                                    cohort::TransportSecurityOptions::Side::kClient));
  if (options.pool != defaults.pool) spdlog::info("option --pool={}", options.pool);
  if (options.connect_timeout != defaults.connect_timeout) {
    spdlog::info("option --connect-timeout={}", absl::FormatDuration(options.connect_timeout));
  }
  if (options.device != defaults.device) spdlog::info("option --device={}", options.device);
  if (!metrics_listen.empty()) spdlog::info("option --metrics-listen={}", metrics_listen);
  if (!health_listen.empty()) spdlog::info("option --health-listen={}", health_listen);
  const std::optional<cohort::MetricsTls> metrics_tls =
      metrics_insecure ? std::nullopt : cohort::MetricsTlsOf(options.transport_security);
  if (!metrics_listen.empty() && metrics_tls.has_value()) {
    // Before joining: a metrics endpoint that cannot start stops the agent up front.
    if (absl::Status s = cohort::CivetwebTlsSupport(); !s.ok()) {
      std::cerr << "error: --metrics-listen with TLS: " << s.message()
                << "; add --metrics-insecure to serve /metrics over plain HTTP (e.g. on a "
                   "pod-local address), or drop --metrics-listen\n";
      return 2;
    }
  }
  if (metrics_insecure && metrics_tls == std::nullopt &&
      options.transport_security.mode == cohort::TransportSecurityOptions::Mode::kTls) {
    spdlog::warn(
        "option --metrics-insecure: /metrics is served over plain HTTP although TLS is on");
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A peer that vanishes mid-write must not kill the process (Gloo writes without MSG_NOSIGNAL).
  signal(SIGPIPE, SIG_IGN);
  // One thread takes the signals from here on. Until the agent has joined there is nothing to
  // leave: SIGTERM/SIGINT end the process at once, instead of after a join that is still being
  // retried (up to --connect-timeout, longer than a pod's grace period). After the join, the
  // main thread carries out the planned leave. SIGUSR1: the agent ended by itself.
  absl::Mutex signal_mu;
  int signalled = 0;    // guarded by signal_mu
  bool joined = false;  // guarded by signal_mu
  std::thread([&signals, &signal_mu, &signalled, &joined] {
    int sig = 0;
    sigwait(&signals, &sig);
    absl::MutexLock lock(&signal_mu);
    signalled = sig;
    if (!joined && sig != SIGUSR1) {
      spdlog::info("signal {} ({}) before the agent joined: nothing to leave; exiting", sig,
                   strsignal(sig));
      spdlog::default_logger()->flush();
      std::_Exit(0);
    }
  }).detach();

  // Before the join: probes are answered (live, not ready) while the first join is retried, so
  // that a coordinator that is slow to come up restarts no agent. Destroyed after the agent
  // stopped (it observes the agent until then).
  std::unique_ptr<cohort::agent::AgentHealthServer> health;
  if (!health_listen.empty()) {
    cohort::agent::AgentHealthServerOptions health_options;
    health_options.listen_address = health_listen;
    absl::StatusOr<std::unique_ptr<cohort::agent::AgentHealthServer>> started =
        cohort::agent::AgentHealthServer::Start(health_options);
    if (!started.ok()) {
      std::cerr << "error: " << started.status().message() << "\n";
      return 1;
    }
    health = *std::move(started);
    std::cout << "health on " << health->address() << std::endl;
    spdlog::info("health (plaintext grpc.health.v1) on {}", health->address());
  }
  absl::StatusOr<std::unique_ptr<cohort::agent::Agent>> agent =
      cohort::agent::Agent::Start(options);
  if (!agent.ok()) {
    if (health != nullptr) health->MarkBroken(std::string(agent.status().message()));
    std::cerr << "error: " << agent.status().message() << "\n";
    return 1;
  }
  {
    absl::MutexLock lock(&signal_mu);
    joined = true;  // a signal from now on is a planned leave
  }
  // Declared after the agent, so destroyed before it on every path: nothing observes an agent
  // that is gone.
  struct StopHealth {
    cohort::agent::AgentHealthServer* server;
    ~StopHealth() {
      if (server != nullptr) server->Stop();
    }
  } stop_health{health.get()};
  if (health != nullptr) {
    cohort::agent::Agent* observed = agent->get();
    health->Attach([observed] { return observed->Observe(); });
  }
  // After the join (the agent exists from then on); destroyed before the agent.
  std::unique_ptr<cohort::agent::AgentMetricsServer> metrics;
  if (!metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<cohort::agent::AgentMetricsServer>> started =
        cohort::agent::AgentMetricsServer::Start(metrics_listen, agent->get(), metrics_tls);
    if (!started.ok()) {
      std::cerr << "error: " << started.status().message() << "\n";
      (*agent)->Stop();
      return 1;
    }
    metrics = *std::move(started);
    std::cout << "metrics on " << metrics->url() << std::endl;
    spdlog::info("metrics on {}", metrics->url());
  }
  absl::Status ended;
  std::thread watcher([&] {
    ended = (*agent)->Wait();
    kill(getpid(), SIGUSR1);
  });
  int sig = 0;
  {
    absl::MutexLock lock(&signal_mu);
    signal_mu.Await(absl::Condition(
        +[](int* s) { return *s != 0; }, &signalled));
    sig = signalled;
  }
  absl::Notification left;
  std::thread budget;
  if (sig != SIGUSR1) {
    spdlog::info("signal {} ({}): leaving the pool within {}", sig, strsignal(sig),
                 absl::FormatDuration(leave_budget));
    // The grace period is not ours to extend: past the budget the process goes, done or not.
    budget = std::thread([&left, leave_budget] {
      if (left.WaitForNotificationWithTimeout(leave_budget)) return;
      spdlog::error(
          "the leave took longer than --leave-budget ({}); exiting without finishing "
          "the teardown",
          absl::FormatDuration(leave_budget));
      spdlog::default_logger()->flush();
      std::_Exit(1);
    });
    (void)(*agent)->Leave(absl::StrCat(strsignal(sig), " (signal ", sig, ")"), leave_budget / 2);
  }
  metrics.reset();
  (*agent)->Stop();
  watcher.join();
  left.Notify();
  if (budget.joinable()) budget.join();
  if (health != nullptr) {
    if (!ended.ok()) health->MarkBroken(std::string(ended.message()));
    health->Stop();
  }
  if (!ended.ok()) {
    std::cerr << "error: " << ended.message() << "\n";
    return 1;
  }
  return 0;
}
