// libfuse low-level callbacks: decode, call SnapshotFs, reply (house-style §3.11).
#include "fs/fuse_adapter.h"

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <fcntl.h>
#include <fuse3/fuse_lowlevel.h>
#include <sys/uio.h>

#include "fs/errno_map.h"
#include "fs/page_cache_fill.h"
#include "fs/snapshot_fs.h"
#include "fs/snapshot_inode.h"
#include "repo/core/log.h"

namespace coffer::fs {
namespace {

FuseContext& context_of(fuse_req_t req) {
  return *static_cast<FuseContext*>(fuse_req_userdata(req));
}
SnapshotFs& fs_of(fuse_req_t req) { return context_of(req).fs; }

DirHandle& dir_of(const fuse_file_info* fi) { return HandleSet<DirHandle>::get(fi->fh); }
FileHandle& file_of(const fuse_file_info* fi) { return HandleSet<FileHandle>::get(fi->fh); }

void reply_error(fuse_req_t req, const repo::Error& e) {
  int err = errno_for(e.code);
  if (err == EIO)
    repo::log::warn(e.message);
  fuse_reply_err(req, err);
}

// Runs `body`; an escaping exception becomes EIO (the body has not replied yet then).
template <class F>
void guarded(fuse_req_t req, F&& body) noexcept {
  try {
    body();
  } catch (...) {
    fuse_reply_err(req, EIO);
  }
}

fuse_entry_param to_param(const Entry& e) {
  fuse_entry_param p{};
  p.ino = e.nodeid;
  p.attr = e.attr;
  p.attr_timeout = e.attr_timeout;
  p.entry_timeout = e.entry_timeout;
  return p;
}

void on_init(void* /*userdata*/, fuse_conn_info* conn) noexcept {
  if ((conn->capable & FUSE_CAP_CACHE_SYMLINKS) != 0)
    conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  conn->want &= ~static_cast<unsigned>(FUSE_CAP_AUTO_INVAL_DATA | FUSE_CAP_SPLICE_READ |
                                       FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE |
                                       FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_POSIX_LOCKS |
                                       FUSE_CAP_FLOCK_LOCKS);
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  // The kernel keeps min(bdi read-ahead, max_readahead): fuse_main raises the bdi's
  // read_ahead_kb before this reply, and this lets it stand (the offer is only 128 KiB).
  conn->max_readahead = 1U << 20;
}

void on_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
  guarded(req, [&] {
    auto r = fs_of(req).lookup(parent, name);
    if (!r)
      return reply_error(req, r.error());
    fuse_entry_param p = to_param(*r);
    if (fuse_reply_entry(req, &p) != 0 && r->nodeid != 0)
      fs_of(req).forget(r->nodeid, 1);  // the kernel never saw it
  });
}

void on_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) noexcept {
  try {
    fs_of(req).forget(ino, nlookup);
  } catch (...) {  // nothing to report: forget has no error reply
  }
  fuse_reply_none(req);
}

void on_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) noexcept {
  try {
    for (size_t i = 0; i < count; ++i) fs_of(req).forget(forgets[i].ino, forgets[i].nlookup);
  } catch (...) {  // as on_forget
  }
  fuse_reply_none(req);
}

void on_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) noexcept {
  guarded(req, [&] {
    auto r = fs_of(req).getattr(ino);
    if (!r)
      return reply_error(req, r.error());
    fuse_reply_attr(req, &r->attr, r->timeout);
  });
}

void on_readlink(fuse_req_t req, fuse_ino_t ino) noexcept {
  guarded(req, [&] {
    auto r = fs_of(req).readlink(ino);
    if (!r)
      return reply_error(req, r.error());
    fuse_reply_readlink(req, r->c_str());
  });
}

void on_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  guarded(req, [&] {
    auto r = fs_of(req).opendir(ino);
    if (!r)
      return reply_error(req, r.error());
    if (SnapshotFs::cacheable(**r)) {
      fi->cache_readdir = 1;
      fi->keep_cache = 1;
    }
    auto& dirs = context_of(req).dirs;
    fi->fh = dirs.add(std::move(*r));
    if (fuse_reply_open(req, fi) != 0)
      dirs.remove(fi->fh);  // the kernel never saw it
  });
}

void on_readdir(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off,
                fuse_file_info* fi) noexcept {
  guarded(req, [&] {
    std::vector<char> buf(size);
    size_t used = 0;
    auto r =
        fs_of(req).readdir(dir_of(fi), static_cast<std::uint64_t>(off), [&](const DirEntry& e) {
          struct stat st {};
          st.st_ino = e.ino;
          st.st_mode = e.mode;
          size_t need = fuse_add_direntry(req, buf.data() + used, size - used, e.name.c_str(), &st,
                                          static_cast<off_t>(e.next_offset));
          if (need > size - used)
            return false;
          used += need;
          return true;
        });
    if (!r)
      return reply_error(req, r.error());
    fuse_reply_buf(req, buf.data(), used);
  });
}

void on_readdirplus(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off,
                    fuse_file_info* fi) noexcept {
  guarded(req, [&] {
    std::vector<char> buf(size);
    size_t used = 0;
    auto add = [&](const DirEntry& e, const Entry& entry) {
      fuse_entry_param p = to_param(entry);
      size_t need = fuse_add_direntry_plus(req, buf.data() + used, size - used, e.name.c_str(), &p,
                                           static_cast<off_t>(e.next_offset));
      if (need > size - used)
        return false;
      used += need;
      return true;
    };
    auto r = fs_of(req).readdirplus(dir_of(fi), static_cast<std::uint64_t>(off), add);
    if (!r)
      return reply_error(req, r.error());
    fuse_reply_buf(req, buf.data(), used);
  });
}

void on_releasedir(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) noexcept {
  context_of(req).dirs.remove(fi->fh);
  fuse_reply_err(req, 0);
}

void on_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  guarded(req, [&] {
    if ((fi->flags & O_ACCMODE) != O_RDONLY)
      return static_cast<void>(fuse_reply_err(req, EROFS));
    auto r = fs_of(req).open(ino);
    if (!r)
      return reply_error(req, r.error());
    fi->keep_cache = 1;
    fi->noflush = 1;
    auto& files = context_of(req).files;
    fi->fh = files.add(std::move(*r));
    if (fuse_reply_open(req, fi) != 0)
      files.remove(fi->fh);  // the kernel never saw it
  });
}

void on_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) noexcept {
  guarded(req, [&] {
    FuseContext& context = context_of(req);
    FileHandle& file = file_of(fi);
    std::vector<ReadSegment> segments;
    std::vector<FetchedChunk> fetched;
    auto r = context.fs.read(file, static_cast<std::uint64_t>(off), size, segments,
                             context.fill != nullptr ? &fetched : nullptr);
    if (!r)
      return reply_error(req, r.error());  // never a short or padded buffer
    // Straight from the chunks' buffers: the kernel copies them once, into its pages.
    std::vector<iovec> iov(segments.size());
    for (std::size_t i = 0; i < segments.size(); ++i) {
      iov[i].iov_base = const_cast<std::byte*>(segments[i].data);  // only read
      iov[i].iov_len = segments[i].size;
    }
    // Once the reply is sent the kernel may release the file: nothing of `file` after it.
    std::uint64_t file_size = file.chunks->size();
    if (iov.empty())
      fuse_reply_buf(req, nullptr, 0);
    else
      fuse_reply_iov(req, iov.data(), static_cast<int>(iov.size()));
    // Only now: the store waits for the page locks this READ held until its reply.
    if (!fetched.empty())
      context.fill->push(ino, file_size, std::move(fetched));
  });
}

void on_release(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) noexcept {
  context_of(req).files.remove(fi->fh);
  fuse_reply_err(req, 0);
}

void on_lseek(fuse_req_t req, fuse_ino_t /*ino*/, off_t off, int whence,
              fuse_file_info* fi) noexcept {
  guarded(req, [&] {
    if (off < 0)
      return static_cast<void>(fuse_reply_err(req, ENXIO));
    auto r = fs_of(req).lseek(file_of(fi), static_cast<std::uint64_t>(off), whence);
    if (!r)
      return reply_error(req, r.error());
    if (!*r)
      return static_cast<void>(fuse_reply_err(req, ENXIO));
    fuse_reply_lseek(req, static_cast<off_t>(**r));
  });
}

// size == 0 asks for the size; a buffer too small is ERANGE.
void reply_sized(fuse_req_t req, const char* data, size_t length, size_t size) {
  if (size == 0)
    fuse_reply_xattr(req, length);
  else if (size < length)
    fuse_reply_err(req, ERANGE);
  else
    fuse_reply_buf(req, data, length);
}

void on_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) noexcept {
  guarded(req, [&] {
    auto r = fs_of(req).getxattr(ino, name);
    if (!r)
      return reply_error(req, r.error());
    if (!*r)
      return static_cast<void>(fuse_reply_err(req, ENODATA));
    reply_sized(req, reinterpret_cast<const char*>((*r)->data()), (*r)->size(), size);
  });
}

void on_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) noexcept {
  guarded(req, [&] {
    auto r = fs_of(req).listxattr(ino);
    if (!r)
      return reply_error(req, r.error());
    std::string names;
    for (const std::string& n : *r) names.append(n).push_back('\0');
    reply_sized(req, names.data(), names.size(), size);
  });
}

void on_statfs(fuse_req_t req, fuse_ino_t /*ino*/) noexcept {
  guarded(req, [&] {
    struct statvfs st = fs_of(req).statfs();
    fuse_reply_statfs(req, &st);
  });
}

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops ops{};
  ops.init = on_init;
  ops.lookup = on_lookup;
  ops.forget = on_forget;
  ops.forget_multi = on_forget_multi;
  ops.getattr = on_getattr;
  ops.readlink = on_readlink;
  ops.opendir = on_opendir;
  ops.readdir = on_readdir;
  ops.readdirplus = on_readdirplus;
  ops.releasedir = on_releasedir;
  ops.open = on_open;
  ops.read = on_read;
  ops.release = on_release;
  ops.lseek = on_lseek;
  ops.getxattr = on_getxattr;
  ops.listxattr = on_listxattr;
  ops.statfs = on_statfs;
  return ops;
}

}  // namespace

const fuse_lowlevel_ops& fuse_operations() {
  static const fuse_lowlevel_ops ops = make_ops();
  return ops;
}

}  // namespace coffer::fs
