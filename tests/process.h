// Child processes for integration tests: spawn a built binary, read its stdout line by line
// with a deadline, signal it, and wait for its exit with a deadline (pidfd + poll: no sleeps).
#ifndef COHORT_TESTS_PROCESS_H_
#define COHORT_TESTS_PROCESS_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

extern char** environ;

namespace cohort::testing {

class ChildProcess {
 public:
  // Runs `argv` (argv[0] a path). stdout goes to a pipe readable with ReadLine(); stderr to
  // `stderr_path` (or is inherited when empty). The child gets this process's environment with
  // `env` applied in order: "NAME=VALUE" sets NAME, a bare "NAME" removes it. `own_session`: the
  // child leads a session of its own (setsid), and with it, where the kernel groups scheduling
  // by session (autogroup), its own share of the CPU next to this process's threads.
  static std::optional<ChildProcess> Spawn(const std::vector<std::string>& argv,
                                           const std::string& stderr_path = "",
                                           const std::vector<std::string>& env = {},
                                           bool own_session = false) {
    std::vector<std::string> environment;
    for (char** e = environ; *e != nullptr; ++e) environment.emplace_back(*e);
    for (const std::string& change : env) {
      const std::string name = change.substr(0, change.find('='));
      environment.erase(std::remove_if(environment.begin(), environment.end(),
                                       [&](const std::string& v) {
                                         return v.compare(0, name.size() + 1, name + "=") == 0;
                                       }),
                        environment.end());
      if (change.find('=') != std::string::npos) environment.push_back(change);
    }
    std::vector<char*> envp;
    for (auto& v : environment) envp.push_back(v.data());
    envp.push_back(nullptr);
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return std::nullopt;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    if (!stderr_path.empty()) {
      posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                       O_WRONLY | O_CREAT | O_TRUNC, 0644);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    if (own_session) posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, args[0], &actions, &attr, args.data(), envp.data());
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    if (rc != 0) {
      close(out[0]);
      return std::nullopt;
    }
    ChildProcess p;
    p.pid_ = pid;
    p.stdout_fd_ = out[0];
    p.pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    return p;
  }

  ChildProcess() = default;
  ChildProcess(ChildProcess&& o) noexcept { *this = std::move(o); }
  ChildProcess& operator=(ChildProcess&& o) noexcept {
    std::swap(pid_, o.pid_);
    std::swap(stdout_fd_, o.stdout_fd_);
    std::swap(pidfd_, o.pidfd_);
    std::swap(buffer_, o.buffer_);
    std::swap(exit_status_, o.exit_status_);
    return *this;
  }
  ~ChildProcess() {
    if (pid_ > 0 && !exit_status_.has_value()) {
      kill(pid_, SIGKILL);
      WaitExit(absl::Seconds(10));
    }
    if (stdout_fd_ >= 0) close(stdout_fd_);
    if (pidfd_ >= 0) close(pidfd_);
  }

  pid_t pid() const { return pid_; }
  void Signal(int sig) { kill(pid_, sig); }

  // The next stdout line, or nullopt at EOF or when the deadline passes.
  std::optional<std::string> ReadLine(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      const size_t nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
      if (left <= 0) return std::nullopt;
      pollfd p{stdout_fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[4096];
      const ssize_t n = read(stdout_fd_, buf, sizeof(buf));
      if (n <= 0) return std::nullopt;
      buffer_.append(buf, n);
    }
  }

  // The exit status (as from waitpid), or nullopt if still running at the deadline.
  std::optional<int> WaitExit(absl::Duration timeout) {
    if (exit_status_.has_value()) return exit_status_;
    pollfd p{pidfd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) <= 0) {
      return std::nullopt;
    }
    int status = 0;
    if (waitpid(pid_, &status, 0) == pid_) exit_status_ = status;
    return exit_status_;
  }

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int pidfd_ = -1;
  std::string buffer_;
  std::optional<int> exit_status_;
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_PROCESS_H_
