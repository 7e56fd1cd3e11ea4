// Caller: who is making a request to the Coordinator, as the transport saw it. The gRPC
// services build one per call (services.cc, from the call's auth context); code that calls the
// Coordinator directly (tests, the fuzz target, embedded use) gets Caller::InProcess().
//
// This is the seam for mutual TLS and roles: today every server runs with whatever credentials
// common/transport_security sets up, the Authorizer allows everything, and nothing here changes
// behaviour.
#ifndef COHORT_COORDINATOR_CALLER_H_
#define COHORT_COORDINATOR_CALLER_H_

#include <string>

namespace cohort::coordinator {

struct Caller {
  // Who the caller is: the authenticated peer identity (e.g. a client certificate's subject
  // alternative name) when `authenticated`, otherwise the peer address (for logs only: anyone
  // can connect from anywhere).
  std::string identity;
  // Whether the transport proved `identity` (a verified client certificate).
  bool authenticated = false;
  // The transport's peer, e.g. "ipv4:127.0.0.1:50432"; empty in process.
  std::string peer;

  // A call from inside this process: trusted by construction, like the coordinator itself.
  static Caller InProcess() { return Caller{"in-process", true, ""}; }
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_CALLER_H_
