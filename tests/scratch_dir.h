// A fresh directory per test under the test temp dir, removed with everything in it.
#ifndef COHORT_TESTS_SCRATCH_DIR_H_
#define COHORT_TESTS_SCRATCH_DIR_H_

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace cohort::testing {

class ScratchDir {
 public:
  ScratchDir() {
    std::string name = ::testing::TempDir() + "/cohort-scratch-XXXXXX";
    if (mkdtemp(name.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed for " << name;
    path_ = name;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

  // Names of the entries in the directory, sorted.
  std::vector<std::string> List() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path_)) {
      out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  static void Write(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    EXPECT_TRUE(out.good()) << "cannot write " << path;
  }
  // The file's bytes, or "<missing>".
  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in.good()) return "<missing>";
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::string path_;
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_SCRATCH_DIR_H_
