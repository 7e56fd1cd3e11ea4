// Plain-text output helpers for cohortctl: aligned tables and compact rank lists.
#ifndef COHORT_CLI_TABLE_H_
#define COHORT_CLI_TABLE_H_

#include <ostream>
#include <string>
#include <vector>

#include "common/rank_generator.h"

namespace cohort::cli {

// A table whose columns are padded to their widest cell, measured in visible columns (ANSI
// colour sequences take none). The last column is never padded, so long rank lists do not drag
// trailing spaces.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// Columns `text` takes on a terminal: ANSI colour sequences skipped, a UTF-8 character one.
size_t VisibleWidth(const std::string& text);

// "[0-3,8,10]": ascending runs of three or more consecutive ranks become a-b.
std::string FormatRanks(const RankList& ranks);

}  // namespace cohort::cli

#endif  // COHORT_CLI_TABLE_H_
