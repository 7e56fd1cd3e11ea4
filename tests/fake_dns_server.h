// A DNS server for tests: UDP on 127.0.0.1:0 (the port read back), authoritative for one name,
// whose IPv4 address the test switches at run time (a Service name whose pod moved). gRPC's
// c-ares resolver queries it when a channel's target names it as the DNS authority:
//   dns://127.0.0.1:<port()>/<name>:<grpc port>
//
// Answers (RFC 1035, section 4.1), TTL 0 so that nothing between gRPC and this server may cache:
//   the name, type A (1)        NOERROR, one A record: the current address
//   the name, any other type    NOERROR, no records (AAAA, TXT, SRV: "no such data")
//   any other name              NXDOMAIN
//   not a standard query        NOTIMP; unparseable: FORMERR (or dropped, when even the
//                               12-byte header is missing)
// One question per message; the question is echoed byte for byte (resolvers compare it with
// what they asked). No compression is expected in a question; the answer points at it.
#ifndef COHORT_TESTS_FAKE_DNS_SERVER_H_
#define COHORT_TESTS_FAKE_DNS_SERVER_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace cohort::testing {

class FakeDnsServer {
 public:
  // Record types and response codes this server knows.
  static constexpr uint16_t kTypeA = 1;
  static constexpr uint16_t kClassIn = 1;
  static constexpr uint8_t kNoError = 0;
  static constexpr uint8_t kFormErr = 1;
  static constexpr uint8_t kNxDomain = 3;
  static constexpr uint8_t kNotImp = 4;

  // Serves `name` (case-insensitive, without the trailing dot) as `ipv4` (dotted quad).
  // ok() tells whether the socket could be bound.
  FakeDnsServer(std::string name, const std::string& ipv4) : name_(absl::AsciiStrToLower(name)) {
    SetAddress(ipv4);
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    stop_fd_ = eventfd(0, EFD_CLOEXEC);
    if (fd_ < 0 || stop_fd_ < 0) return;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return;
    socklen_t len = sizeof(addr);
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return;
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  FakeDnsServer(const FakeDnsServer&) = delete;
  FakeDnsServer& operator=(const FakeDnsServer&) = delete;
  ~FakeDnsServer() {
    if (thread_.joinable()) {
      const uint64_t one = 1;
      (void)!write(stop_fd_, &one, sizeof(one));
      thread_.join();
    }
    if (fd_ >= 0) close(fd_);
    if (stop_fd_ >= 0) close(stop_fd_);
  }

  bool ok() const { return port_ != 0; }
  int port() const { return port_; }
  // "127.0.0.1:<port>": the authority of a dns:// target.
  std::string authority() const { return absl::StrCat("127.0.0.1:", port_); }

  // The address the next A answer carries (a dotted quad; anything else is a test bug).
  void SetAddress(const std::string& ipv4) {
    in_addr a{};
    const bool parsed = inet_pton(AF_INET, ipv4.c_str(), &a) == 1;
    absl::MutexLock lock(&mu_);
    address_ = parsed ? a.s_addr : 0;
  }

  // How many A queries for the name were answered with `ipv4`.
  int AnswersWith(const std::string& ipv4) const {
    in_addr a{};
    if (inet_pton(AF_INET, ipv4.c_str(), &a) != 1) return 0;
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (uint32_t answered : answered_) n += answered == a.s_addr;
    return n;
  }

 private:
  // The response to one query message; empty: drop it.
  std::vector<uint8_t> Answer(const uint8_t* query, size_t size) {
    // Header: id(2) flags(2) qdcount(2) ancount(2) nscount(2) arcount(2).
    if (size < 12) return {};
    const bool is_response = (query[2] & 0x80) != 0;
    if (is_response) return {};
    const uint8_t opcode = (query[2] >> 3) & 0x0f;
    const uint16_t qdcount = static_cast<uint16_t>(query[4] << 8 | query[5]);
    if (opcode != 0) return Reply(query, kNotImp, 0, 0, 0);
    if (qdcount != 1) return Reply(query, kFormErr, 0, 0, 0);
    // QNAME: length-prefixed labels up to a zero byte.
    size_t at = 12;
    std::string name;
    while (true) {
      if (at >= size) return Reply(query, kFormErr, 0, 0, 0);
      const uint8_t len = query[at++];
      if (len == 0) break;
      if ((len & 0xc0) != 0 || at + len > size) return Reply(query, kFormErr, 0, 0, 0);
      if (!name.empty()) name.push_back('.');
      name.append(reinterpret_cast<const char*>(query + at), len);
      at += len;
    }
    if (at + 4 > size) return Reply(query, kFormErr, 0, 0, 0);
    const uint16_t qtype = static_cast<uint16_t>(query[at] << 8 | query[at + 1]);
    const uint16_t qclass = static_cast<uint16_t>(query[at + 2] << 8 | query[at + 3]);
    const size_t question_end = at + 4;
    if (absl::AsciiStrToLower(name) != name_) {
      return Reply(query, kNxDomain, question_end, 0, 0);
    }
    if (qtype != kTypeA || qclass != kClassIn) return Reply(query, kNoError, question_end, 0, 0);
    uint32_t address;
    {
      absl::MutexLock lock(&mu_);
      address = address_;
      answered_.push_back(address);
    }
    return Reply(query, kNoError, question_end, 1, address);
  }

  // The header (id, opcode and RD copied; QR, AA and RA set), the question (query[12,
  // question_end)) and `answers` (0 or 1) A records for the question's name holding `address`
  // (network order).
  static std::vector<uint8_t> Reply(const uint8_t* query, uint8_t rcode, size_t question_end,
                                    int answers, uint32_t address) {
    std::vector<uint8_t> out(query, query + 12);
    // QR; the opcode and RD as asked; AA.
    out[2] = static_cast<uint8_t>(0x80 | (query[2] & 0x78) | 0x04 | (query[2] & 0x01));
    out[3] = static_cast<uint8_t>(0x80 | rcode);  // RA, RCODE
    out[4] = 0;
    out[5] = question_end > 12 ? 1 : 0;  // QDCOUNT
    out[6] = 0;
    out[7] = static_cast<uint8_t>(answers);   // ANCOUNT
    for (int i = 8; i < 12; ++i) out[i] = 0;  // NSCOUNT, ARCOUNT
    if (question_end > 12) out.insert(out.end(), query + 12, query + question_end);
    if (answers == 1) {
      const uint8_t* a = reinterpret_cast<const uint8_t*>(&address);
      // NAME (a pointer, 0xc0 | offset 12, to the question's name), TYPE A, CLASS IN.
      const uint8_t record[] = {0xc0, 0x0c, 0x00, 0x01, 0x00,
                                0x01, 0x00, 0x00, 0x00, 0x00,  // TTL 0: never cache
                                0x00, 0x04,                    // RDLENGTH
                                a[0], a[1], a[2], a[3]};       // RDATA, network order
      out.insert(out.end(), record, record + sizeof(record));
    }
    return out;
  }

  void Serve() {
    std::vector<uint8_t> buffer(4096);
    while (true) {
      pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) continue;
      if (fds[1].revents != 0) return;
      sockaddr_in from{};
      socklen_t from_len = sizeof(from);
      const ssize_t n = recvfrom(fd_, buffer.data(), buffer.size(), 0,
                                 reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n <= 0) continue;
      const std::vector<uint8_t> reply = Answer(buffer.data(), static_cast<size_t>(n));
      if (reply.empty()) continue;
      (void)sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from),
                   from_len);
    }
  }

  const std::string name_;
  int fd_ = -1;
  int stop_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  mutable absl::Mutex mu_;
  uint32_t address_ ABSL_GUARDED_BY(mu_) = 0;
  // The address of every A answer, in order.
  std::vector<uint32_t> answered_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_FAKE_DNS_SERVER_H_
