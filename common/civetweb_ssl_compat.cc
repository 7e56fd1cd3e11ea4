// libcohort_civetweb_ssl_compat.so: the one OpenSSL 1.1 function Debian 12's civetweb looks up
// that OpenSSL 3 no longer exports, so that civetweb can serve HTTPS (the metrics endpoint).
//
// civetweb 1.15 is built for the OpenSSL 1.1 API and finds libssl's functions at run time:
// dlopen("libssl.so") and dlsym(handle, name). OpenSSL 3 turned SSL_get_peer_certificate into
// a macro over SSL_get1_peer_certificate (same contract: a new reference the caller frees), so
// the lookup yields null and civetweb crashes on its first HTTPS connection. This library's
// SONAME is "libssl.so" and it needs the real libssl.so.3: once it is loaded (metrics_util.cc,
// before civetweb starts), glibc answers civetweb's dlopen("libssl.so") with it, and dlsym
// through that handle finds this function here and every other one in libssl.so.3. It holds no
// TLS code.
#include <openssl/ssl.h>

#undef SSL_get_peer_certificate

extern "C" __attribute__((visibility("default"))) X509* SSL_get_peer_certificate(const SSL* ssl) {
  return SSL_get1_peer_certificate(ssl);
}
