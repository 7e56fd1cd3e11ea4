// What the cohortctl inspection tests share: an in-process coordinator on 127.0.0.1:0 with four
// real Gloo agents in this process (CohortctlInspectTest), cohortctl run in process (Ctl), and
// small readers of its json documents.
#ifndef COHORT_TESTS_COHORTCTL_INSPECT_FIXTURE_H_
#define COHORT_TESTS_COHORTCTL_INSPECT_FIXTURE_H_

#include <functional>
#include <memory>
#include <sstream>
#include <streambuf>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "agent/agent.h"
#include "cli/admin_rpc.h"
#include "cli/cohortctl.h"
#include "common/layout.h"
#include "coordinator/server.h"
#include "gtest/gtest.h"

namespace cohort::testing {

inline constexpr int kWorld = 4;

struct Result {
  int status;
  std::string out, err;
};

// An ostream whose text another thread can wait for (the watch test reads a running command).
class WatchedStream : public std::streambuf {
 public:
  // Waits until the text contains `needle`; false after `timeout`.
  bool WaitFor(const std::string& needle, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto seen = [&] { return absl::StrContains(text_, needle); };
    return mu_.AwaitWithTimeout(absl::Condition(&seen), timeout);
  }
  std::string text() {
    absl::MutexLock lock(&mu_);
    return text_;
  }

 protected:
  int overflow(int c) override {
    if (c == EOF) return 0;
    absl::MutexLock lock(&mu_);
    text_.push_back(static_cast<char>(c));
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    absl::MutexLock lock(&mu_);
    text_.append(s, static_cast<size_t>(n));
    return n;
  }

 private:
  absl::Mutex mu_;
  std::string text_ ABSL_GUARDED_BY(mu_);
};

inline std::vector<int> Ints(const google::protobuf::Value& list) {
  std::vector<int> out;
  for (const google::protobuf::Value& v : list.list_value().values())
    out.push_back(static_cast<int>(v.number_value()));
  return out;
}

// Number fields that protobuf JSON prints as strings (int64) or numbers (int32).
inline int64_t Num(const google::protobuf::Value& v) {
  return v.has_string_value() ? std::stoll(v.string_value())
                              : static_cast<int64_t>(v.number_value());
}

inline std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

class CohortctlInspectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = coordinator::CoordinatorServer::Start({});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    auto layout = Layout::Build(config_);
    ASSERT_TRUE(layout.ok()) << layout.status();
    layout_ = std::make_unique<Layout>(*std::move(layout));
  }

  void TearDown() override {
    agents_.clear();  // orderly teardown before the coordinator goes
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(1));
  }

  Result Ctl(std::vector<std::string> args, std::ostream* out_stream = nullptr) {
    args.insert(args.begin(), "cohortctl");
    args.push_back("--coordinator");
    args.push_back(server_->address());
    args.push_back("--insecure");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    std::ostringstream out, err;
    int status = cli::RunCohortctl(static_cast<int>(argv.size()), argv.data(),
                                   out_stream != nullptr ? *out_stream : out, err);
    return {status, out.str(), err.str()};
  }

  // Agents agent-0 .. agent-(n-1) with rank hints 0 .. n-1, on the in-process channel.
  void StartAgents(int n) {
    for (int r = 0; r < n; ++r) {
      agent::AgentOptions options;
      options.channel = server_->InProcessChannel();
      options.identity = absl::StrCat("agent-", r);
      options.rank_hint = r;
      options.backends = {"gloo"};
      options.connect_timeout = absl::Seconds(20);
      options.allow_checks = true;  // no engine uses these communicators
      auto started = agent::Agent::Start(options);
      ASSERT_TRUE(started.ok()) << started.status();
      agents_.push_back(*std::move(started));
    }
  }

  // Long-polls the pool's state (bounded) until `done`; false on timeout.
  bool AwaitState(const std::function<bool(const v1::PoolState&)>& done) {
    cli::ConnectionFlags flags;
    flags.coordinator = server_->address();
    v1::PoolState last;
    std::ostringstream err;
    return cli::WaitForPoolState(
               flags, absl::Seconds(30), done, [](const v1::PoolState&) {}, &last, err) ==
           cli::kExitOk;
  }
  static std::function<bool(const v1::PoolState&)> MissingAre(std::vector<int> ranks) {
    return [ranks](const v1::PoolState& s) {
      return std::vector<int>(s.missing_ranks().begin(), s.missing_ranks().end()) == ranks;
    };
  }

  // tp2 x pp2 on four agents, READY.
  void FormPool() {
    StartAgents(kWorld);
    Result init = Ctl({"init", "-n", "4", "--tp", "2", "--pp", "2", "--wait", "--timeout", "60"});
    ASSERT_EQ(init.status, 0) << init.out << init.err;
  }

  ParallelConfig config_{
      .world_size = kWorld, .tensor_parallel_size = 2, .pipeline_parallel_size = 2};
  std::unique_ptr<Layout> layout_;
  std::unique_ptr<coordinator::CoordinatorServer> server_;
  std::vector<std::unique_ptr<agent::Agent>> agents_;
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_COHORTCTL_INSPECT_FIXTURE_H_
