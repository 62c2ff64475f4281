#include "repo/backend/backend.h"

namespace coffer::repo {

const char* file_kind_dir(FileKind kind) {
  switch (kind) {
    case FileKind::kConfig:
      return "";
    case FileKind::kKey:
      return "keys";
    case FileKind::kLock:
      return "locks";
    case FileKind::kSnapshot:
      return "snapshots";
    case FileKind::kIndex:
      return "index";
    case FileKind::kPack:
      return "data";
  }
  return "";
}

std::string Handle::path() const {
  if (kind == FileKind::kConfig)
    return "config";
  std::string dir = file_kind_dir(kind);
  if (kind == FileKind::kPack && name.size() >= 2)
    return dir + "/" + name.substr(0, 2) + "/" + name;
  return dir + "/" + name;
}

}  // namespace coffer::repo
