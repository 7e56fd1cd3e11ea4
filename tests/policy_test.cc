// Policy: parsing (every error names its line and the fix), matching callers to principals by
// certificate or token hash, and PolicyAuthorizer's answers per role, pool and Join identity.
#include "coordinator/policy.h"

#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/scratch_dir.h"

namespace cohort::coordinator {
namespace {

using ::testing::HasSubstr;

std::string Hex(absl::string_view token) {
  const std::array<uint8_t, 32> hash = Sha256(token);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(hash.data()), hash.size()));
}

std::string PolicyText() {
  return absl::StrCat(R"(principals:
  - name: alice
    role: operator
    certificate: {uri: "spiffe://cohort/operator"}
  - name: dashboards
    role: viewer
    token_sha256: ")",
                      Hex("viewer-token"), R"("
  - name: agents
    role: agent
    certificate: {uri: "spiffe://cohort/agent/*"}
    pools: ["train-*"]
  - name: node-b
    role: agent
    certificate: {cn: "node-b"}
    identities: ["node-b-*"]
  - name: bob
    role: viewer
    certificate: {cn: "bob"}
    pools: ["default"]
)");
}

Caller Cert(std::string uri, std::string cn = "") {
  Caller c;
  c.identity = uri.empty() ? cn : uri;
  c.authenticated = true;
  c.peer = "ipv4:10.0.0.2:5000";
  if (!uri.empty()) c.certificate_uris.push_back(std::move(uri));
  c.certificate_cn = std::move(cn);
  return c;
}

Caller Token(std::string token) {
  Caller c;
  c.identity = "ipv4:10.0.0.3:5000";
  c.peer = c.identity;
  c.bearer_token = std::move(token);
  return c;
}

Caller Anonymous() {
  Caller c;
  c.identity = "ipv4:10.0.0.9:1234";
  c.peer = c.identity;
  return c;
}

std::unique_ptr<PolicyAuthorizer> MakeAuthorizer() {
  absl::StatusOr<Policy> policy = Policy::Parse(PolicyText(), "policy.yaml");
  EXPECT_TRUE(policy.ok()) << policy.status();
  return std::make_unique<PolicyAuthorizer>(*std::move(policy));
}

TEST(PolicyParse, ValidPolicy_AllPrincipals) {
  absl::StatusOr<Policy> policy = Policy::Parse(PolicyText(), "policy.yaml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  ASSERT_EQ(policy->principals().size(), 5u);
  EXPECT_EQ(policy->principals()[0].role, Role::kOperator);
  EXPECT_TRUE(policy->principals()[1].token_sha256.has_value());
  EXPECT_EQ(policy->principals()[2].pools.size(), 1u);
}

struct BadCase {
  const char* yaml;
  const char* expected;  // substrings of the error
  const char* fix;
};

TEST(PolicyParse, Errors_NameTheLineAndTheFix) {
  const BadCase cases[] = {
      {"principals:\n  - name: a\n    role: admin\n    certificate: {cn: a}\n",
       "policy.yaml line 3: unknown role 'admin'", "use agent, operator or viewer"},
      {"principals:\n  - name: a\n    role: viewer\n    colour: red\n    certificate: {cn: a}\n",
       "policy.yaml line 4: unknown key 'colour'", "use name, role, certificate"},
      {"principals:\n  - name: a\n    role: viewer\n    token_sha256: \"abc\"\n",
       "policy.yaml line 4: token_sha256 must be 64 hex digits", "never the token itself"},
      {"principals:\n  - name: a\n    role: viewer\n    certificate: {cn: a}\n"
       "  - name: a\n    role: operator\n    certificate: {cn: b}\n",
       "policy.yaml line 5: principal name 'a' is used twice", "its own name"},
      {"principals:\n  - name: a\n    role: viewer\n", "has no credential",
       "add certificate: {uri: ...}"},
      {"principals:\n  - name: a\n    role: viewer\n    certificate: {uri: \"spiffe://*/x\"}\n",
       "line 4", "prefix followed by one '*'"},
      {"principals:\n  - name: a\n    role: viewer\n    certificate: {dns: a}\n",
       "unknown certificate key 'dns'", "use uri or cn"},
      {"principals:\n  - name: a\n    role: viewer\n    certificate: {cn: a}\n    identities: "
       "[x]\n",
       "identities and embedded apply to agents only", "remove them"},
      {"users: []\n", "unknown key 'users'", "only principals"},
      {"principals: [\n", "not valid YAML", "line"},
  };
  for (const BadCase& c : cases) {
    absl::StatusOr<Policy> policy = Policy::Parse(c.yaml, "policy.yaml");
    ASSERT_FALSE(policy.ok()) << c.yaml;
    EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument) << c.yaml;
    EXPECT_THAT(policy.status().message(), HasSubstr(c.expected)) << c.yaml;
    EXPECT_THAT(policy.status().message(), HasSubstr(c.fix)) << c.yaml;
  }
}

TEST(PolicyParse, Load_MissingFile_NamesItAndTheFlag) {
  absl::StatusOr<Policy> policy = Policy::Load("/nonexistent/policy.yaml");
  ASSERT_FALSE(policy.ok());
  EXPECT_THAT(policy.status().message(), HasSubstr("/nonexistent/policy.yaml"));
  EXPECT_THAT(policy.status().message(), HasSubstr("--policy"));
}

TEST(PolicyParse, Load_ReadsTheFile) {
  testing::ScratchDir dir;
  const std::string path = dir.path() + "/policy.yaml";
  std::ofstream(path) << PolicyText();
  absl::StatusOr<Policy> policy = Policy::Load(path);
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->principals().size(), 5u);
}

TEST(PolicyMatch, CertificateOnlyWhenAuthenticated_TokenByHash) {
  std::unique_ptr<PolicyAuthorizer> owned = MakeAuthorizer();
  PolicyAuthorizer& authorizer = *owned;
  EXPECT_EQ(authorizer.Identify(Cert("spiffe://cohort/operator")).name, "alice");
  Caller unproven = Cert("spiffe://cohort/operator");
  unproven.authenticated = false;
  EXPECT_FALSE(authorizer.Identify(unproven).matched());
  EXPECT_EQ(authorizer.Identify(Token("viewer-token")).name, "dashboards");
  EXPECT_EQ(authorizer.Identify(Token("viewer-token")).role, "viewer");
  EXPECT_FALSE(authorizer.Identify(Token("viewer-token2")).matched());
  EXPECT_EQ(authorizer.Identify(Cert("", "node-b")).name, "node-b");
  EXPECT_EQ(authorizer.Identify(Cert("spiffe://cohort/agent/node-a")).name, "agents");
  EXPECT_EQ(authorizer.Identify(Cert("spiffe://cohort/agent/node-a")).subject, "agents/node-a");
  EXPECT_EQ(authorizer.Identify(Cert("", "node-b")).subject, "node-b");
  EXPECT_FALSE(authorizer.Identify(Anonymous()).matched());
}

TEST(PolicyAuthorize, RolesPerAction_ExactCodesAndRoleNamed) {
  std::unique_ptr<PolicyAuthorizer> owned = MakeAuthorizer();
  PolicyAuthorizer& authorizer = *owned;
  const Caller op = Cert("spiffe://cohort/operator");
  const Caller viewer = Token("viewer-token");
  const Caller agent = Cert("spiffe://cohort/agent/a0");
  for (Action a : {Action::kInitialize, Action::kDestroy, Action::kCheck, Action::kDeletePool,
                   Action::kRead}) {
    EXPECT_TRUE(authorizer.Authorize(op, a, "p").ok()) << ActionName(a);
  }
  for (Action a : {Action::kJoin, Action::kStore}) {
    absl::Status s = authorizer.Authorize(op, a, "p");
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
    EXPECT_THAT(s.message(), HasSubstr("needs role agent; caller 'alice' has role operator"));
  }
  EXPECT_TRUE(authorizer.Authorize(viewer, Action::kRead, "p").ok());
  absl::Status destroy = authorizer.Authorize(viewer, Action::kDestroy, "p");
  EXPECT_EQ(destroy.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(destroy.message(), "Destroy needs role operator; caller 'dashboards' has role viewer");
  EXPECT_TRUE(authorizer.Authorize(agent, Action::kJoin, "train-1").ok());
  EXPECT_TRUE(authorizer.Authorize(agent, Action::kStore, "train-1").ok());
  EXPECT_EQ(authorizer.Authorize(agent, Action::kRead, "train-1").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(authorizer.Authorize(agent, Action::kInitialize, "train-1").code(),
            absl::StatusCode::kPermissionDenied);
  absl::Status anonymous = authorizer.Authorize(Anonymous(), Action::kInitialize, "p");
  EXPECT_EQ(anonymous.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(anonymous.message(),
            "Initialize needs role operator; the caller (peer ipv4:10.0.0.9:1234) presented no "
            "client certificate or token the policy knows");
  EXPECT_TRUE(authorizer.Authorize(Caller::InProcess(), Action::kDeletePool, "p").ok());
}

TEST(PolicyAuthorize, Pools_RestrictedPrincipal) {
  std::unique_ptr<PolicyAuthorizer> owned = MakeAuthorizer();
  PolicyAuthorizer& authorizer = *owned;
  const Caller agent = Cert("spiffe://cohort/agent/a0");
  absl::Status s = authorizer.Authorize(agent, Action::kJoin, "default");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("pool 'default'"));
  EXPECT_THAT(s.message(), HasSubstr("its pools are 'train-*'"));
  const Caller bob = Cert("", "bob");
  EXPECT_TRUE(authorizer.Authorize(bob, Action::kRead, "default").ok());
  EXPECT_EQ(authorizer.Authorize(bob, Action::kRead, "other").code(),
            absl::StatusCode::kPermissionDenied);
  // A Watch of every pool ("") is allowed; the coordinator filters it.
  EXPECT_TRUE(authorizer.Authorize(bob, Action::kRead, "").ok());
}

TEST(PolicyAuthorize, Embedded_AgentMayReadInitializeDestroyItsPools) {
  absl::StatusOr<Policy> policy = Policy::Parse(
      "principals:\n  - name: engine\n    role: agent\n    certificate: {cn: engine}\n"
      "    embedded: true\n",
      "p.yaml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  PolicyAuthorizer authorizer(*std::move(policy));
  const Caller engine = Cert("", "engine");
  for (Action a :
       {Action::kJoin, Action::kStore, Action::kRead, Action::kInitialize, Action::kDestroy}) {
    EXPECT_TRUE(authorizer.Authorize(engine, a, "p").ok()) << ActionName(a);
  }
  EXPECT_EQ(authorizer.Authorize(engine, Action::kDeletePool, "p").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(authorizer.Authorize(engine, Action::kCheck, "p").code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(PolicyJoinIdentity, WildcardTextNameOrListedIdentities) {
  std::unique_ptr<PolicyAuthorizer> owned = MakeAuthorizer();
  PolicyAuthorizer& authorizer = *owned;
  const Caller a0 = Cert("spiffe://cohort/agent/a0");
  EXPECT_TRUE(authorizer.AuthorizeJoinIdentity(a0, "a0").ok());
  absl::Status other = authorizer.AuthorizeJoinIdentity(a0, "a1");
  EXPECT_EQ(other.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(other.message(), HasSubstr("may not join as identity 'a1'"));
  EXPECT_THAT(other.message(), HasSubstr("only as 'a0'"));
  const Caller b = Cert("", "node-b");
  EXPECT_TRUE(authorizer.AuthorizeJoinIdentity(b, "node-b-3").ok());
  absl::Status b_other = authorizer.AuthorizeJoinIdentity(b, "node-c-3");
  EXPECT_EQ(b_other.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(b_other.message(), HasSubstr("it may join as 'node-b-*'"));
  EXPECT_TRUE(authorizer.AuthorizeJoinIdentity(Caller::InProcess(), "anything").ok());
}

TEST(PolicyAuthorize, Replace_LaterCallsSeeTheNewPolicy) {
  std::unique_ptr<PolicyAuthorizer> owned = MakeAuthorizer();
  PolicyAuthorizer& authorizer = *owned;
  const Caller viewer = Token("viewer-token");
  EXPECT_TRUE(authorizer.Authorize(viewer, Action::kRead, "p").ok());
  absl::StatusOr<Policy> next = Policy::Parse(
      "principals:\n  - name: dashboards\n    role: operator\n    certificate: {cn: ops}\n",
      "next.yaml");
  ASSERT_TRUE(next.ok()) << next.status();
  authorizer.Replace(*std::move(next));
  EXPECT_EQ(authorizer.Authorize(viewer, Action::kRead, "p").code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(authorizer.Identify(Cert("", "ops")).role, "operator");
  EXPECT_EQ(authorizer.policy()->principals().size(), 1u);
}

TEST(PolicyNamePattern, ExactAndPrefix) {
  EXPECT_EQ(NamePattern{"a*"}.Match("abc"), "bc");
  EXPECT_EQ(NamePattern{"a*"}.Match("a"), "");
  EXPECT_FALSE(NamePattern{"a*"}.Match("b").has_value());
  EXPECT_EQ(NamePattern{"abc"}.Match("abc"), "");
  EXPECT_FALSE(NamePattern{"abc"}.Match("abcd").has_value());
}

TEST(PolicySha256, KnownVector) {
  EXPECT_EQ(Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace cohort::coordinator
