// HttpGetMetrics: GET http://127.0.0.1:<port>/metrics over a plain socket, for tests that scrape
// a Prometheus endpoint (metrics_test, the Kubernetes rehearsal). Every read and write is bounded.
#ifndef COHORT_TESTS_HTTP_GET_H_
#define COHORT_TESTS_HTTP_GET_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace cohort::testing {

// GET http://127.0.0.1:port/metrics over a plain socket; the body, or an error naming why not.
inline absl::StatusOr<std::string> HttpGetMetrics(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket() failed");
  timeval timeout{.tv_sec = 10, .tv_usec = 0};  // every read and write is bounded
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot connect to 127.0.0.1:", port));
  }
  const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError("short write");
  }
  std::string response;
  char buf[16384];
  while (true) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0) break;  // HTTP/1.0: the server closes after the body
    if (n < 0) {
      close(fd);
      return absl::DeadlineExceededError("no complete response within 10 s");
    }
    response.append(buf, n);
  }
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.1 200", 0) != 0 && response.rfind("HTTP/1.0 200", 0) != 0) {
    return absl::InternalError(absl::StrCat("not 200: ", response.substr(0, 200)));
  }
  if (body == std::string::npos) return absl::InternalError("no header/body separator");
  return response.substr(body + 4);
}

}  // namespace cohort::testing

#endif  // COHORT_TESTS_HTTP_GET_H_
