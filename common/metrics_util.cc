#include "common/metrics_util.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"

namespace cohort {

prometheus::MetricFamily GaugeFamily(std::string name, std::string help) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = prometheus::MetricType::Gauge;
  return family;
}

void AddGauge(prometheus::MetricFamily& family, std::vector<prometheus::ClientMetric::Label> labels,
              double value) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  family.metric.push_back(std::move(metric));
}

void DestroyExposerPromptly(std::unique_ptr<prometheus::Exposer> exposer, const std::string& host,
                            int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const std::string wake_host = host == "0.0.0.0" || host == "localhost" ? "127.0.0.1" : host;
  if (port <= 0 || inet_pton(AF_INET, wake_host.c_str(), &addr.sin_addr) != 1) {
    exposer.reset();  // IPv6: no wake-up, the plain (slow) stop
    return;
  }
  absl::Notification gone;
  std::thread waker([&] {
    // Bounded: civetweb's own poll ends the stop within 2 s anyway.
    for (int i = 0; i < 200 && !gone.HasBeenNotified(); ++i) {
      const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd >= 0) {
        connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
        close(fd);
      }
      gone.WaitForNotificationWithTimeout(absl::Milliseconds(10));
    }
  });
  exposer.reset();
  gone.Notify();
  waker.join();
}

namespace {

// A file's identity and version: a rename over it or a rewrite changes one of these.
struct FileVersion {
  ino_t inode = 0;
  off_t size = -1;
  int64_t mtime_ns = -1;
  bool operator==(const FileVersion& o) const {
    return inode == o.inode && size == o.size && mtime_ns == o.mtime_ns;
  }
};

FileVersion VersionOf(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return {};
  return {st.st_ino, st.st_size,
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

std::vector<FileVersion> VersionsOf(const MetricsTls& tls) {
  return {VersionOf(tls.certificate_file), VersionOf(tls.key_file), VersionOf(tls.ca_file)};
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::UnavailableError(absl::StrCat("cannot read ", path));
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// The key and the certificate in one private temporary file (what civetweb's ssl_certificate
// takes); the caller removes it.
absl::StatusOr<std::string> WriteCombinedPem(const MetricsTls& tls) {
  absl::StatusOr<std::string> key = ReadFile(tls.key_file);
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> cert = ReadFile(tls.certificate_file);
  if (!cert.ok()) return cert.status();
  const char* tmpdir = std::getenv("TMPDIR");
  std::string path = absl::StrCat(tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp",
                                  "/cohort-metrics-XXXXXX");
  const int fd = mkstemp(path.data());  // 0600
  if (fd < 0) return absl::UnavailableError("cannot create a temporary file for the metrics key");
  std::string pem = absl::StrCat(*key, key->empty() || key->back() == '\n' ? "" : "\n", *cert);
  size_t written = 0;
  while (written < pem.size()) {
    const ssize_t n = write(fd, pem.data() + written, pem.size() - written);
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  close(fd);
  if (written != pem.size()) {
    unlink(path.c_str());
    return absl::UnavailableError("cannot write the metrics key to a temporary file");
  }
  return path;
}

}  // namespace

namespace {

// Loads libcohort_civetweb_ssl_compat.so (civetweb_ssl_compat.cc) when this process's OpenSSL
// lacks SSL_get_peer_certificate. It must come before anything dlopens "libssl.so": glibc would
// otherwise record that name for the real libssl.so.3 (already loaded by gRPC) and answer every
// later dlopen("libssl.so") with it. Looked for next to the executable (the build tree) and in
// <libdir>/cohort (installed).
void LoadSslCompatIfNeeded() {
  if (dlsym(RTLD_DEFAULT, "SSL_get_peer_certificate") != nullptr) return;
  std::vector<std::string> candidates;
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    std::string dir(exe, static_cast<size_t>(n));
    dir = dir.substr(0, dir.rfind('/'));
    candidates.push_back(dir + "/libcohort_civetweb_ssl_compat.so");
    candidates.push_back(dir + "/../lib/cohort/libcohort_civetweb_ssl_compat.so");
  }
  candidates.push_back(COHORT_SSL_COMPAT_INSTALLED);
  for (const std::string& path : candidates) {
    if (access(path.c_str(), R_OK) != 0) continue;
    // Kept loaded for the life of the process, like civetweb's own handle.
    if (dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL) != nullptr) return;
  }
}

absl::Status ProbeCivetwebTls() {
  LoadSslCompatIfNeeded();
  // What civetweb does: the unversioned name, then the function it misses under OpenSSL 3.
  // The handle stays open (civetweb opens the same object).
  void* ssl = dlopen("libssl.so", RTLD_LAZY | RTLD_LOCAL);
  if (ssl == nullptr) {
    return absl::UnavailableError(
        "civetweb needs libssl.so (the unversioned name, from libssl-dev) to serve HTTPS");
  }
  if (dlsym(ssl, "SSL_get_peer_certificate") == nullptr) {
    return absl::FailedPreconditionError(
        "this system's civetweb cannot serve HTTPS: it was built for OpenSSL 1.1 and looks up "
        "SSL_get_peer_certificate, which OpenSSL 3 no longer exports, so the first HTTPS request "
        "would crash the process (libcohort_civetweb_ssl_compat.so, which supplies it, was not "
        "found next to the binary or in <libdir>/cohort)");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CivetwebTlsSupport() {
  static const absl::Status* const status = new absl::Status(ProbeCivetwebTls());
  return *status;
}

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& address,
    const std::vector<std::weak_ptr<prometheus::Collectable>>& collectables, int num_threads,
    std::optional<MetricsTls> tls) {
  if (tls.has_value()) {
    if (absl::Status s = CivetwebTlsSupport(); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("cannot serve metrics over HTTPS on ", address,
                                                 ": ", s.message()));
    }
  }
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(absl::string_view(address).substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics address '", address, "' is not IP:PORT; e.g. 0.0.0.0:9464 or 127.0.0.1:0"));
  }
  std::string host = address.substr(0, colon);
  std::unique_ptr<MetricsEndpoint> endpoint(new MetricsEndpoint());
  // civetweb takes numeric addresses only; "localhost" is common enough to accept.
  endpoint->bind_host_ = host == "localhost" ? "127.0.0.1" : host;
  endpoint->num_threads_ = num_threads;
  endpoint->collectables_ = collectables;
  endpoint->tls_ = std::move(tls);
  std::vector<FileVersion> versions;
  if (endpoint->tls_.has_value()) versions = VersionsOf(*endpoint->tls_);
  absl::StatusOr<std::unique_ptr<prometheus::Exposer>> exposer = endpoint->NewExposer(port);
  if (!exposer.ok()) {
    return absl::Status(exposer.status().code(), absl::StrCat("cannot serve metrics on ", address,
                                                              ": ", exposer.status().message()));
  }
  const std::vector<int> ports = (*exposer)->GetListeningPorts();
  if (ports.empty() || ports.front() <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", address));
  }
  endpoint->host_ = std::move(host);
  endpoint->port_ = ports.front();
  {
    absl::MutexLock lock(&endpoint->mu_);
    endpoint->exposer_ = *std::move(exposer);
  }
  if (endpoint->tls_.has_value()) {
    MetricsEndpoint* self = endpoint.get();
    endpoint->watcher_ = std::thread([self, versions] {
      std::vector<FileVersion> seen = versions;
      bool down = false;  // the last restart failed: try again every interval, changed or not
      while (true) {
        {
          absl::MutexLock lock(&self->mu_);
          if (self->mu_.AwaitWithTimeout(absl::Condition(&self->stopping_),
                                         self->tls_->reload_interval)) {
            return;
          }
        }
        std::vector<FileVersion> now = VersionsOf(*self->tls_);
        if (now == seen && !down) continue;
        seen = now;
        down = !self->WatchCertificates();
      }
    });
  }
  return endpoint;
}

absl::StatusOr<std::unique_ptr<prometheus::Exposer>> MetricsEndpoint::NewExposer(int port) const {
  std::vector<std::string> options = {"num_threads", std::to_string(num_threads_)};
  std::string pem_path;
  if (tls_.has_value()) {
    absl::StatusOr<std::string> pem = WriteCombinedPem(*tls_);
    if (!pem.ok()) return pem.status();
    pem_path = *pem;
    options.insert(options.end(),
                   {"listening_ports", absl::StrCat(bind_host_, ":", port, "s"), "ssl_certificate",
                    pem_path, "ssl_ca_file", tls_->ca_file, "ssl_verify_peer",
                    tls_->require_client_certificate ? "yes" : "optional",
                    // TLS 1.2 and later.
                    "ssl_protocol_version", "4",
                    // A client that stalls (in the handshake or the request) holds a worker
                    // (the agent has one) for at most this long; a scrape takes milliseconds.
                    "request_timeout_ms", "10000"});
  } else {
    options.insert(options.end(), {"listening_ports", absl::StrCat(bind_host_, ":", port)});
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  absl::Status status;
  try {
    // civetweb reports a failed bind (or TLS setup) by throwing: caught here, at the edge.
    exposer = std::make_unique<prometheus::Exposer>(options);
  } catch (const std::exception& e) {
    status = absl::UnavailableError(absl::StrCat(
        e.what(), tls_.has_value() ? "; is the port in use, the IP not local, or the TLS "
                                     "certificate, key or libssl unusable?"
                                   : "; is the port in use or the IP not local?"));
  }
  // civetweb has read the key: it need not stay on disk.
  if (!pem_path.empty()) unlink(pem_path.c_str());
  if (!status.ok()) return status;
  for (const auto& collectable : collectables_) exposer->RegisterCollectable(collectable);
  return exposer;
}

bool MetricsEndpoint::WatchCertificates() {
  absl::MutexLock lock(&mu_);
  if (stopping_) return true;
  // The same port: the old endpoint goes first.
  if (exposer_ != nullptr) DestroyExposerPromptly(std::move(exposer_), bind_host_, port_);
  absl::StatusOr<std::unique_ptr<prometheus::Exposer>> exposer = NewExposer(port_);
  if (!exposer.ok()) {
    // Half-written files (a key without its certificate yet), or the port not free yet: the
    // watcher tries again at every interval until it works; meanwhile the endpoint is down.
    // (It used to wait for the next change of the files, which a failed bind never brings: the
    // endpoint stayed down.)
    spdlog::warn("metrics endpoint on port {} not restarted after a certificate change: {}", port_,
                 std::string(exposer.status().message()));
    ++failed_restarts_;
    return false;
  }
  exposer_ = *std::move(exposer);
  ++reloads_;
  spdlog::info("metrics endpoint on port {} restarted with the changed certificate files", port_);
  return true;
}

int MetricsEndpoint::failed_restarts() const {
  absl::MutexLock lock(&mu_);
  return failed_restarts_;
}

int MetricsEndpoint::reloads() const {
  absl::MutexLock lock(&mu_);
  return reloads_;
}

MetricsEndpoint::~MetricsEndpoint() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (watcher_.joinable()) watcher_.join();
  absl::MutexLock lock(&mu_);
  DestroyExposerPromptly(std::move(exposer_), bind_host_, port_);
}

std::string MetricsEndpoint::url() const {
  return absl::StrCat(tls_.has_value() ? "https://" : "http://", host_, ":", port_, "/metrics");
}

}  // namespace cohort
