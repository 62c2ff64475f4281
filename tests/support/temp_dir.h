// TempDir: a directory under $TMPDIR removed (recursively) when the object dies.
#pragma once

#include <filesystem>
#include <string>

namespace coffer::test {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Copies a repository from tests/data/repos/<name> into `dir`/<name> and returns its path.
std::string copy_golden_repo(const TempDir& dir, const std::string& name);

inline constexpr const char* kGoldenPassword = "coffer-test";

}  // namespace coffer::test
