// SessionTable on its own: each session gets its own unguessable-looking id and names its owner
// until it is closed.
#include "coordinator/session_table.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

TEST(SessionTable, Open_GivesA32HexDigitId_NamingItsOwner) {
  SessionTable sessions;
  const std::string id = sessions.Open("train", "host-a");
  EXPECT_THAT(id, ::testing::MatchesRegex("[0-9a-f]{32}"));
  const SessionTable::Owner* owner = sessions.Find(id);
  ASSERT_NE(owner, nullptr);
  EXPECT_EQ(owner->pool, "train");
  EXPECT_EQ(owner->identity, "host-a");
}

TEST(SessionTable, Open_SameIdentityTwice_TwoDistinctSessions) {
  SessionTable sessions;
  std::set<std::string> ids;
  for (int i = 0; i < 100; ++i) ids.insert(sessions.Open("p", "same"));
  EXPECT_EQ(ids.size(), 100u);
  EXPECT_EQ(sessions.size(), 100u);
}

TEST(SessionTable, Close_ForgetsOnlyThatSession) {
  SessionTable sessions;
  const std::string a = sessions.Open("p", "a");
  const std::string b = sessions.Open("p", "b");
  sessions.Close(a);
  EXPECT_EQ(sessions.Find(a), nullptr);
  ASSERT_NE(sessions.Find(b), nullptr);
  EXPECT_EQ(sessions.Find(b)->identity, "b");
  EXPECT_EQ(sessions.size(), 1u);
}

TEST(SessionTable, Open_RecordsThePrincipal) {
  SessionTable sessions;
  const std::string id = sessions.Open("p", "agent-3", "agents/agent-3");
  ASSERT_NE(sessions.Find(id), nullptr);
  EXPECT_EQ(sessions.Find(id)->principal, "agents/agent-3");
  EXPECT_EQ(sessions.Find(sessions.Open("p", "b"))->principal, "");
}

// Ids come from the CSPRNG: 128 bits, no two alike, and the bits vary (a broken generator that
// repeated a byte or left half the id zero would show).
TEST(SessionTable, Ids_128BitsOfHex_EveryNibbleVaries) {
  SessionTable sessions;
  std::vector<std::set<char>> seen(32);
  for (int i = 0; i < 200; ++i) {
    const std::string id = sessions.Open("p", absl::StrCat("a", i));
    ASSERT_EQ(id.size(), 32u);
    ASSERT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    for (size_t c = 0; c < id.size(); ++c) seen[c].insert(id[c]);
  }
  for (size_t c = 0; c < seen.size(); ++c) EXPECT_GT(seen[c].size(), 8u) << "nibble " << c;
}

TEST(SessionTable, UnknownOrClosedIds_FindNothing_CloseIgnored) {
  SessionTable sessions;
  EXPECT_EQ(sessions.Find(""), nullptr);
  EXPECT_EQ(sessions.Find("0123456789abcdef0123456789abcdef"), nullptr);
  sessions.Close("never-opened");
  const std::string a = sessions.Open("p", "a");
  sessions.Close(a);
  sessions.Close(a);
  EXPECT_EQ(sessions.size(), 0u);
}

}  // namespace
}  // namespace cohort::coordinator
