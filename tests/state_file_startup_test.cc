// The state file through the Coordinator and the cohort-coordinator process: what is written
// (mode 0600, never through a planted link), a bad file never overwritten, and every unusable
// path or bad file stopping the process at startup with a clear message (never a crash, never
// a silent empty start) unless --state-file-reset is given.
//
// Uses only the Coordinator's public API and the binary, so it also runs against a coordinator
// without StateFile.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "cohort/v1/state.pb.h"
#include "common/clock.h"
#include "common/layout_proto.h"
#include "common/timer_queue.h"
#include "coordinator/coordinator.h"
#include "google/protobuf/util/json_util.h"
#include "tests/process.h"
#include "tests/scratch_dir.h"
#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

using ::cohort::testing::ChildProcess;
using ::cohort::testing::ScratchDir;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

const ParallelConfig kConfig{
    .world_size = 8, .data_parallel_size = 2, .cfg_parallel_size = 2, .ulysses_degree = 2};

v1::DurableState ValidState() {
  v1::DurableState state;
  v1::DurablePool* p = state.add_pools();
  p->set_name("default");
  *p->mutable_config() = ToProto(kConfig);
  p->mutable_options()->set_backend("gloo");
  p->set_world_size(8);
  p->set_generation(1);
  for (int r = 0; r < 8; ++r) (*p->mutable_ranks())["agent-" + std::to_string(r)] = r;
  return state;
}

std::string Json(const v1::DurableState& state) {
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(state, &json).ok());
  return json;
}

class NullSink : public SessionSink {
 public:
  void Send(const v1::CoordinatorMessage&) override {}
  void Close(const absl::Status&) override {}
};

// A Coordinator built directly (as the unit tests do), with a fake clock.
class DirectCoordinator {
 public:
  explicit DirectCoordinator(const std::string& state_file) {
    CoordinatorOptions options;
    options.state_file = state_file;
    coordinator_ = std::make_unique<Coordinator>(options, &clock_, &timers_);
  }
  // Joins and attaches an agent: the coordinator saves its state.
  void Join(const std::string& identity) {
    v1::JoinRequest request;
    request.set_identity(identity);
    request.set_incarnation("inc-1");
    request.add_backends("gloo");
    absl::StatusOr<v1::JoinResponse> joined = coordinator_->Join(request);
    ASSERT_TRUE(joined.ok()) << joined.status();
    ASSERT_TRUE(coordinator_->Attach(joined->session_id(), &sink_).ok());
  }
  Coordinator& operator*() { return *coordinator_; }

 private:
  FakeClock clock_;
  TimerQueue timers_{&clock_};
  NullSink sink_;
  std::unique_ptr<Coordinator> coordinator_;
};

TEST(StateFileCoordinator, StateFileIsMode0600) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  DirectCoordinator c(path);
  c.Join("agent-0");
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST(StateFileCoordinator, SymlinkPlantedAtTheTemporaryPath_IsNotFollowed) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  const std::string victim = dir / "victim";
  ScratchDir::Write(victim, "precious");
  ASSERT_EQ(symlink(victim.c_str(), (path + ".tmp").c_str()), 0);
  DirectCoordinator c(path);
  c.Join("agent-0");
  EXPECT_EQ(ScratchDir::Read(victim), "precious");
  struct stat st {};
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_THAT(ScratchDir::Read(path), HasSubstr("agent-0"));
}

TEST(StateFileCoordinator, CorruptStateFile_IsNeverOverwritten) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  const std::string text = Json(ValidState()).substr(0, 50);  // truncated
  ScratchDir::Write(path, text);
  DirectCoordinator c(path);
  c.Join("agent-0");
  EXPECT_EQ(ScratchDir::Read(path), text);
}

TEST(StateFileCoordinator, WorldSizeDifferentFromTheConfig_NotLoaded) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  v1::DurableState state = ValidState();
  state.mutable_pools(0)->set_world_size(4);
  const std::string text = Json(state);
  ScratchDir::Write(path, text);
  DirectCoordinator c(path);
  absl::StatusOr<v1::PoolState> pool = (*c).GetState("default");
  // Not loaded: no pool, or one that is not recovering the file's generation.
  if (pool.ok()) {
    EXPECT_NE(pool->phase(), v1::POOL_PHASE_RECOVERING);
  }
  EXPECT_EQ(ScratchDir::Read(path), text);
}

// ---- The cohort-coordinator process ----------------------------------------------------------

struct Outcome {
  bool started = false;       // printed "listening on"
  std::optional<int> status;  // waitpid status once it exited
  std::string stderr_text;
};

// Runs cohort-coordinator with `args`; a coordinator that starts is stopped with SIGTERM.
Outcome RunCoordinator(const ScratchDir& dir, std::vector<std::string> args) {
  const std::string err = dir / "coordinator.err";
  std::vector<std::string> argv = {std::string(COHORT_BIN_DIR) + "/cohort-coordinator",
                                   "--insecure", "--listen", "127.0.0.1:0"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::optional<ChildProcess> child = ChildProcess::Spawn(argv, err);
  Outcome out;
  if (!child.has_value()) {
    ADD_FAILURE() << "cannot spawn " << argv[0];
    return out;
  }
  // Either it says it listens, or its stdout closes when it exits.
  std::optional<std::string> line = child->ReadLine(absl::Seconds(60));
  out.started = line.has_value() && line->find("listening on") != std::string::npos;
  if (out.started) child->Signal(SIGTERM);
  out.status = child->WaitExit(absl::Seconds(30));
  out.stderr_text = ScratchDir::Read(err);
  return out;
}

// Exited by itself with status 1, not by a signal (a crash).
void ExpectRefusedToStart(const Outcome& out) {
  EXPECT_FALSE(out.started) << out.stderr_text;
  ASSERT_TRUE(out.status.has_value());
  ASSERT_TRUE(WIFEXITED(*out.status)) << "killed by signal " << WTERMSIG(*out.status) << "\n"
                                      << out.stderr_text;
  EXPECT_EQ(WEXITSTATUS(*out.status), 1) << out.stderr_text;
}

TEST(StateFileProcess, DirectoryAtThePath_ExitsNonZero_NamingThePath) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  ASSERT_EQ(mkdir(path.c_str(), 0700), 0);
  Outcome out = RunCoordinator(dir, {"--state-file", path});
  ExpectRefusedToStart(out);
  EXPECT_THAT(out.stderr_text,
              AllOf(HasSubstr("error: "), HasSubstr(path), HasSubstr("is a directory")));
}

TEST(StateFileProcess, FileInAMissingDirectory_ExitsNonZero_NamingTheFix) {
  ScratchDir dir;
  const std::string path = dir / "missing/state.json";
  Outcome out = RunCoordinator(dir, {"--state-file", path});
  ExpectRefusedToStart(out);
  EXPECT_THAT(out.stderr_text,
              AllOf(HasSubstr(path), HasSubstr("does not exist"), HasSubstr("mkdir -p")));
}

TEST(StateFileProcess, SymlinkAtThePath_ExitsNonZero) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  const std::string text = Json(ValidState());
  ScratchDir::Write(dir / "real.json", text);
  ASSERT_EQ(symlink((dir / "real.json").c_str(), path.c_str()), 0);
  Outcome out = RunCoordinator(dir, {"--state-file", path});
  ExpectRefusedToStart(out);
  EXPECT_THAT(out.stderr_text, AllOf(HasSubstr(path), HasSubstr("symbolic link")));
  EXPECT_EQ(ScratchDir::Read(dir / "real.json"), text);
}

TEST(StateFileProcess, CorruptFile_ExitsNonZero_NamingThePathsAndTheFlag_FileKept) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  const std::string text = Json(ValidState()).substr(0, 60);  // truncated
  ScratchDir::Write(path, text);
  Outcome out = RunCoordinator(dir, {"--state-file", path});
  ExpectRefusedToStart(out);
  EXPECT_THAT(out.stderr_text, AllOf(HasSubstr(path), HasSubstr(path + ".corrupt-"),
                                     HasSubstr("--state-file-reset")));
  EXPECT_EQ(ScratchDir::Read(path), text);
}

TEST(StateFileProcess, CorruptFile_WithReset_StartsEmpty_KeepsTheCopy) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  ScratchDir::Write(path, "{\"pools\": [{\"name\": \"default\", ");
  Outcome out = RunCoordinator(dir, {"--state-file", path, "--state-file-reset"});
  EXPECT_TRUE(out.started) << out.stderr_text;
  std::vector<std::string> copies;
  for (const std::string& name : dir.List()) {
    if (name.rfind("state.json.corrupt-", 0) == 0) copies.push_back(name);
  }
  ASSERT_EQ(copies.size(), 1u) << ::testing::PrintToString(dir.List());
  EXPECT_EQ(ScratchDir::Read(dir / copies[0]), "{\"pools\": [{\"name\": \"default\", ");
  EXPECT_EQ(ScratchDir::Read(path), "<missing>");  // nothing changed after an empty start
  EXPECT_THAT(out.stderr_text,
              AllOf(HasSubstr(dir / copies[0]), HasSubstr("starting with an empty state")));
}

TEST(StateFileProcess, WorldSizeDifferentFromTheConfig_ExitsNonZero_NoCrash) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  v1::DurableState state = ValidState();
  state.mutable_pools(0)->set_world_size(4);
  ScratchDir::Write(path, Json(state));
  Outcome out = RunCoordinator(dir, {"--state-file", path});
  ExpectRefusedToStart(out);
  EXPECT_THAT(out.stderr_text,
              AllOf(HasSubstr(path), HasSubstr("worldSize 4 differs from its config's world of 8"),
                    HasSubstr("--state-file-reset")));
}

TEST(StateFileProcess, RankOutsideTheWorld_ExitsNonZero_NoCrash) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  v1::DurableState state = ValidState();
  (*state.mutable_pools(0)->mutable_ranks())["agent-9"] = 9;
  ScratchDir::Write(path, Json(state));
  Outcome out = RunCoordinator(dir, {"--state-file", path});
  ExpectRefusedToStart(out);
  EXPECT_THAT(out.stderr_text, HasSubstr("rank 9 of 'agent-9' is outside the world [0, 8)"));
}

TEST(StateFileProcess, ValidFile_Starts_AndKeepsIt) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  ScratchDir::Write(path, Json(ValidState()));
  Outcome out = RunCoordinator(dir, {"--state-file", path});
  EXPECT_TRUE(out.started) << out.stderr_text;
  EXPECT_THAT(out.stderr_text, Not(HasSubstr("error")));
  EXPECT_THAT(ScratchDir::Read(path), HasSubstr("agent-7"));
}

}  // namespace
}  // namespace cohort::coordinator
