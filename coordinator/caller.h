// Caller: who is making a request to the Coordinator, as the transport saw it. The gRPC
// services build one per call (services.cc, from the call's auth context); code that calls the
// Coordinator directly (tests, the fuzz target, embedded use) gets Caller::InProcess().
//
// The transport fills in what it proved (a verified client certificate's names) and what the
// call carried (a bearer token); the Authorizer (authorizer.h) turns that into a principal and a
// role. Nothing here is trusted beyond what the transport verified.
#ifndef COHORT_COORDINATOR_CALLER_H_
#define COHORT_COORDINATOR_CALLER_H_

#include <string>
#include <vector>

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
  // The verified client certificate's subject alternative name URIs (e.g.
  // "spiffe://cohort/agent/node-a") and subject common name; empty without a verified
  // certificate.
  std::vector<std::string> certificate_uris;
  std::string certificate_cn;
  // The token of the call's "authorization: Bearer <token>" metadata; empty if none. gRPC sends
  // call credentials only over TLS. A secret: never logged, never stored.
  std::string bearer_token;

  // Set only by InProcess(): the call comes from inside this process (never from a transport).
  bool in_process = false;

  // A call from inside this process: trusted by construction, like the coordinator itself.
  static Caller InProcess() {
    Caller caller{"in-process", true, ""};
    caller.in_process = true;
    return caller;
  }
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_CALLER_H_
