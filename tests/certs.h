// Test certificates: deploy/mint-certs.sh run once per test binary into a scratch directory
// (a CA, the coordinator's server certificate, operator/viewer/agent client certificates, a
// stranger from another CA, an expired client certificate and bearer token files).
#ifndef COHORT_TESTS_CERTS_H_
#define COHORT_TESTS_CERTS_H_

#include <sys/wait.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/transport_security.h"
#include "gtest/gtest.h"
#include "tests/scratch_dir.h"

namespace cohort::testing {

class TestCerts {
 public:
  // The certificates of this test binary, minted on first use (about a second). Never null; a
  // failed mint is reported with ADD_FAILURE and ok() is false.
  static TestCerts& Get() {
    static TestCerts certs;  // removed at exit
    return certs;
  }

  bool ok() const { return ok_; }
  const std::string& dir() const { return dir_.path(); }
  // dir/<name> (e.g. "ca.crt", "operator.key", "operator.token").
  std::string Path(const std::string& name) const { return dir_ / name; }

  // Runs deploy/mint-certs.sh on this directory with `args` (e.g. "--rotate-server",
  // "--client NAME --uri URI"). Returns whether it succeeded.
  bool Mint(const std::string& args) const {
    const std::string command =
        absl::StrCat(COHORT_SOURCE_DIR, "/deploy/mint-certs.sh ", dir_.path(), " ", args, " 2>&1");
    const int rc = std::system(command.c_str());
    const bool ok = rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
    if (!ok) ADD_FAILURE() << "mint-certs.sh failed: " << command;
    return ok;
  }

  // The coordinator's options: TLS with coordinator.crt/.key and ca.crt.
  TransportSecurityOptions Server(TransportSecurityOptions::ClientAuth auth =
                                      TransportSecurityOptions::ClientAuth::kRequire) const {
    TransportSecurityOptions o;
    o.mode = TransportSecurityOptions::Mode::kTls;
    o.certificate_file = Path("coordinator.crt");
    o.key_file = Path("coordinator.key");
    o.ca_file = Path("ca.crt");
    o.client_auth = auth;
    return o;
  }
  // A client presenting <name>.crt/.key ("" for none) and trusting `ca` ("ca.crt").
  TransportSecurityOptions Client(const std::string& name, const std::string& ca = "ca.crt") const {
    TransportSecurityOptions o;
    o.mode = TransportSecurityOptions::Mode::kTls;
    if (!name.empty()) {
      o.certificate_file = Path(name + ".crt");
      o.key_file = Path(name + ".key");
    }
    o.ca_file = Path(ca);
    return o;
  }
  // Flags for a binary: --tls-cert/--tls-key (unless `name` is empty) and --tls-ca.
  std::vector<std::string> ClientFlags(const std::string& name) const {
    std::vector<std::string> flags;
    if (!name.empty())
      flags = {"--tls-cert", Path(name + ".crt"), "--tls-key", Path(name + ".key")};
    flags.insert(flags.end(), {"--tls-ca", Path("ca.crt")});
    return flags;
  }
  std::vector<std::string> ServerFlags() const {
    return {"--tls-cert", Path("coordinator.crt"), "--tls-key", Path("coordinator.key"),
            "--tls-ca",   Path("ca.crt")};
  }

 private:
  TestCerts() { ok_ = Mint("--agents 2"); }

  ScratchDir dir_;
  bool ok_ = false;
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_CERTS_H_
