#include "cli/table.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace cohort::cli {

void Table::Print(std::ostream& out) const {
  std::vector<size_t> width;
  for (const auto& row : rows_) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
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
