#include "repo/backend/mem_backend.h"

#include <vector>

namespace coffer::repo {

Result<Bytes> MemBackend::load(const Handle& h, std::uint64_t offset, std::uint64_t length) {
  std::scoped_lock lock(mutex_);
  auto it = files_.find({h.kind, h.name});
  if (it == files_.end())
    return fail(Errc::kNotFound, h.path() + ": not found");
  const Bytes& f = it->second;
  if (offset > f.size())
    return fail(Errc::kCorrupt, h.path() + ": offset beyond end of file");
  if (length == 0)
    length = f.size() - offset;
  if (offset + length > f.size())
    return fail(Errc::kCorrupt, h.path() + ": short file");
  return Bytes(f.begin() + static_cast<long>(offset),
               f.begin() + static_cast<long>(offset + length));
}

Result<std::uint64_t> MemBackend::stat(const Handle& h) {
  std::scoped_lock lock(mutex_);
  auto it = files_.find({h.kind, h.name});
  if (it == files_.end())
    return fail(Errc::kNotFound, h.path() + ": not found");
  return it->second.size();
}

Result<void> MemBackend::list(FileKind kind,
                              const std::function<Result<void>(const FileInfo&)>& fn) {
  std::vector<FileInfo> infos;
  {
    std::scoped_lock lock(mutex_);
    for (const auto& [key, data] : files_) {
      if (key.first == kind)
        infos.push_back(FileInfo{key.second, data.size()});
    }
  }
  for (const auto& info : infos) COFFER_TRY(fn(info));
  return {};
}

Result<void> MemBackend::save(const Handle& h, ByteSpan data) {
  std::scoped_lock lock(mutex_);
  auto [it, inserted] = files_.try_emplace({h.kind, h.name}, Bytes(data.begin(), data.end()));
  if (!inserted)
    return fail(Errc::kInvalidArgument, h.path() + ": already exists");
  return {};
}

Result<void> MemBackend::remove(const Handle& h) {
  std::scoped_lock lock(mutex_);
  if (files_.erase({h.kind, h.name}) == 0)
    return fail(Errc::kNotFound, h.path() + ": not found");
  return {};
}

}  // namespace coffer::repo
