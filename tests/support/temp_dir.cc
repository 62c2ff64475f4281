#include "tests/support/temp_dir.h"

#include <cstdlib>
#include <stdexcept>
#include <vector>

#include <stdlib.h>

namespace coffer::test {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base != nullptr ? base : "/tmp") + "/coffer-test-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr)
    throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string copy_golden_repo(const TempDir& dir, const std::string& name) {
  std::string src = std::string(COFFER_SOURCE_DIR) + "/tests/data/repos/" + name;
  std::string dst = dir.path() + "/" + name;
  std::filesystem::copy(src, dst, std::filesystem::copy_options::recursive);
  return dst;
}

}  // namespace coffer::test
