// StateFile (coordinator/state_file.h) on its own: atomic writes that never follow a planted
// link, mode 0600, loading and validating every entry, the startup checks of the path, and
// moving a bad file aside only when --state-file-reset is given.
#include "coordinator/state_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/layout_proto.h"
#include "common/timer_queue.h"
#include "coordinator/coordinator.h"
#include "google/protobuf/util/message_differencer.h"
#include "tests/scratch_dir.h"
#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

using ::cohort::testing::ScratchDir;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// One READY-looking pool of world 8 (dp2 x cfg2 x ulysses2) with four ranks.
v1::DurableState ValidState() {
  v1::DurableState state;
  v1::DurablePool* p = state.add_pools();
  p->set_name("default");
  *p->mutable_config() = ToProto(ParallelConfig{
      .world_size = 8, .data_parallel_size = 2, .cfg_parallel_size = 2, .ulysses_degree = 2});
  p->mutable_options()->set_backend("gloo");
  p->set_world_size(8);
  p->set_generation(3);
  (*p->mutable_ranks())["a"] = 0;
  (*p->mutable_ranks())["b"] = 1;
  (*p->mutable_ranks())["c"] = 5;
  (*p->mutable_ranks())["d"] = 7;
  return state;
}

std::string Json(const v1::DurableState& state) {
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(state, &json).ok());
  return json;
}

bool Same(const v1::DurableState& a, const v1::DurableState& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return st.st_mode;
}

// ---- Save -------------------------------------------------------------------------------------

TEST(StateFileSave, RoundTrip) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  COHORT_ASSERT_OK(StateFile::Save(path, ValidState()));
  absl::StatusOr<v1::DurableState> loaded = StateFile::Load(path);
  COHORT_ASSERT_OK(loaded.status());
  EXPECT_TRUE(Same(*loaded, ValidState())) << loaded->DebugString();
  // Saving again replaces it; no temporary is left behind.
  v1::DurableState next = ValidState();
  next.mutable_pools(0)->set_generation(4);
  COHORT_ASSERT_OK(StateFile::Save(path, next));
  EXPECT_EQ(StateFile::Load(path)->pools(0).generation(), 4);
  EXPECT_THAT(dir.List(), ElementsAre("state.json"));
}

TEST(StateFileSave, FileIsMode0600_EvenUnderAPermissiveUmask) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  const mode_t old = umask(0);
  const absl::Status saved = StateFile::Save(path, ValidState());
  umask(old);
  COHORT_ASSERT_OK(saved);
  EXPECT_EQ(ModeOf(path) & 07777, 0600u);
}

TEST(StateFileSave, SymlinkPlantedAtTheTemporaryPath_IsNotFollowed) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  const std::string victim = dir / "victim";
  ScratchDir::Write(victim, "precious");
  // The old predictable temporary name: a link there was opened and written through.
  ASSERT_EQ(symlink(victim.c_str(), (path + ".tmp").c_str()), 0);
  COHORT_ASSERT_OK(StateFile::Save(path, ValidState()));
  EXPECT_EQ(ScratchDir::Read(victim), "precious");
  EXPECT_TRUE(S_ISLNK(ModeOf(path + ".tmp")));  // left alone
  EXPECT_TRUE(S_ISREG(ModeOf(path)));
  absl::StatusOr<v1::DurableState> loaded = StateFile::Load(path);
  COHORT_ASSERT_OK(loaded.status());
  EXPECT_TRUE(Same(*loaded, ValidState()));
}

TEST(StateFileSave, SymlinkAtThePath_IsReplaced_ItsTargetUnchanged) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  const std::string victim = dir / "victim";
  ScratchDir::Write(victim, "precious");
  ASSERT_EQ(symlink(victim.c_str(), path.c_str()), 0);
  COHORT_ASSERT_OK(StateFile::Save(path, ValidState()));
  EXPECT_EQ(ScratchDir::Read(victim), "precious");
  EXPECT_TRUE(S_ISREG(ModeOf(path)));
}

TEST(StateFileSave, MissingDirectory_ErrorNamesThePath) {
  ScratchDir dir;
  const std::string path = dir / "missing/state.json";
  absl::Status saved = StateFile::Save(path, ValidState());
  EXPECT_FALSE(saved.ok());
  EXPECT_THAT(saved.message(), HasSubstr(path));
}

// ---- Load -------------------------------------------------------------------------------------

TEST(StateFileLoad, MissingFile_IsAnEmptyState) {
  ScratchDir dir;
  absl::StatusOr<v1::DurableState> loaded = StateFile::Load(dir / "state.json");
  COHORT_ASSERT_OK(loaded.status());
  EXPECT_EQ(loaded->pools_size(), 0);
}

TEST(StateFileLoad, CorruptTruncatedOrEmptyFile_IsDataLoss_NamingThePath) {
  const std::string json = Json(ValidState());
  for (const std::string& text :
       {std::string("not json at all"), json.substr(0, json.size() / 2), std::string(),
        std::string("{\"pools\": 7}"), std::string("{\"unknownField\": 1}")}) {
    SCOPED_TRACE(text);
    ScratchDir dir;
    const std::string path = dir / "state.json";
    ScratchDir::Write(path, text);
    absl::StatusOr<v1::DurableState> loaded = StateFile::Load(path);
    ASSERT_FALSE(loaded.ok());
    EXPECT_TRUE(absl::IsDataLoss(loaded.status())) << loaded.status();
    EXPECT_THAT(loaded.status().message(), HasSubstr(path));
  }
}

TEST(StateFileLoad, SymlinkDirectoryOrFifo_IsRefused) {
  ScratchDir dir;
  ScratchDir::Write(dir / "real.json", Json(ValidState()));
  ASSERT_EQ(symlink((dir / "real.json").c_str(), (dir / "link.json").c_str()), 0);
  absl::StatusOr<v1::DurableState> link = StateFile::Load(dir / "link.json");
  EXPECT_TRUE(absl::IsFailedPrecondition(link.status())) << link.status();
  EXPECT_THAT(link.status().message(), HasSubstr("symbolic link"));
  absl::StatusOr<v1::DurableState> directory = StateFile::Load(dir.path());
  EXPECT_FALSE(directory.ok());
  // A FIFO is refused at once, not waited on.
  ASSERT_EQ(mkfifo((dir / "fifo").c_str(), 0600), 0);
  absl::StatusOr<v1::DurableState> fifo = StateFile::Load(dir / "fifo");
  EXPECT_TRUE(absl::IsFailedPrecondition(fifo.status())) << fifo.status();
  EXPECT_TRUE(absl::IsFailedPrecondition(StateFile::CheckUsable(dir / "fifo")));
}

TEST(StateFileLoad, WorldSizeDifferentFromTheConfig_IsRefused_NamingThePathAndPool) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  v1::DurableState state = ValidState();
  state.mutable_pools(0)->set_world_size(4);
  ScratchDir::Write(path, Json(state));
  absl::StatusOr<v1::DurableState> loaded = StateFile::Load(path);
  ASSERT_TRUE(absl::IsInvalidArgument(loaded.status())) << loaded.status();
  EXPECT_THAT(loaded.status().message(),
              AllOf(HasSubstr(path), HasSubstr("pool 'default'"),
                    HasSubstr("worldSize 4 differs from its config's world of 8")));
}

// ---- Validate ---------------------------------------------------------------------------------

struct BadCase {
  std::string name;
  std::function<void(v1::DurableState&)> spoil;
  std::string message;
};

TEST(StateFileValidate, EveryRule_RefusedWithAClearMessage) {
  auto pool = [](v1::DurableState& s) { return s.mutable_pools(0); };
  const std::vector<BadCase> cases = {
      {"world differs from the config", [&](auto& s) { pool(s)->set_world_size(16); },
       "pool 'default': worldSize 16 differs from its config's world of 8"},
      {"rank at the world size", [&](auto& s) { (*pool(s)->mutable_ranks())["e"] = 8; },
       "pool 'default': rank 8 of 'e' is outside the world [0, 8)"},
      {"negative rank", [&](auto& s) { (*pool(s)->mutable_ranks())["e"] = -1; },
       "rank -1 of 'e' is outside the world [0, 8)"},
      {"negative generation", [&](auto& s) { pool(s)->set_generation(-2); },
       "pool 'default': generation -2 is negative"},
      {"invalid config", [&](auto& s) { pool(s)->mutable_config()->set_data_parallel_size(3); },
       "pool 'default': its config is invalid"},
      {"negative world", [&](auto& s) { pool(s)->set_world_size(-1); }, "worldSize -1 is outside"},
      {"world without a config", [&](auto& s) { pool(s)->clear_config(); },
       "worldSize 8 without a config"},
      {"two identities on one rank", [&](auto& s) { (*pool(s)->mutable_ranks())["e"] = 5; },
       "pool 'default': rank 5 is held by both 'c' and 'e'"},
      {"empty identity", [&](auto& s) { (*pool(s)->mutable_ranks())[""] = 2; },
       "an identity is empty"},
      {"long identity", [&](auto& s) { (*pool(s)->mutable_ranks())[std::string(2000, 'x')] = 2; },
       "an identity is 2000 bytes long"},
      {"empty pool name", [&](auto& s) { pool(s)->set_name(""); }, "a pool has an empty name"},
      {"long pool name", [&](auto& s) { pool(s)->set_name(std::string(1025, 'p')); },
       "a pool name is 1025 bytes long"},
      {"two pools of one name", [&](auto& s) { *s.add_pools() = s.pools(0); },
       "pool 'default' appears twice"},
      {"unknown backend", [&](auto& s) { pool(s)->mutable_options()->set_backend("mpi"); },
       "unknown backend 'mpi'"},
  };
  COHORT_ASSERT_OK(StateFile::Validate(ValidState()));
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.name);
    v1::DurableState state = ValidState();
    c.spoil(state);
    absl::Status s = StateFile::Validate(state);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    EXPECT_THAT(s.message(), HasSubstr(c.message));
  }
}

TEST(StateFileValidate, PoolWithoutAConfig_RanksNeedOnlyBeNonNegative) {
  v1::DurableState state;
  v1::DurablePool* p = state.add_pools();
  p->set_name("later");
  (*p->mutable_ranks())["a"] = 0;
  (*p->mutable_ranks())["b"] = 40;
  COHORT_ASSERT_OK(StateFile::Validate(state));
  (*p->mutable_ranks())["c"] = -3;
  EXPECT_THAT(StateFile::Validate(state).message(), HasSubstr("rank -3 of 'c' is outside [0,"));
}

// ---- CheckUsable (startup) --------------------------------------------------------------------

TEST(StateFileCheckUsable, UsablePaths) {
  ScratchDir dir;
  COHORT_ASSERT_OK(StateFile::CheckUsable(dir / "state.json"));  // not there yet
  ScratchDir::Write(dir / "state.json", Json(ValidState()));
  COHORT_ASSERT_OK(StateFile::CheckUsable(dir / "state.json"));
  // The probe file it creates is gone again.
  EXPECT_THAT(dir.List(), ElementsAre("state.json"));
}

TEST(StateFileCheckUsable, DirectoryAtThePath_Refused) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  ASSERT_EQ(mkdir(path.c_str(), 0700), 0);
  absl::Status s = StateFile::CheckUsable(path);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr(path), HasSubstr("is a directory"), HasSubstr(path + "/state.json")));
}

TEST(StateFileCheckUsable, MissingDirectory_Refused_NamingTheFix) {
  ScratchDir dir;
  const std::string path = dir / "missing/state.json";
  absl::Status s = StateFile::CheckUsable(path);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(s.message(), AllOf(HasSubstr(path), HasSubstr("does not exist"),
                                 HasSubstr("mkdir -p " + (dir / "missing"))));
}

TEST(StateFileCheckUsable, ParentIsAFile_Refused) {
  ScratchDir dir;
  ScratchDir::Write(dir / "file", "x");
  absl::Status s = StateFile::CheckUsable(dir / "file/state.json");
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr(dir / "file/state.json"));
}

TEST(StateFileCheckUsable, SymlinkAtThePath_Refused_NamingItsTarget) {
  ScratchDir dir;
  ScratchDir::Write(dir / "real.json", Json(ValidState()));
  ASSERT_EQ(symlink((dir / "real.json").c_str(), (dir / "state.json").c_str()), 0);
  absl::Status s = StateFile::CheckUsable(dir / "state.json");
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(s.message(), AllOf(HasSubstr("symbolic link"), HasSubstr(dir / "real.json")));
}

// ---- Open (startup: check, load, refuse or reset) ---------------------------------------------

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 11, 30, 10, 5, 7), absl::UTCTimeZone());

TEST(StateFileOpen, CorruptPathIsUtcTimestamped) {
  EXPECT_EQ(StateFile::CorruptPath("/x/state.json", kNow),
            "/x/state.json.corrupt-20261130T100507Z");
}

TEST(StateFileOpen, CorruptFile_Refused_NamingBothPathsAndTheFlag_FileLeftAsItIs) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  const std::string text = Json(ValidState()).substr(0, 40);  // truncated
  ScratchDir::Write(path, text);
  for (int attempt = 0; attempt < 2; ++attempt) {  // a restart refuses again
    absl::StatusOr<v1::DurableState> opened = StateFile::Open(path, /*reset=*/false, kNow);
    ASSERT_TRUE(absl::IsFailedPrecondition(opened.status())) << opened.status();
    EXPECT_THAT(opened.status().message(),
                AllOf(HasSubstr(path), HasSubstr(StateFile::CorruptPath(path, kNow)),
                      HasSubstr("--state-file-reset")));
    EXPECT_EQ(ScratchDir::Read(path), text);
    EXPECT_THAT(dir.List(), ElementsAre("state.json"));
  }
}

TEST(StateFileOpen, CorruptFile_WithReset_MovedAside_StartsEmpty) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  ScratchDir::Write(path, "garbage");
  absl::StatusOr<v1::DurableState> opened = StateFile::Open(path, /*reset=*/true, kNow);
  COHORT_ASSERT_OK(opened.status());
  EXPECT_EQ(opened->pools_size(), 0);
  EXPECT_EQ(ScratchDir::Read(StateFile::CorruptPath(path, kNow)), "garbage");
  EXPECT_EQ(ScratchDir::Read(path), "<missing>");
  // Another bad file in the same second keeps the first copy.
  ScratchDir::Write(path, "garbage 2");
  COHORT_ASSERT_OK(StateFile::Open(path, /*reset=*/true, kNow).status());
  EXPECT_EQ(ScratchDir::Read(StateFile::CorruptPath(path, kNow)), "garbage");
  EXPECT_EQ(ScratchDir::Read(StateFile::CorruptPath(path, kNow) + "-1"), "garbage 2");
}

TEST(StateFileOpen, InvalidFile_RefusedOrMovedAsideWithReset) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  v1::DurableState state = ValidState();
  (*state.mutable_pools(0)->mutable_ranks())["e"] = 12;
  const std::string text = Json(state);
  ScratchDir::Write(path, text);
  absl::StatusOr<v1::DurableState> refused = StateFile::Open(path, /*reset=*/false, kNow);
  ASSERT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_THAT(refused.status().message(),
              AllOf(HasSubstr("rank 12 of 'e' is outside the world [0, 8)"),
                    HasSubstr("--state-file-reset")));
  absl::StatusOr<v1::DurableState> reset = StateFile::Open(path, /*reset=*/true, kNow);
  COHORT_ASSERT_OK(reset.status());
  EXPECT_EQ(reset->pools_size(), 0);
  EXPECT_EQ(ScratchDir::Read(StateFile::CorruptPath(path, kNow)), text);
}

TEST(StateFileOpen, ValidFile_WithReset_LoadedAsUsual) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  COHORT_ASSERT_OK(StateFile::Save(path, ValidState()));
  absl::StatusOr<v1::DurableState> opened = StateFile::Open(path, /*reset=*/true, kNow);
  COHORT_ASSERT_OK(opened.status());
  EXPECT_TRUE(Same(*opened, ValidState()));
  EXPECT_THAT(dir.List(), ElementsAre("state.json"));
}

TEST(StateFileOpen, UnusablePath_RefusedEvenWithReset) {
  ScratchDir dir;
  ASSERT_EQ(mkdir((dir / "state.json").c_str(), 0700), 0);
  absl::StatusOr<v1::DurableState> opened =
      StateFile::Open(dir / "state.json", /*reset=*/true, kNow);
  EXPECT_TRUE(absl::IsFailedPrecondition(opened.status())) << opened.status();
  EXPECT_THAT(opened.status().message(), HasSubstr("is a directory"));
}

// ---- What the Coordinator writes always loads back --------------------------------------------

class NullSink : public SessionSink {
 public:
  void Send(const v1::CoordinatorMessage&) override {}
  void Close(const absl::Status&) override {}
};

TEST(StateFileCoordinator, StaleRanksOutsideASmallerWorld_AreNotWritten_TheFileLoadsBack) {
  ScratchDir dir;
  const std::string path = dir / "state.json";
  // A world of 8 with eight known identities; only agent-0 comes back after the restart.
  v1::DurableState before = ValidState();
  for (int r = 0; r < 8; ++r) {
    (*before.mutable_pools(0)->mutable_ranks())["agent-" + std::to_string(r)] = r;
  }
  before.mutable_pools(0)->mutable_ranks()->erase("a");
  before.mutable_pools(0)->mutable_ranks()->erase("b");
  before.mutable_pools(0)->mutable_ranks()->erase("c");
  before.mutable_pools(0)->mutable_ranks()->erase("d");
  COHORT_ASSERT_OK(StateFile::Save(path, before));
  FakeClock clock;
  TimerQueue timers(&clock);
  CoordinatorOptions options;
  options.state_file = path;
  Coordinator coordinator(options, &clock, &timers);
  v1::JoinRequest join;
  join.set_identity("agent-0");
  join.set_incarnation("inc-1");
  join.add_backends("gloo");
  absl::StatusOr<v1::JoinResponse> joined = coordinator.Join(join);
  ASSERT_TRUE(joined.ok()) << joined.status();
  NullSink sink;
  COHORT_ASSERT_OK(coordinator.Attach(joined->session_id(), &sink));
  // Nobody else comes back: recovery gives up after the attach timeout.
  v1::AgentMessage heartbeat;
  heartbeat.mutable_heartbeat();
  for (int i = 0; i < 31; ++i) {
    clock.Advance(absl::Seconds(1));
    COHORT_ASSERT_OK(coordinator.HandleAgentMessage(joined->session_id(), heartbeat));
    timers.FireDue();
  }
  ASSERT_EQ(coordinator.GetState("default")->phase(), v1::POOL_PHASE_WAITING);
  // A world of 2: the identities that never came back keep ranks 2..7 in memory.
  v1::InitializeRequest init;
  *init.mutable_config() = ToProto(ParallelConfig{.world_size = 2, .tensor_parallel_size = 2});
  init.mutable_options()->set_backend("gloo");
  COHORT_ASSERT_OK(coordinator.Initialize(init).status());
  absl::StatusOr<v1::DurableState> after = StateFile::Load(path);
  COHORT_ASSERT_OK(after.status());
  ASSERT_EQ(after->pools_size(), 1);
  EXPECT_EQ(after->pools(0).world_size(), 2);
  std::map<std::string, int32_t> ranks(after->pools(0).ranks().begin(),
                                       after->pools(0).ranks().end());
  EXPECT_EQ(ranks, (std::map<std::string, int32_t>{{"agent-0", 0}, {"agent-1", 1}}));
}

}  // namespace
}  // namespace cohort::coordinator
