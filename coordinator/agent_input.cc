#include "coordinator/agent_input.h"

#include "absl/strings/str_cat.h"

namespace cohort::coordinator {

namespace {

// Cuts every free-text field of the groups to kMaxFreeText printable bytes and bounds their
// number (a rank is in at most one group of each kind).
void CleanGroups(google::protobuf::RepeatedPtrField<v1::GroupReport>* groups) {
  constexpr int kMaxGroups = 64;
  while (groups->size() > kMaxGroups) groups->RemoveLast();
  for (v1::GroupReport& g : *groups) {
    if (!g.error().empty()) g.set_error(Printable(g.error()));
    if (!g.async_error().empty()) g.set_async_error(Printable(g.async_error()));
  }
}

}  // namespace

void CleanAgentMessage(v1::AgentMessage* m) {
  switch (m->kind_case()) {
    case v1::AgentMessage::kReport:
      m->mutable_report()->set_error(Printable(m->report().error()));
      CleanGroups(m->mutable_report()->mutable_groups());
      break;
    case v1::AgentMessage::kProgress:
      m->mutable_progress()->set_phase(Printable(m->progress().phase(), 64));
      break;
    case v1::AgentMessage::kGroupStates:
      CleanGroups(m->mutable_group_states()->mutable_groups());
      break;
    case v1::AgentMessage::kTeardown:
      m->mutable_teardown()->set_error(Printable(m->teardown().error()));
      CleanGroups(m->mutable_teardown()->mutable_groups());
      break;
    case v1::AgentMessage::kLeave:
      // A reason for people, e.g. "Terminated (signal 15)": one short line.
      m->mutable_leave()->set_reason(Printable(m->leave().reason(), 256));
      break;
    default:
      break;
  }
}

void ApplyTeardown(const v1::TeardownReport& teardown, v1::CommState state,
                   v1::GenerationReport* report) {
  if (report->generation() != teardown.generation()) return;  // not the groups it released
  for (v1::GroupReport& g : *report->mutable_groups()) {
    bool released = false;
    v1::CommState now = state;
    if (teardown.groups_size() > 0) {
      for (const v1::GroupReport& r : teardown.groups()) {
        if (r.kind() == g.kind() && r.index() == g.index()) {
          released = true;
          if (r.state() != v1::COMM_STATE_UNSPECIFIED) now = r.state();
        }
      }
    } else {
      released = teardown.scope() == v1::DESTROY_SCOPE_ALL || g.kind() != v1::GROUP_KIND_WORLD;
    }
    if (released) g.set_state(now);
  }
}

std::optional<Refusal> CheckJoinRequest(const v1::JoinRequest& request, const Limits& limits) {
  if (request.identity().empty()) {
    return Refusal("identity", absl::InvalidArgumentError(
                                   "join without an identity: set a stable identity such as the "
                                   "pod name or host:gpu"));
  }
  if (request.incarnation().empty()) {
    return Refusal("incarnation",
                   absl::InvalidArgumentError(
                       "join without an incarnation: set a value unique to this process start"));
  }
  if (absl::Status s = CheckName("identity", request.identity(), limits.max_identity_length,
                                 "max-identity-length");
      !s.ok()) {
    return Refusal("identity", s);
  }
  if (absl::Status s = CheckName("incarnation", request.incarnation(), limits.max_identity_length,
                                 "max-identity-length");
      !s.ok()) {
    return Refusal("incarnation", s);
  }
  if (request.has_rank_hint() &&
      (request.rank_hint() < -1 || request.rank_hint() >= limits.max_world_size)) {
    return Refusal(
        "rank-hint",
        absl::InvalidArgumentError(absl::StrCat(
            "rank_hint ", request.rank_hint(), " is outside [0, ", limits.max_world_size,
            ") (coordinator flag --max-world-size); use -1 or leave it unset for none")));
  }
  const v1::DeviceInfo& d = request.device();
  for (const std::string* field :
       {&d.host_address(), &d.hostname(), &d.gpu_uuid(), &d.pci_bus_id(), &request.agent_version(),
        &request.nccl_version(), &request.previous_session_id()}) {
    if (field->size() > 253) {
      return Refusal("join-field", absl::InvalidArgumentError(
                                       absl::StrCat("a join field is ", field->size(),
                                                    " bytes long (device addresses, names and "
                                                    "versions take at most 253)")));
    }
  }
  if (request.backends_size() > 8) {
    return Refusal("join-field", absl::InvalidArgumentError(absl::StrCat(
                                     "join offers ", request.backends_size(),
                                     " backends; there are three (nccl, gloo, none)")));
  }
  for (const std::string& b : request.backends()) {
    if (b.size() > 16) {
      return Refusal("join-field", absl::InvalidArgumentError("a backend name is too long"));
    }
  }
  if (request.held().holding()) {
    if (request.held().world_size() > limits.max_world_size) {
      return Refusal("max-world-size",
                     LimitExceeded(absl::StrCat("held world_size ", request.held().world_size(),
                                                " is larger than the largest world allowed"),
                                   limits.max_world_size, "max-world-size"));
    }
    if (request.held().groups_size() > 64) {
      return Refusal("held", absl::InvalidArgumentError(absl::StrCat(
                                 "held state lists ", request.held().groups_size(),
                                 " groups; a rank is in at most ", "one group of each kind")));
    }
  }
  return std::nullopt;
}

absl::Status CheckKeys(int count, const std::function<const std::string&(int)>& key) {
  if (count == 0) return absl::InvalidArgumentError("the request names no key");
  if (count > kMaxKeysPerRequest) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request names ", count, " keys; at most ", kMaxKeysPerRequest));
  }
  for (int i = 0; i < count; ++i) {
    if (key(i).empty() || key(i).size() > kMaxKeyLength) {
      return absl::InvalidArgumentError(absl::StrCat(
          "key ", i, " is ", key(i).size(), " bytes long; keys take 1 to ", kMaxKeyLength));
    }
  }
  return absl::OkStatus();
}

}  // namespace cohort::coordinator
