// cohort-coordinator: parses flags into ServerOptions and runs the server until SIGINT/SIGTERM.
#include <signal.h>

#include <fstream>
#include <iostream>
#include <optional>

#include "CLI/CLI.hpp"
#include "common/cohort_config.h"
#include "common/command_line.h"
#include "common/config_flags.h"
#include "common/duration_flag.h"
#include "common/layout.h"
#include "common/lock_order_checks.h"
#include "common/logging.h"
#include "common/transport_flags.h"
#include "coordinator/audit.h"
#include "coordinator/policy.h"
#include "coordinator/server.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  cohort::SkipLockOrderChecksInReleaseBuilds();
  using cohort::coordinator::ServerOptions;
  ServerOptions options;
  const ServerOptions defaults;
  CLI::App app{"cohort-coordinator: admits agents, assigns ranks and forms communicator groups"};
  app.name("cohort-coordinator");
  cohort::AddVersionFlag(&app);
  app.footer(
      "Example: cohort-coordinator --listen 0.0.0.0:7070 --metrics-listen 0.0.0.0:9464 \\\n"
      "             --tls-cert coordinator.crt --tls-key coordinator.key --tls-ca ca.crt \\\n"
      "             --health-listen 0.0.0.0:7071\n"
      "         cohort-coordinator --insecure --listen 127.0.0.1:0 --port-file /tmp/port \\\n"
      "             --world-size 8 --dp 2 --cfg 2 --ulysses 2   (the pool starts itself)");
  std::string log_level, port_file, pool = "default", backend = "gloo";
  app.add_option("--listen", options.listen_address, "host:port to serve on (port 0: any)")
      ->capture_default_str();
  app.add_option("--port-file", port_file, "Write the port actually bound to this file");
  cohort::TransportFlags transport;
  transport.Register(&app, cohort::TransportSecurityOptions::Side::kServer,
                     &options.transport_security);
  app.add_option("--health-listen", options.health_listen_address,
                 "host:port of a plaintext port serving only grpc.health.v1 (for the kubelet's "
                 "gRPC probe, which speaks no TLS; port 0: any)")
      ->group("Transport security");
  bool reflection = false, no_reflection = false;
  app.add_flag("--reflection", reflection,
               "Serve gRPC server reflection (default: on with --insecure, off with TLS)")
      ->group("Transport security");
  app.add_flag("--no-reflection", no_reflection, "Do not serve gRPC server reflection")
      ->group("Transport security")
      ->excludes("--reflection");
  // Durations take 500ms, 60s, 2m; each old --...-ms flag stays as a hidden alias.
  cohort::AddDurationOption(&app, "--heartbeat-interval", &options.coordinator.heartbeat_interval,
                            "Heartbeat interval agents keep");
  cohort::AddMillisecondsAlias(&app, "--heartbeat-interval-ms",
                               &options.coordinator.heartbeat_interval, "--heartbeat-interval");
  app.add_option("--heartbeat-misses", options.coordinator.heartbeat_misses,
                 "Missed heartbeats before a member is declared lost")
      ->capture_default_str();
  cohort::AddDurationOption(&app, "--init-deadline", &options.coordinator.default_init_deadline,
                            "Default deadline of a generation");
  cohort::AddMillisecondsAlias(&app, "--init-deadline-ms",
                               &options.coordinator.default_init_deadline, "--init-deadline");
  app.add_option("--metrics-listen", options.metrics_listen_address,
                 "IP:PORT to serve Prometheus metrics on at /metrics (port 0: any; default: off; "
                 "HTTPS with TLS)");
  app.add_flag("--metrics-insecure", options.metrics_insecure,
               "With TLS, serve /metrics over plain HTTP (gRPC stays TLS)")
      ->needs("--metrics-listen")
      ->group("Transport security");
  app.add_option("--state-file", options.coordinator.state_file,
                 "Persist pool configs and identity -> rank here, and read them back at startup");
  app.add_flag("--state-file-reset", options.coordinator.state_file_reset,
               "If the state file does not load (corrupt, truncated or invalid), move it aside "
               "to <path>.corrupt-<UTC time> and start empty instead of refusing to start")
      ->needs("--state-file");
  app.add_flag("--standby-refill,!--no-standby-refill", options.coordinator.refill_from_standby,
               "Give a lost member's rank to a standby at once")
      ->capture_default_str();
  cohort::AddDurationOption(&app, "--elastic-dp-after", &options.coordinator.elastic_dp_after,
                            "Shrink dp when a whole replica stays lost this long (0: off)");
  cohort::AddMillisecondsAlias(&app, "--elastic-dp-after-ms", &options.coordinator.elastic_dp_after,
                               "--elastic-dp-after");
  cohort::AddDurationOption(&app, "--regroup-settle", &options.coordinator.regroup_settle,
                            "After a member is lost, wait this long before the next generation so "
                            "that losses arriving together cost one generation; each later "
                            "loss pushes the start back this long (0: at once)");
  cohort::AddDurationOption(&app, "--regroup-settle-max", &options.coordinator.regroup_settle_max,
                            "The longest the next generation waits after the first loss while "
                            "later losses push it back");
  const absl::Duration kMinAttach = absl::Milliseconds(1), kMaxAttach = absl::Hours(24);
  cohort::AddDurationOption(&app, "--attach-timeout", &options.coordinator.attach_timeout,
                            "How long a joined agent may take to attach its session, and how "
                            "long a restarted coordinator waits for every rank to come back "
                            "before rebuilding")
      ->check(cohort::DurationRange(kMinAttach, kMaxAttach));
  cohort::AddMillisecondsAlias(&app, "--attach-timeout-ms", &options.coordinator.attach_timeout,
                               "--attach-timeout")
      ->check(cohort::DurationRange(kMinAttach, kMaxAttach, /*milliseconds=*/true));
  // Limits on everything a client's input can grow (coordinator/limits.h).
  cohort::coordinator::Limits& limits = options.coordinator.limits;
  app.add_flag("--auto-create-pools,!--no-auto-create-pools",
               options.coordinator.create_pools_on_join,
               "Create a pool when an agent joins an unknown one (off: only the startup pool and "
               "pools made by cohortctl init exist)")
      ->capture_default_str();
  // Each limit: a bounded option, shown with its default under "Limits" in --help.
  auto limit = [&app](const std::string& name, auto& field, const std::string& description,
                      const CLI::Validator& check) {
    app.add_option(name, field, description)->capture_default_str()->check(check)->group("Limits");
  };
  const CLI::Validator& positive = CLI::PositiveNumber;
  limit("--max-pools", limits.max_pools, "Pools on this coordinator", positive);
  limit("--max-members-per-pool", limits.max_members_per_pool, "Members plus standbys of one pool",
        positive);
  limit("--max-world-size", limits.max_world_size,
        "World size of one pool (also bounds rank hints)",
        CLI::Range(int64_t{1}, cohort::kMaxWorldSize));
  limit("--max-identity-length", limits.max_identity_length,
        "Bytes of an agent identity or incarnation", CLI::Range(size_t{1}, size_t{4096}));
  limit("--max-pool-name-length", limits.max_pool_name_length, "Bytes of a pool name",
        CLI::Range(size_t{1}, size_t{253}));
  limit("--max-store-bytes", limits.max_store_bytes,
        "Key and value bytes in the rendezvous store of one pool generation", positive);
  limit("--max-store-keys", limits.max_store_keys,
        "Keys in the rendezvous store of one pool generation", positive);
  limit("--max-state-waiters", limits.max_state_waiters, "Waiting GetState long-polls per pool",
        positive);
  limit("--max-kv-waiters", limits.max_kv_waiters, "Waiting store gets per pool", positive);
  limit("--max-watchers", limits.max_watchers, "Watch streams in all", positive);
  limit("--max-event-log-bytes", limits.max_event_log_bytes,
        "Bytes of one pool's event log (the oldest events go first)", positive);
  limit("--max-queue-bytes", limits.max_queue_bytes,
        "Bytes queued for a session or watch stream that does not read (past it: "
        "the session is closed, the watcher dropped)",
        positive);
  cohort::AddDurationOption(&app, "--max-wait", &limits.max_wait,
                            "The longest generation deadline, store-get or long-poll timeout a "
                            "request may ask for")
      ->check(cohort::DurationRange(absl::Milliseconds(1), absl::InfiniteDuration()))
      ->group("Limits");
  cohort::AddMillisecondsAlias(&app, "--max-wait-ms", &limits.max_wait, "--max-wait")
      ->check(cohort::DurationRange(absl::Milliseconds(1), absl::InfiniteDuration(),
                                    /*milliseconds=*/true));
  std::string policy_file;
  app.add_option("--policy", policy_file,
                 "Access policy (YAML): principals, their roles and credentials; without it "
                 "every caller may do everything (docs/security.md). SIGHUP reads it again "
                 "(a file that does not load leaves the policy in force)")
      ->group("Access");
  std::string audit_log;
  app.add_option("--audit-log", audit_log,
                 "Append audit lines (refusals, operator commands) to this file instead of the "
                 "log")
      ->group("Access");
  app.add_option("--log-level", log_level,
                 "trace|debug|info|warn|error (default: $COHORT_LOG_LEVEL or info)");
  // An optional startup pool: it starts itself once its world is complete.
  cohort::ConfigFlags config_flags;
  config_flags.Register(&app, /*world_size_required=*/false);
  app.add_option("--pool", pool, "Name of the startup pool (with --world-size)")
      ->capture_default_str();
  app.add_option("--backend", backend, "Backend of the startup pool: gloo, nccl or none")
      ->capture_default_str();
  // Exit status 2 on a bad flag (CLI11_PARSE would exit 105-115); 0 after --help or --version.
  if (std::optional<int> exit = cohort::ParseCommandLine(&app, argc, argv, std::cout, std::cerr)) {
    return *exit;
  }

  if (absl::Status s = cohort::SetupLogging("coordinator", log_level); !s.ok()) {
    std::cerr << "error: " << s.message() << "\n";
    return 2;
  }
  options.reflection =
      reflection || (!no_reflection && options.transport_security.mode ==
                                           cohort::TransportSecurityOptions::Mode::kInsecure);
  std::shared_ptr<cohort::coordinator::PolicyAuthorizer> policy_authorizer;
  if (!policy_file.empty()) {
    absl::StatusOr<cohort::coordinator::Policy> policy =
        cohort::coordinator::Policy::Load(policy_file);
    if (!policy.ok()) {
      std::cerr << "error: --policy: " << policy.status().message() << "\n";
      return 2;
    }
    spdlog::info("option --policy={} ({} principals)", policy_file, policy->principals().size());
    policy_authorizer = std::make_shared<cohort::coordinator::PolicyAuthorizer>(*std::move(policy));
    options.coordinator.authorizer = policy_authorizer;
  }
  if (options.transport_security.mode == cohort::TransportSecurityOptions::Mode::kTls &&
      policy_authorizer == nullptr) {
    if (options.transport_security.client_auth ==
        cohort::TransportSecurityOptions::ClientAuth::kOptional) {
      std::cerr << "error: --tls-client-auth optional needs --policy: without one, a client "
                   "with no certificate could do everything (see docs/security.md)\n";
      return 2;
    }
    spdlog::warn(
        "TLS without --policy: every client certificate the CA signed may do everything (an "
        "operator, a viewer or an agent alike); give --policy to assign roles");
  }
  if (!audit_log.empty()) {
    if (absl::Status s = cohort::coordinator::SetAuditLogFile(audit_log); !s.ok()) {
      std::cerr << "error: " << s.message() << "\n";
      return 2;
    }
    spdlog::info("option --audit-log={}", audit_log);
  }
  if (config_flags.world_size > 0) {
    absl::StatusOr<cohort::ParallelConfig> config = config_flags.ToConfig();
    absl::StatusOr<cohort::Layout> layout = config.ok()
                                                ? cohort::Layout::Build(*config)
                                                : absl::StatusOr<cohort::Layout>(config.status());
    if (!layout.ok()) {
      std::cerr << "error: startup pool: " << layout.status().message() << "\n";
      return 2;
    }
    cohort::coordinator::CoordinatorOptions::StartupPool startup;
    startup.name = pool;
    startup.config = *config;
    startup.options.set_backend(backend);
    options.coordinator.pools.push_back(startup);
    spdlog::info("startup pool {}: {} on {}", pool, config->ShortString(), backend);
  }
  // Options that differ from their defaults.
  if (options.listen_address != defaults.listen_address)
    spdlog::info("option --listen={}", options.listen_address);
  if (options.coordinator.heartbeat_interval != defaults.coordinator.heartbeat_interval) {
    spdlog::info("option --heartbeat-interval={}",
                 absl::FormatDuration(options.coordinator.heartbeat_interval));
  }
  if (options.coordinator.heartbeat_misses != defaults.coordinator.heartbeat_misses) {
    spdlog::info("option --heartbeat-misses={}", options.coordinator.heartbeat_misses);
  }
  if (options.coordinator.default_init_deadline != defaults.coordinator.default_init_deadline) {
    spdlog::info("option --init-deadline={}",
                 absl::FormatDuration(options.coordinator.default_init_deadline));
  }
  spdlog::info("transport: {}", options.transport_security.Describe(
                                    cohort::TransportSecurityOptions::Side::kServer));
  if (options.transport_security.mode == cohort::TransportSecurityOptions::Mode::kTls) {
    spdlog::info("option --tls-cert={} --tls-key={} --tls-ca={} --tls-reload-interval={}",
                 options.transport_security.certificate_file, options.transport_security.key_file,
                 options.transport_security.ca_file,
                 absl::FormatDuration(options.transport_security.reload_interval));
    if (options.health_listen_address.empty()) {
      spdlog::warn(
          "TLS is on and --health-listen is not set: a kubelet gRPC probe (plaintext) cannot "
          "reach grpc.health.v1; add --health-listen 0.0.0.0:PORT for probes");
    }
  }
  if (!options.health_listen_address.empty()) {
    spdlog::info("option --health-listen={}", options.health_listen_address);
  }
  if (options.reflection != defaults.reflection) {
    spdlog::info("gRPC server reflection {}", options.reflection ? "on" : "off");
  }
  if (options.metrics_listen_address != defaults.metrics_listen_address) {
    spdlog::info("option --metrics-listen={}", options.metrics_listen_address);
  }
  if (options.metrics_insecure &&
      options.transport_security.mode == cohort::TransportSecurityOptions::Mode::kTls) {
    spdlog::warn(
        "option --metrics-insecure: /metrics is served over plain HTTP although TLS is on");
  }
  if (options.coordinator.state_file != defaults.coordinator.state_file) {
    spdlog::info("option --state-file={}", options.coordinator.state_file);
  }
  if (options.coordinator.state_file_reset) spdlog::info("option --state-file-reset");
  if (options.coordinator.refill_from_standby != defaults.coordinator.refill_from_standby) {
    spdlog::info("option --{}standby-refill", options.coordinator.refill_from_standby ? "" : "no-");
  }
  if (options.coordinator.attach_timeout != defaults.coordinator.attach_timeout) {
    spdlog::info("option --attach-timeout={}",
                 absl::FormatDuration(options.coordinator.attach_timeout));
  }
  if (options.coordinator.elastic_dp_after != defaults.coordinator.elastic_dp_after) {
    spdlog::info("option --elastic-dp-after={}",
                 absl::FormatDuration(options.coordinator.elastic_dp_after));
  }
  if (options.coordinator.regroup_settle != defaults.coordinator.regroup_settle) {
    spdlog::info("option --regroup-settle={}",
                 absl::FormatDuration(options.coordinator.regroup_settle));
  }
  if (options.coordinator.regroup_settle_max != defaults.coordinator.regroup_settle_max) {
    spdlog::info("option --regroup-settle-max={}",
                 absl::FormatDuration(options.coordinator.regroup_settle_max));
  }

  // Signals are taken synchronously by sigwait below, so block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  if (policy_authorizer != nullptr) sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A peer that vanishes mid-write must not kill the process (Gloo writes without MSG_NOSIGNAL).
  signal(SIGPIPE, SIG_IGN);

  auto server = cohort::coordinator::CoordinatorServer::Start(options);
  if (!server.ok()) {
    std::cerr << "error: " << server.status().message() << "\n";
    return 1;
  }
  if (!port_file.empty()) {
    // Written atomically so a reader never sees a partial port.
    const std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << (*server)->port() << "\n";
    std::rename(tmp.c_str(), port_file.c_str());
  }
  std::cout << "cohort-coordinator " << COHORT_VERSION << " listening on " << (*server)->address()
            << std::endl;
  if ((*server)->metrics_port() != 0) {
    std::cout << "metrics on " << (*server)->metrics_url() << std::endl;
  }
  if ((*server)->health_port() != 0) {
    std::cout << "health on " << (*server)->health_address() << std::endl;
  }
  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
    if (policy_authorizer == nullptr) {
      spdlog::warn("SIGHUP: there is no --policy to reload");
      continue;
    }
    absl::StatusOr<cohort::coordinator::Policy> policy =
        cohort::coordinator::Policy::Load(policy_file);
    if (!policy.ok()) {
      spdlog::error("SIGHUP: the policy in force stays: {}",
                    std::string(policy.status().message()));
      continue;
    }
    spdlog::info("SIGHUP: policy {} reloaded ({} principals)", policy_file,
                 policy->principals().size());
    policy_authorizer->Replace(*std::move(policy));
  }
  spdlog::info("signal {}: shutting down", sig);
  (*server)->Shutdown();
  return 0;
}
