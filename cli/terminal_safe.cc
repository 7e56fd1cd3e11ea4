#include "cli/terminal_safe.h"

#include "absl/strings/str_format.h"

namespace cohort::cli {
namespace {

bool IsControl(unsigned char c) { return (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f; }

}  // namespace

TerminalSafeBuf::~TerminalSafeBuf() {
  FlushPendingEscaped();
  target_->pubsync();
}

void TerminalSafeBuf::PutEscaped(unsigned char c) {
  const std::string text = absl::StrFormat("\\x%02x", c);
  target_->sputn(text.data(), static_cast<std::streamsize>(text.size()));
}

void TerminalSafeBuf::FlushPendingEscaped() {
  for (unsigned char c : pending_) {
    if (IsControl(c)) {
      PutEscaped(c);
    } else {
      target_->sputc(static_cast<char>(c));
    }
  }
  pending_.clear();
}

TerminalSafeBuf::int_type TerminalSafeBuf::overflow(int_type ch) {
  if (traits_type::eq_int_type(ch, traits_type::eof())) return traits_type::not_eof(ch);
  const unsigned char c = static_cast<unsigned char>(traits_type::to_char_type(ch));
  if (!pending_.empty()) {
    const bool csi = pending_.size() == 1 ? c == '[' : ((c >= '0' && c <= '9') || c == ';');
    if (csi && pending_.size() < 16) {
      pending_.push_back(static_cast<char>(c));
      return ch;
    }
    if (c == 'm' && pending_.size() >= 2) {  // a complete SGR sequence: colours only
      pending_.push_back('m');
      target_->sputn(pending_.data(), static_cast<std::streamsize>(pending_.size()));
      pending_.clear();
      return ch;
    }
    FlushPendingEscaped();
  }
  if (c == 0x1b) {
    pending_.push_back(static_cast<char>(c));
    return ch;
  }
  if (IsControl(c)) {
    PutEscaped(c);
    return ch;
  }
  return target_->sputc(static_cast<char>(c));
}

int TerminalSafeBuf::sync() { return target_->pubsync(); }

}  // namespace cohort::cli
