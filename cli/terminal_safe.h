// TerminalSafeBuf: what cohortctl prints reaches a terminal without anything in it that the
// terminal would act on. Identities, hosts and error texts come from the network; a newline
// there would forge an output line, an escape sequence would move the cursor, retitle the
// window or worse. Every control character is written as \xNN, except newline, tab and the SGR
// colour sequences cohortctl paints with (ESC [ digits ; m).
#ifndef COHORT_CLI_TERMINAL_SAFE_H_
#define COHORT_CLI_TERMINAL_SAFE_H_

#include <streambuf>
#include <string>

namespace cohort::cli {

class TerminalSafeBuf : public std::streambuf {
 public:
  // Writes to `target`, which must outlive this buffer.
  explicit TerminalSafeBuf(std::streambuf* target) : target_(target) {}
  ~TerminalSafeBuf() override;

 protected:
  int_type overflow(int_type c) override;
  int sync() override;

 private:
  // Writes what is pending of an escape sequence as escaped text.
  void FlushPendingEscaped();
  void PutEscaped(unsigned char c);

  std::streambuf* target_;
  std::string pending_;  // an ESC sequence being read: ESC, '[', digits and ';'
};

}  // namespace cohort::cli

#endif  // COHORT_CLI_TERMINAL_SAFE_H_
