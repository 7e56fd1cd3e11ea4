#include "coordinator/policy.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "yaml-cpp/yaml.h"

namespace cohort::coordinator {
namespace {

// An error about `node` of `source`: "policy.yaml line 7: <what>".
absl::Status Bad(absl::string_view source, const YAML::Node& node, absl::string_view what) {
  const YAML::Mark mark = node.Mark();
  return absl::InvalidArgumentError(absl::StrCat(
      source, mark.line >= 0 ? absl::StrCat(" line ", mark.line + 1) : std::string(), ": ", what));
}

absl::StatusOr<std::string> Scalar(absl::string_view source, const YAML::Node& node,
                                   absl::string_view key) {
  if (!node.IsScalar()) {
    return Bad(source, node, absl::StrCat("'", key, "' must be a string"));
  }
  return node.Scalar();
}

absl::StatusOr<NamePattern> Pattern(absl::string_view source, const YAML::Node& node,
                                    absl::string_view key) {
  absl::StatusOr<std::string> text = Scalar(source, node, key);
  if (!text.ok()) return text.status();
  const size_t star = text->find('*');
  if (text->empty() || (star != std::string::npos && star != text->size() - 1)) {
    return Bad(source, node,
               absl::StrCat("'", key, "' pattern '", *text,
                            "' is empty or has a '*' before its end; write the exact name, or a "
                            "prefix followed by one '*'"));
  }
  return NamePattern{*std::move(text)};
}

absl::StatusOr<std::vector<NamePattern>> Patterns(absl::string_view source, const YAML::Node& node,
                                                  absl::string_view key) {
  if (!node.IsSequence()) {
    return Bad(source, node, absl::StrCat("'", key, "' must be a list, e.g. [\"a\", \"b-*\"]"));
  }
  std::vector<NamePattern> out;
  for (const YAML::Node& item : node) {
    absl::StatusOr<NamePattern> p = Pattern(source, item, key);
    if (!p.ok()) return p.status();
    out.push_back(*std::move(p));
  }
  return out;
}

absl::StatusOr<std::array<uint8_t, 32>> Hex32(absl::string_view source, const YAML::Node& node) {
  absl::StatusOr<std::string> text = Scalar(source, node, "token_sha256");
  if (!text.ok()) return text.status();
  std::array<uint8_t, 32> out{};
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    c = absl::ascii_tolower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  bool ok = text->size() == 64;
  for (size_t i = 0; ok && i < 32; ++i) {
    const int hi = nibble((*text)[2 * i]);
    const int lo = nibble((*text)[2 * i + 1]);
    ok = hi >= 0 && lo >= 0;
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  if (!ok) {
    return Bad(source, node,
               "token_sha256 must be 64 hex digits: the SHA-256 of the token file's contents "
               "(e.g. `tr -d '[:space:]' < token | sha256sum`), never the token itself");
  }
  return out;
}

absl::StatusOr<PolicyPrincipal> ParsePrincipal(absl::string_view source, const YAML::Node& node) {
  if (!node.IsMap()) {
    return Bad(source, node, "each principal must be a map with name, role and a credential");
  }
  PolicyPrincipal p;
  bool has_role = false;
  bool has_identities = false;
  for (const auto& entry : node) {
    const std::string key = entry.first.as<std::string>();
    const YAML::Node& value = entry.second;
    if (key == "name") {
      absl::StatusOr<std::string> name = Scalar(source, value, key);
      if (!name.ok()) return name.status();
      p.name = *std::move(name);
    } else if (key == "role") {
      absl::StatusOr<std::string> role = Scalar(source, value, key);
      if (!role.ok()) return role.status();
      if (*role == "agent") {
        p.role = Role::kAgent;
      } else if (*role == "operator") {
        p.role = Role::kOperator;
      } else if (*role == "viewer") {
        p.role = Role::kViewer;
      } else {
        return Bad(source, value,
                   absl::StrCat("unknown role '", *role, "'; use agent, operator or viewer"));
      }
      has_role = true;
    } else if (key == "certificate") {
      if (!value.IsMap() || value.size() != 1) {
        return Bad(source, value,
                   "certificate must name exactly one of uri or cn, e.g. {uri: "
                   "\"spiffe://cohort/agent/*\"} or {cn: \"operator\"}");
      }
      for (const auto& c : value) {
        const std::string ckey = c.first.as<std::string>();
        if (ckey != "uri" && ckey != "cn") {
          return Bad(source, c.first,
                     absl::StrCat("unknown certificate key '", ckey, "'; use uri or cn"));
        }
        absl::StatusOr<NamePattern> pattern =
            Pattern(source, c.second, absl::StrCat("certificate.", ckey));
        if (!pattern.ok()) return pattern.status();
        (ckey == "uri" ? p.certificate_uri : p.certificate_cn) = *std::move(pattern);
      }
    } else if (key == "token_sha256") {
      absl::StatusOr<std::array<uint8_t, 32>> hash = Hex32(source, value);
      if (!hash.ok()) return hash.status();
      p.token_sha256 = *hash;
    } else if (key == "identities") {
      absl::StatusOr<std::vector<NamePattern>> ids = Patterns(source, value, key);
      if (!ids.ok()) return ids.status();
      p.identities = *std::move(ids);
      has_identities = true;
    } else if (key == "pools") {
      absl::StatusOr<std::vector<NamePattern>> pools = Patterns(source, value, key);
      if (!pools.ok()) return pools.status();
      if (pools->empty()) {
        return Bad(source, value, "pools is empty; leave it out to allow every pool");
      }
      p.pools = *std::move(pools);
    } else if (key == "embedded") {
      if (!value.IsScalar() || (value.Scalar() != "true" && value.Scalar() != "false")) {
        return Bad(source, value, "embedded must be true or false");
      }
      p.embedded = value.Scalar() == "true";
    } else {
      return Bad(source, entry.first,
                 absl::StrCat("unknown key '", key,
                              "' in a principal; use name, role, certificate, token_sha256, "
                              "identities, pools or embedded"));
    }
  }
  if (p.name.empty()) return Bad(source, node, "principal without a name: add name: <who>");
  if (!has_role) {
    return Bad(source, node,
               absl::StrCat("principal '", p.name,
                            "' has no role: add role: agent, operator or "
                            "viewer"));
  }
  if (!p.certificate_uri && !p.certificate_cn && !p.token_sha256) {
    return Bad(source, node,
               absl::StrCat("principal '", p.name,
                            "' has no credential: add certificate: {uri: ...} or {cn: ...}, or "
                            "token_sha256"));
  }
  if (p.role != Role::kAgent && (has_identities || p.embedded)) {
    return Bad(source, node,
               absl::StrCat("principal '", p.name, "' is a ", RoleName(p.role),
                            ": identities and embedded apply to agents only; remove them"));
  }
  return p;
}

bool ConstantTimeEqual(const std::array<uint8_t, 32>& a, const std::array<uint8_t, 32>& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool PoolAllowed(const PolicyPrincipal& p, const std::string& pool) {
  if (p.pools.empty()) return true;
  for (const NamePattern& pattern : p.pools) {
    if (pattern.Match(pool).has_value()) return true;
  }
  return false;
}

bool RoleAllows(const PolicyPrincipal& p, Action action) {
  switch (p.role) {
    case Role::kOperator:
      return action != Action::kJoin && action != Action::kStore;
    case Role::kViewer:
      return action == Action::kRead;
    case Role::kAgent:
      if (action == Action::kJoin || action == Action::kStore) return true;
      return p.embedded && (action == Action::kRead || action == Action::kInitialize ||
                            action == Action::kDestroy);
  }
  return false;
}

std::string PatternList(const std::vector<NamePattern>& patterns) {
  std::vector<std::string> texts;
  for (const NamePattern& p : patterns) texts.push_back(absl::StrCat("'", p.text, "'"));
  return absl::StrJoin(texts, ", ");
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kAgent:
      return "agent";
    case Role::kOperator:
      return "operator";
    case Role::kViewer:
      return "viewer";
  }
  return "unknown";
}

std::optional<std::string> NamePattern::Match(absl::string_view name) const {
  if (wildcard()) {
    const absl::string_view prefix = absl::string_view(text).substr(0, text.size() - 1);
    if (!absl::StartsWith(name, prefix)) return std::nullopt;
    return std::string(name.substr(prefix.size()));
  }
  if (name != text) return std::nullopt;
  return std::string();
}

std::array<uint8_t, 32> Sha256(absl::string_view data) {
  std::array<uint8_t, 32> out{};
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &size, EVP_sha256(), nullptr);
  return out;
}

absl::StatusOr<Policy> Policy::Parse(absl::string_view yaml, absl::string_view source) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, " line ", e.mark.line + 1, ": not valid YAML: ", e.msg));
  }
  Policy policy;
  try {
    if (!root.IsMap()) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": a policy is a map with one key, principals: a list of principals"));
    }
    YAML::Node principals;
    for (const auto& entry : root) {
      const std::string key = entry.first.as<std::string>();
      if (key != "principals") {
        return Bad(source, entry.first,
                   absl::StrCat("unknown key '", key, "'; a policy has only principals"));
      }
      principals = entry.second;
    }
    if (!principals.IsDefined() || !principals.IsSequence()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source,
                       ": principals must be a list of principals (name, role, "
                       "certificate or token_sha256)"));
    }
    std::set<std::string> names;
    for (const YAML::Node& node : principals) {
      absl::StatusOr<PolicyPrincipal> p = ParsePrincipal(source, node);
      if (!p.ok()) return p.status();
      if (!names.insert(p->name).second) {
        return Bad(source, node,
                   absl::StrCat("principal name '", p->name,
                                "' is used twice; give each principal its own name"));
      }
      policy.principals_.push_back(*std::move(p));
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, " line ", e.mark.line + 1, ": ", e.msg));
  }
  return policy;
}

absl::StatusOr<Policy> Policy::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read the policy file '", path,
                                            "' (--policy): check the path and "
                                            "its permissions"));
  }
  std::stringstream text;
  text << in.rdbuf();
  return Parse(text.str(), path);
}

std::optional<Policy::Match> Policy::Find(const Caller& caller) const {
  std::optional<std::array<uint8_t, 32>> token;
  if (!caller.bearer_token.empty()) token = Sha256(caller.bearer_token);
  for (const PolicyPrincipal& p : principals_) {
    if (caller.authenticated) {
      if (p.certificate_uri) {
        for (const std::string& uri : caller.certificate_uris) {
          if (std::optional<std::string> w = p.certificate_uri->Match(uri)) {
            return Match{&p, *std::move(w), p.certificate_uri->wildcard()};
          }
        }
      }
      if (p.certificate_cn && !caller.certificate_cn.empty()) {
        if (std::optional<std::string> w = p.certificate_cn->Match(caller.certificate_cn)) {
          return Match{&p, *std::move(w), p.certificate_cn->wildcard()};
        }
      }
    }
    if (p.token_sha256 && token && ConstantTimeEqual(*p.token_sha256, *token)) {
      return Match{&p, "", false};
    }
  }
  return std::nullopt;
}

std::shared_ptr<const Policy> PolicyAuthorizer::policy() const {
  absl::MutexLock lock(&mu_);
  return policy_;
}

void PolicyAuthorizer::Replace(Policy policy) {
  auto next = std::make_shared<const Policy>(std::move(policy));
  absl::MutexLock lock(&mu_);
  policy_ = std::move(next);
}

absl::Status PolicyAuthorizer::Authorize(const Caller& caller, Action action,
                                         const std::string& pool) const {
  if (caller.in_process) return absl::OkStatus();
  const std::shared_ptr<const Policy> policy = this->policy();
  std::optional<Policy::Match> match = policy->Find(caller);
  if (!match) {
    return absl::UnauthenticatedError(
        absl::StrCat(ActionTitle(action), " needs role ", RoleNeeded(action), "; the caller (peer ",
                     caller.peer.empty() ? "unknown" : caller.peer,
                     ") presented no client certificate or token the policy knows"));
  }
  const PolicyPrincipal& p = *match->principal;
  if (!RoleAllows(p, action)) {
    return absl::PermissionDeniedError(absl::StrCat(ActionTitle(action), " needs role ",
                                                    RoleNeeded(action), "; caller '", p.name,
                                                    "' has role ", RoleName(p.role)));
  }
  // "" is a Watch of every pool: allowed, and the coordinator leaves out the pools this
  // principal may not read.
  if (!pool.empty() && !PoolAllowed(p, pool)) {
    return absl::PermissionDeniedError(absl::StrCat(
        ActionTitle(action), " on pool '", pool, "' is not allowed to caller '", p.name, "' (role ",
        RoleName(p.role), "); its pools are ", PatternList(p.pools)));
  }
  return absl::OkStatus();
}

Principal PolicyAuthorizer::Identify(const Caller& caller) const {
  if (caller.in_process) return Principal{"in-process", "operator", "in-process"};
  const std::shared_ptr<const Policy> policy = this->policy();
  std::optional<Policy::Match> match = policy->Find(caller);
  if (!match) return {};
  const std::string& name = match->principal->name;
  return Principal{name, std::string(RoleName(match->principal->role)),
                   match->by_wildcard ? absl::StrCat(name, "/", match->wildcard) : name};
}

absl::Status PolicyAuthorizer::AuthorizeJoinIdentity(const Caller& caller,
                                                     const std::string& identity) const {
  if (caller.in_process) return absl::OkStatus();
  const std::shared_ptr<const Policy> policy = this->policy();
  std::optional<Policy::Match> match = policy->Find(caller);
  if (!match) {
    return absl::UnauthenticatedError(
        "Join needs role agent; the caller presented no client certificate or token the policy "
        "knows");
  }
  const PolicyPrincipal& p = *match->principal;
  if (!p.identities.empty()) {
    for (const NamePattern& pattern : p.identities) {
      if (pattern.Match(identity).has_value()) return absl::OkStatus();
    }
    return absl::PermissionDeniedError(
        absl::StrCat("caller '", p.name, "' may not join as identity '", identity,
                     "'; it may join as ", PatternList(p.identities), " (policy: identities)"));
  }
  // The default: the text the certificate's '*' matched, else the principal's name.
  const bool wildcard = match->by_wildcard;
  const std::string allowed = wildcard ? match->wildcard : p.name;
  if (!allowed.empty() && identity == allowed) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("caller '", p.name, "' may not join as identity '", identity,
                   "'; it may join only as '", allowed,
                   wildcard ? "' (the part of its certificate name the policy's '*' matched)"
                            : "' (its principal name; list others under identities)"));
}

}  // namespace cohort::coordinator
