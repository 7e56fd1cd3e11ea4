#include "cli/table.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace cohort::cli {

size_t VisibleWidth(const std::string& text) {
  size_t width = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\x1b' && i + 1 < text.size() && text[i + 1] == '[') {
      // An ANSI colour sequence: ESC [ parameters final-byte.
      i += 2;
      while (i < text.size() && !(text[i] >= '@' && text[i] <= '~')) ++i;
      continue;
    }
    // Count UTF-8 lead bytes only, so a multi-byte character is one column.
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++width;
  }
  return width;
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> width;
  for (const auto& row : rows_) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], VisibleWidth(row[i]));
  }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - VisibleWidth(row[i]) + 2, ' ');
    }
    out << line << "\n";
  }
}

std::string FormatRanks(const RankList& ranks) {
  std::string out = "[";
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (i > 0) out += ",";
    if (j - i >= 2) {
      absl::StrAppend(&out, ranks[i], "-", ranks[j]);
      i = j + 1;
    } else {
      absl::StrAppend(&out, ranks[i]);
      ++i;
    }
  }
  return out + "]";
}

}  // namespace cohort::cli
