// coffer copy: copy snapshots from another repository into -r's, as restic 0.14's `copy`.
//
//   coffer -r DST copy [SNAPSHOT ...] --from-repo SRC [--from-password-file F |
//          --from-password-command C] [--host H] [--tag T] [--path P] [--compression C]
//
// Without SNAPSHOT arguments every source snapshot passing the filters is copied (oldest
// first); "latest" is the newest one passing them. Snapshots already in the destination
// (restic's rule, repo/ops/copy.h) are skipped. The source gets a non-exclusive lock
// (none with --no-lock), the destination a non-exclusive one, as restic takes them; both are
// opened before either is locked, so a destination that cannot be opened leaves the source
// untouched.
//
// Output is restic's ("snapshot X of [paths] at T)", "  copy started, this may take a
// while...", "skipping source snapshot X, was already copied to snapshot Y", "snapshot Y
// saved"), without restic's pack progress bar, plus a final count restic does not print.
// Exit codes: 0; 1 when a snapshot could not be copied (as restic, the run stops there: that
// snapshot is not saved, earlier ones stay); 10 / 12 when a repository is missing or the
// password is wrong; 11 locked; 130 interrupted.
#include <cstdio>

#include <fmt/format.h>

#include "repo/location.h"
#include "repo/ops/copy.h"
#include "repo/ops/forget.h"
#include "tools/commands.h"
#include "tools/format.h"
#include "tools/secondary_repo.h"

namespace coffer::tools {
namespace {

struct CopyCmdOptions {
  SecondaryRepoOptions from;
  repo::SnapshotFilter filter;
  std::vector<std::string> ids;
  std::string compression;
  std::uint64_t pack_size_mib = 0;
};

void warn_line(const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); }

repo::Result<repo::WriterOptions> writer_options(const CopyCmdOptions& o) {
  repo::WriterOptions w;
  if (o.compression == "max")
    w.compression = repo::Compression::kMax;
  else if (o.compression == "off")
    w.compression = repo::Compression::kOff;
  else if (o.compression != "auto" && !o.compression.empty())
    return repo::fail(repo::Errc::kInvalidArgument, "--compression must be auto, max or off");
  if (o.pack_size_mib != 0)
    w.pack_size = o.pack_size_mib << 20;
  return w;
}

// Both repositories opened (source first, as restic), then locked, then their indexes loaded.
struct Repos {
  OpenRepo src, dst;
};

repo::Result<Repos> open_both(const GlobalOptions& g, const CopyCmdOptions& o) {
  Repos r;
  COFFER_ASSIGN_OR_RETURN(r.src.repo, open_secondary_repository(g, o.from));
  auto dst = open_repository(g, false, false);
  if (!dst)
    return repo::fail(
        dst.error().with_context("destination repository " + repo::redact_location(g.repo)));
  r.dst = std::move(*dst);
  if (!g.no_lock) {
    COFFER_ASSIGN_OR_RETURN(r.src.lock, repo::RepoLock::acquire(*r.src, false));
  }
  COFFER_ASSIGN_OR_RETURN(r.dst.lock, repo::RepoLock::acquire(*r.dst, false));
  COFFER_TRY_CTX(r.src->load_index(), "loading the source index");
  COFFER_TRY_CTX(r.dst->load_index(), "loading the destination index");
  return r;
}

repo::Result<std::vector<repo::SnapshotEntry>> source_snapshots(const CopyCmdOptions& o,
                                                                const repo::Repository& src) {
  if (!o.ids.empty())
    return repo::resolve_snapshot_args(src, o.ids, o.filter, warn_line);
  COFFER_ASSIGN_OR_RETURN(auto all, src.list_snapshots());
  return repo::restic_filter(all, o.filter);
}

std::string paths_list(const std::vector<std::string>& paths) {
  std::string out = "[";
  for (std::size_t i = 0; i < paths.size(); ++i) out += (i == 0 ? "" : " ") + printable(paths[i]);
  return out + "]";
}

repo::CopyEvents printing_events() {
  repo::CopyEvents ev;
  ev.on_snapshot = [](const repo::SnapshotEntry& e) {
    out_line("");
    out_line(fmt::format("snapshot {} of {} at {})", e.id.short_hex(), paths_list(e.snapshot.paths),
                         go_time_string(e.snapshot.time)));
  };
  ev.on_skipped = [](const repo::SnapshotEntry& e, const repo::Id& copy) {
    out_line(fmt::format("skipping source snapshot {}, was already copied to snapshot {}",
                         e.id.short_hex(), copy.short_hex()));
  };
  ev.on_copy_started = [](const repo::SnapshotEntry&) {
    out_line("  copy started, this may take a while...");
    std::fflush(stdout);
  };
  ev.on_saved = [](const repo::SnapshotEntry&, const repo::Id& saved) {
    out_line(fmt::format("snapshot {} saved", saved.short_hex()));
    std::fflush(stdout);
  };
  return ev;
}

repo::Result<int> run(const GlobalOptions& g, const CopyCmdOptions& o) {
  repo::CopyOptions options;
  COFFER_ASSIGN_OR_RETURN(options.writer, writer_options(o));
  options.cancel = &interrupted();
  COFFER_TRY(secondary_location(o.from));  // before any password is asked for
  COFFER_ASSIGN_OR_RETURN(Repos r, open_both(g, o));
  COFFER_ASSIGN_OR_RETURN(auto chosen, source_snapshots(o, *r.src));
  COFFER_ASSIGN_OR_RETURN(auto dst_all, r.dst->list_snapshots());
  auto dst_candidates = repo::restic_filter(dst_all, o.filter);  // restic filters both sides
  auto events = g.quiet ? repo::CopyEvents{} : printing_events();
  COFFER_ASSIGN_OR_RETURN(auto result, repo::copy_snapshots(*r.src, *r.dst.repo, chosen,
                                                            dst_candidates, options, events));
  if (!g.quiet) {
    out_line("");
    out_line(fmt::format("{} snapshots copied, {} already copied; {} new blobs ({}) stored",
                         result.copied, result.skipped,
                         result.written.data_blobs + result.written.tree_blobs,
                         format_bytes(result.written.data_added)));
  }
  return kExitOk;
}

}  // namespace

Command add_copy_command(CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<CopyCmdOptions>();
  CLI::App* sub = app.add_subcommand("copy", "Copy snapshots from another repository");
  add_secondary_repo_options(*sub, o->from, "to copy snapshots from");
  sub->add_option("-H,--host", o->filter.hosts, "only snapshots of this host (repeatable)");
  sub->add_option("--tag", o->filter.tags,
                  "only snapshots with these tags: a,b means both (repeatable: any)");
  sub->add_option("--path", o->filter.paths,
                  "only snapshots that include this path (repeatable: all)");
  sub->add_option("--compression", o->compression, "auto, max or off (destination)")
      ->envname("RESTIC_COMPRESSION");
  sub->add_option("--pack-size", o->pack_size_mib, "destination pack size in MiB (4-128)")
      ->envname("RESTIC_PACK_SIZE");
  sub->add_option("SNAPSHOT", o->ids, "snapshots to copy (id, prefix or latest; default all)");
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
