// Policy: who may do what on the coordinator, read from a YAML policy file (--policy), and
// PolicyAuthorizer, the Authorizer (authorizer.h) that applies it.
//
//   principals:
//     - name: alice                  # who, in audit lines and refusals
//       role: operator               # agent | operator | viewer
//       certificate: {uri: "spiffe://cohort/operator"}   # or {cn: "operator"}
//     - name: dashboards
//       role: viewer
//       token_sha256: "<64 hex>"     # SHA-256 of the bearer token (the token file's contents,
//                                    # surrounding whitespace trimmed); never the token itself
//     - name: agents
//       role: agent
//       certificate: {uri: "spiffe://cohort/agent/*"}    # one trailing '*': a prefix match
//       identities: ["node-a-*"]     # agent identities it may Join as; default: the text the
//                                    # certificate's '*' matched, or `name` without a '*'
//       pools: ["default"]           # optional; default: every pool
//       embedded: true               # agent only: the engine-embedded API (parallel_state.h)
//                                    # also reads, initializes and destroys its pools
//
// A caller is the first principal whose certificate pattern matches one of the verified
// certificate's SAN URIs or its CN (only when the transport authenticated the caller), or whose
// token_sha256 is the SHA-256 of the call's bearer token (compared in constant time). Roles:
// operator: Initialize, Destroy, Check, DeletePool and every read; viewer: GetState,
// WaitForState, ListPools, GetEvents, Watch; agent: Join (its session) and the rendezvous store.
// Caller::InProcess() may do everything.
#ifndef COHORT_COORDINATOR_POLICY_H_
#define COHORT_COORDINATOR_POLICY_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/authorizer.h"
#include "coordinator/caller.h"

namespace cohort::coordinator {

enum class Role { kAgent, kOperator, kViewer };
absl::string_view RoleName(Role role);

// A name pattern: exact, or a prefix when it ends in '*' (the only '*' allowed).
struct NamePattern {
  std::string text;
  // The text the '*' matched, when `name` matches; nullopt otherwise.
  std::optional<std::string> Match(absl::string_view name) const;
  bool wildcard() const { return !text.empty() && text.back() == '*'; }
};

struct PolicyPrincipal {
  std::string name;
  Role role = Role::kViewer;
  // At most one of uri and cn is set (with a certificate); a principal has a certificate, a
  // token hash, or both.
  std::optional<NamePattern> certificate_uri;
  std::optional<NamePattern> certificate_cn;
  std::optional<std::array<uint8_t, 32>> token_sha256;
  // Agent identities it may Join as (empty: the default, see above).
  std::vector<NamePattern> identities;
  // Pools it may act on (empty: every pool).
  std::vector<NamePattern> pools;
  bool embedded = false;
};

class Policy {
 public:
  // Parses a policy. `source` names it in errors ("policy.yaml"). Errors: INVALID_ARGUMENT
  // naming the line, what is wrong and how to fix it (unknown keys, unknown roles, bad hex,
  // duplicate names, a principal without a credential, ...).
  static absl::StatusOr<Policy> Parse(absl::string_view yaml, absl::string_view source);
  // Reads and parses the file at `path`. Errors: NOT_FOUND / PERMISSION_DENIED (unreadable),
  // or Parse's.
  static absl::StatusOr<Policy> Load(const std::string& path);

  struct Match {
    const PolicyPrincipal* principal = nullptr;
    // The text a certificate pattern's '*' matched ("" when no '*', or a token matched).
    std::string wildcard;
    // Matched by a certificate pattern ending in '*'.
    bool by_wildcard = false;
  };
  // The principal `caller` is, if any.
  std::optional<Match> Find(const Caller& caller) const;
  const std::vector<PolicyPrincipal>& principals() const { return principals_; }

 private:
  std::vector<PolicyPrincipal> principals_;
};

// SHA-256 of `data` (OpenSSL libcrypto).
std::array<uint8_t, 32> Sha256(absl::string_view data);

// Thread-safe; Replace swaps the policy while calls are in flight (each call sees one policy).
class PolicyAuthorizer final : public Authorizer {
 public:
  explicit PolicyAuthorizer(Policy policy)
      : policy_(std::make_shared<const Policy>(std::move(policy))) {}

  // UNAUTHENTICATED when no principal matches: "<Action> needs role <role>; the caller (peer
  // ...) presented no client certificate or token the policy knows"; PERMISSION_DENIED when the
  // principal's role or pools do not allow it.
  absl::Status Authorize(const Caller& caller, Action action,
                         const std::string& pool) const override;
  Principal Identify(const Caller& caller) const override;
  absl::Status AuthorizeJoinIdentity(const Caller& caller,
                                     const std::string& identity) const override;
  bool RequiresStoreSession() const override { return true; }

  // The policy now in force.
  std::shared_ptr<const Policy> policy() const;
  // Puts `policy` in force for every later call (cohort-coordinator reloads the file on SIGHUP).
  // Sessions already open stay bound to the subject that opened them.
  void Replace(Policy policy);

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const Policy> policy_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_POLICY_H_
