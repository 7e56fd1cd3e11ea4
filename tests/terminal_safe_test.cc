// What cohortctl prints cannot drive the operator's terminal: control characters from the
// network are escaped, colour sequences pass.
#include "cli/terminal_safe.h"

#include <sstream>

#include "gtest/gtest.h"

namespace cohort::cli {
namespace {

std::string Through(const std::string& text) {
  std::ostringstream target;
  {
    TerminalSafeBuf safe(target.rdbuf());
    std::ostream out(&safe);
    out << text;
  }
  return target.str();
}

TEST(TerminalSafe, NewlinesTabsAndPlainTextPass) {
  EXPECT_EQ(Through("rank 0\tagent-0\nrank 1\n"), "rank 0\tagent-0\nrank 1\n");
  EXPECT_EQ(Through("h\xc3\xa9llo"), "h\xc3\xa9llo");  // UTF-8 is text
}

TEST(TerminalSafe, ColourSequencesPass) {
  EXPECT_EQ(Through("\x1b[32mREADY\x1b[0m \x1b[2mstandby\x1b[0m"),
            "\x1b[32mREADY\x1b[0m \x1b[2mstandby\x1b[0m");
}

TEST(TerminalSafe, ControlCharactersAndOtherSequencesAreEscaped) {
  // Carriage return (overwrites a line), a window-title OSC with BEL, cursor movement, a bare
  // ESC at the end, DEL.
  EXPECT_EQ(Through("a\rb"), "a\\x0db");
  EXPECT_EQ(Through("\x1b]0;pwned\x07"), "\\x1b]0;pwned\\x07");
  EXPECT_EQ(Through("\x1b[2J\x1b[H"), "\\x1b[2J\\x1b[H");
  EXPECT_EQ(Through("x\x7f"), "x\\x7f");
  EXPECT_EQ(Through("end\x1b"), "end\\x1b");
  EXPECT_EQ(Through("\x1b[31"), "\\x1b[31");
}

}  // namespace
}  // namespace cohort::cli
