// Hostile clients, items 7 and 8: log and terminal injection, unknown enums, bad deadlines,
// huge key lists and bytes that do not parse.
//
// Each test starts a real coordinator and a READY pool of 4 Gloo agents (tp2 x dp2), attacks,
// asserts the refusal, and then that the pool is still READY at the same generation and passes
// a check. Shared helpers and the fixture: hostile_fixture.h; the suite's overview and how to
// run it against another coordinator binary: hostile_sessions_test.cc.
#include "tests/fault/hostile_fixture.h"

namespace cohort::testing {
namespace {

using ::testing::HasSubstr;

// ---- 7. Log and terminal injection ----------------------------------------------------------

TEST_F(Hostile, Item7_IdentitiesWithNewlineOrEscape_RefusedAtTheDoor) {
  ASSERT_NO_FATAL_FAILURE(StartPool());
  const int64_t after = Events().back().seq();
  for (const std::string& identity :
       {std::string("agent-9\n[info] pool default: generation 2 READY"),
        std::string("\x1b[31mred\x1b[0m"), std::string("bell\x07"), std::string("nul\0x", 5)}) {
    SCOPED_TRACE(absl::CHexEscape(identity));
    ExpectRefused(Join(Joiner("default", identity)), grpc::StatusCode::INVALID_ARGUMENT,
                  kAllowedCharacters);
  }
  ExpectRefused(Join(Joiner("pool\x1b[2J", "agent-x")), grpc::StatusCode::INVALID_ARGUMENT,
                kAllowedCharacters);
  // Nothing raw reached the event log.
  for (const v1::Event& e : Events("default", after)) {
    for (const std::string* text : {&e.identity(), &e.message()}) {
      for (char c : *text) {
        EXPECT_TRUE(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f)
            << "event " << e.seq() << ": " << absl::CHexEscape(*text);
      }
    }
  }
  ExpectPoolIntact();
}

// ---- 8. Smaller ones ------------------------------------------------------------------------

TEST_F(Hostile, Item8_UnknownEnum_BadDeadlines_HugeMissingKeys_Garbage) {
  ASSERT_NO_FATAL_FAILURE(StartPool());
  // A second pool, so that the READY one is untouched.
  ExpectRefused(Initialize(SmallPool("deadlines", -5)), grpc::StatusCode::INVALID_ARGUMENT,
                "deadline_ms");
  ExpectRefused(Initialize(SmallPool("deadlines", 1000000000000000)),
                grpc::StatusCode::INVALID_ARGUMENT, "deadline_ms");
  {
    // 60,000 missing keys (a request takes at most 65,536): the timeout names a few and counts
    // the rest. Before issue 9 it named all of them, past gRPC's metadata limit.
    std::vector<std::string> keys;
    for (int i = 0; i < 60000; ++i) keys.push_back(absl::StrCat("hostile/missing/", i));
    const grpc::Status s = KvGet(StoreGet(keys, 100));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << Describe(s);
    EXPECT_LT(s.error_message().size(), 2048u);
    EXPECT_THAT(s.error_message(), HasSubstr("and 59984 more"));
    // 100,000 keys are more than one request may name: refused, with a short message.
    for (int i = 60000; i < 100000; ++i) keys.push_back(absl::StrCat("hostile/missing/", i));
    const grpc::Status many = KvGet(StoreGet(keys, 100));
    EXPECT_EQ(many.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << Describe(many);
    EXPECT_LT(many.error_message().size(), 2048u);
    EXPECT_THAT(many.error_message(), HasSubstr("100000 keys"));
  }
  {
    // Bytes that do not parse as an InitializeRequest (field 1 claims 2^32-1 bytes). gRPC 1.51's
    // callback server fails the deserialization itself, before any handler runs, and answers
    // UNIMPLEMENTED with an empty message (observed on every run, before and after issue 9: the
    // coordinator never sees the call, so it cannot answer INVALID_ARGUMENT). Recorded, not
    // asserted, since the framework chooses it: only "refused, and the coordinator lives on".
    grpc::GenericStub stub(channel_);
    const std::string garbage("\x0a\xff\xff\xff\xff\x0f\x01\x02", 8);
    grpc::Slice slice(garbage);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    auto context = Context();
    absl::Mutex mu;
    bool done = false;
    grpc::Status status;
    stub.UnaryCall(context.get(), "/cohort.v1.AdminService/Initialize", grpc::StubOptions(),
                   &request, &response, [&](grpc::Status s) {
                     absl::MutexLock lock(&mu);
                     status = std::move(s);
                     done = true;
                   });
    {
      absl::MutexLock lock(&mu);
      ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(30)));
    }
    EXPECT_FALSE(status.ok());
    RecordProperty("garbage_initialize_status",
                   absl::StrCat(status.error_code(), " ", status.error_message()));
    std::cout << "garbage Initialize answered " << Describe(status) << "\n";
  }
  {
    // Last: before issue 9 it destroyed the pool, which would hide the other answers.
    v1::DestroyRequest destroy;
    destroy.set_scope(static_cast<v1::DestroyScope>(99));
    v1::DestroyResponse response;
    ExpectRefused(admin_->Destroy(Context().get(), destroy, &response),
                  grpc::StatusCode::INVALID_ARGUMENT, "scope");
    absl::StatusOr<v1::PoolState> state = State();
    ASSERT_TRUE(state.ok());
    EXPECT_EQ(state->phase(), v1::POOL_PHASE_READY);
  }
  ExpectPoolIntact();
}

}  // namespace
}  // namespace cohort::testing
