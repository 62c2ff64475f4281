#include "repo/ops/diff.h"

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "repo/core/parallel.h"
#include "repo/ops/walk.h"

namespace coffer::repo {
namespace {

struct BlobHandleHash {
  std::size_t operator()(const BlobHandle& h) const noexcept {
    return IdHash{}(h.id) ^ static_cast<std::size_t>(h.type);
  }
};
using BlobSet = std::unordered_set<BlobHandle, BlobHandleHash>;

// kPair compares id1 with id2; kRemoved lists id1, kAdded lists id2, with every node below.
enum class JobKind { kPair, kRemoved, kAdded };

struct Entry {
  std::string path;
  std::string modifier;  // "" = no line, only the child
  int child = -1;        // index into Job::children
};

// One tree pair (or one added/removed tree), compared on a worker; its children are the
// next level's jobs. The calling thread reads the results afterwards, depth first.
struct Job {
  JobKind kind = JobKind::kPair;
  std::string prefix;  // path of the directory, no trailing '/' except for the root
  Id id1, id2;
  std::vector<Entry> entries;
  std::vector<std::unique_ptr<Job>> children;
  std::vector<BlobHandle> before, after;  // blobs met in the first and second tree
  DiffCounts added, removed;              // file/dir/other counts only
  std::uint64_t changed_files = 0;
  std::vector<Id> common;  // subtrees both sides share
  std::optional<Error> error;
};

bool is_dir(const Node& n) { return n.type == NodeType::kDir; }

void add_node(DiffCounts& c, const Node& n) {
  if (n.type == NodeType::kFile)
    ++c.files;
  else if (is_dir(n))
    ++c.dirs;
  else
    ++c.others;
}

// restic's addBlobs: a file's content, a directory's subtree.
void add_blobs(std::vector<BlobHandle>& out, const Node* n) {
  if (n == nullptr)
    return;
  if (n->type == NodeType::kFile) {
    for (const Id& id : n->content) out.push_back({id, BlobType::kData});
  } else if (is_dir(*n) && n->subtree) {
    out.push_back({*n->subtree, BlobType::kTree});
  }
}

bool same_instant(const GoTime& a, const GoTime& b) {
  return a.unix_seconds == b.unix_seconds && a.nanos == b.nanos;
}

bool same_xattrs(const Node& a, const Node& b) {
  if (a.xattrs.size() != b.xattrs.size())
    return false;
  std::map<std::string, std::pair<const Bytes*, bool>> seen;
  for (const auto& x : a.xattrs) seen[x.name] = {&x.value, false};
  for (const auto& x : b.xattrs) {
    auto it = seen.find(x.name);
    if (it == seen.end() || *it->second.first != x.value)
      return false;
    it->second.second = true;
  }
  return std::all_of(seen.begin(), seen.end(), [](const auto& kv) { return kv.second.second; });
}

Job* add_child(Job& parent, JobKind kind, std::string prefix, const Id& id1, const Id& id2) {
  auto child = std::make_unique<Job>();
  child->kind = kind;
  child->prefix = std::move(prefix);
  child->id1 = id1;
  child->id2 = id2;
  parent.children.push_back(std::move(child));
  return parent.children.back().get();
}

std::string strip_slash(std::string path) {
  if (path.size() > 1 && path.back() == '/')
    path.pop_back();
  return path;
}

// A path only one side has: its line, and its subtree listed as a child job.
void one_sided(Job& job, const Node& n, JobKind kind) {
  bool removed = kind == JobKind::kRemoved;
  std::string path = join_path(job.prefix, n.name) + (is_dir(n) ? "/" : "");
  add_node(removed ? job.removed : job.added, n);
  Entry e{path, removed ? "-" : "+", -1};
  if (is_dir(n) && n.subtree) {
    e.child = static_cast<int>(job.children.size());
    add_child(job, kind, strip_slash(path), removed ? *n.subtree : Id(),
              removed ? Id() : *n.subtree);
  }
  job.entries.push_back(std::move(e));
}

// A path both sides have (restic's t1 && t2 case).
void both_sides(Job& job, const Node& a, const Node& b, bool metadata) {
  std::string path = join_path(job.prefix, a.name);
  std::string mod;
  if (a.type != b.type)
    mod += "T";
  if (is_dir(b))
    path += "/";
  if (a.type == NodeType::kFile && b.type == NodeType::kFile && a.content != b.content) {
    mod += "M";
    ++job.changed_files;
  } else if (metadata && !restic_node_equals(a, b)) {
    mod += "U";
  }
  Entry e{path, mod, -1};
  if (is_dir(a) && is_dir(b) && a.subtree && b.subtree) {
    if (*a.subtree == *b.subtree) {
      job.common.push_back(*a.subtree);
    } else {
      e.child = static_cast<int>(job.children.size());
      add_child(job, JobKind::kPair, strip_slash(path), *a.subtree, *b.subtree);
    }
  }
  if (!e.modifier.empty() || e.child >= 0)
    job.entries.push_back(std::move(e));
}

// The nodes of a tree by name in byte order; for a repeated name the last one (restic's map).
std::vector<const Node*> by_name(const Tree& t) {
  std::vector<const Node*> out;
  out.reserve(t.nodes.size());
  for (const Node& n : t.nodes) out.push_back(&n);
  std::stable_sort(out.begin(), out.end(),
                   [](const Node* x, const Node* y) { return x->name < y->name; });
  std::vector<const Node*> unique;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (i + 1 < out.size() && out[i + 1]->name == out[i]->name)
      continue;
    unique.push_back(out[i]);
  }
  return unique;
}

Result<void> run_pair(const Repository& repo, Job& job, bool metadata) {
  COFFER_ASSIGN_OR_RETURN(Tree t1, repo.load_tree(job.id1));
  COFFER_ASSIGN_OR_RETURN(Tree t2, repo.load_tree(job.id2));
  std::vector<const Node*> n1 = by_name(t1);
  std::vector<const Node*> n2 = by_name(t2);
  std::size_t i = 0;
  std::size_t k = 0;
  while (i < n1.size() || k < n2.size()) {
    const Node* a = i < n1.size() ? n1[i] : nullptr;
    const Node* b = k < n2.size() ? n2[k] : nullptr;
    if (a && b && a->name != b->name) {
      if (a->name < b->name)
        b = nullptr;
      else
        a = nullptr;
    }
    add_blobs(job.before, a);
    add_blobs(job.after, b);
    if (a && b)
      both_sides(job, *a, *b, metadata);
    else if (a)
      one_sided(job, *a, JobKind::kRemoved);
    else
      one_sided(job, *b, JobKind::kAdded);
    i += a ? 1 : 0;
    k += b ? 1 : 0;
  }
  return {};
}

// restic's printDir: every node of the tree, in stored order.
Result<void> run_list(const Repository& repo, Job& job) {
  bool removed = job.kind == JobKind::kRemoved;
  COFFER_ASSIGN_OR_RETURN(Tree t, repo.load_tree(removed ? job.id1 : job.id2));
  for (const Node& n : t.nodes) {
    add_blobs(removed ? job.before : job.after, &n);
    one_sided(job, n, job.kind);
  }
  return {};
}

bool cancelled(const DiffOptions& o) { return o.cancel != nullptr && o.cancel->load(); }

// Runs the jobs level by level (a level's jobs in parallel) until no job has children.
Result<void> run_levels(const Repository& repo, Job& root, const DiffOptions& o, unsigned workers) {
  std::vector<Job*> level{&root};
  while (!level.empty()) {
    COFFER_TRY(parallel_for(level.size(), workers, [&](std::size_t i) -> Result<void> {
      if (cancelled(o))
        return fail(Errc::kCancelled, "diff interrupted");
      Job& job = *level[i];
      auto done =
          job.kind == JobKind::kPair ? run_pair(repo, job, o.metadata) : run_list(repo, job);
      if (!done)
        job.error = done.error();
      return {};
    }));
    std::vector<Job*> next;
    for (Job* job : level)
      for (auto& c : job->children) next.push_back(c.get());
    level = std::move(next);
  }
  if (root.error)
    return fail(*root.error);
  return {};
}

void add_counts(DiffCounts& to, const DiffCounts& from) {
  to.files += from.files;
  to.dirs += from.dirs;
  to.others += from.others;
}

struct Totals {
  DiffStats stats;
  BlobSet before, after;
  std::vector<Id> common;
};

// Reports the job's changes depth first, as restic prints them, and sums its results.
void report(Job& job, const DiffOptions& o, Totals& t) {
  t.before.insert(job.before.begin(), job.before.end());
  t.after.insert(job.after.begin(), job.after.end());
  t.common.insert(t.common.end(), job.common.begin(), job.common.end());
  add_counts(t.stats.added, job.added);
  add_counts(t.stats.removed, job.removed);
  t.stats.changed_files += job.changed_files;
  for (Entry& e : job.entries) {
    if (!e.modifier.empty() && o.on_change)
      o.on_change(DiffChange{std::move(e.path), std::move(e.modifier)});
    if (e.child < 0)
      continue;
    Job& child = *job.children[static_cast<std::size_t>(e.child)];
    if (child.error) {
      if (o.on_warning)
        o.on_warning("error: " + child.error->message);
    } else {
      report(child, o, t);
    }
    job.children[static_cast<std::size_t>(e.child)].reset();
  }
}

// Blobs of `wanted` referenced below the trees `roots` (restic's BlobsCommon, read only as far
// as needed: it stops once every wanted blob is found).
class SharedScan {
 public:
  SharedScan(const Repository& repo, const BlobSet& wanted, const DiffOptions& o)
      : repo_(repo), wanted_(wanted), options_(o) {}

  Result<BlobSet> run(const std::vector<Id>& roots, unsigned workers) {
    std::vector<Id> level = unvisited(roots);
    while (!level.empty() && !all_found()) {
      next_.clear();
      COFFER_TRY(parallel_for(level.size(), workers, [&](std::size_t i) -> Result<void> {
        if (cancelled(options_))
          return fail(Errc::kCancelled, "diff interrupted");
        if (!all_found())
          scan(level[i]);
        return {};
      }));
      level = unvisited(next_);
    }
    return std::move(found_);
  }

  std::vector<std::string> take_warnings() { return std::move(warnings_); }

 private:
  bool all_found() {
    std::scoped_lock lock(mutex_);
    return found_.size() == wanted_.size();
  }

  std::vector<Id> unvisited(const std::vector<Id>& ids) {
    std::vector<Id> out;
    for (const Id& id : ids)
      if (visited_.insert(id).second)
        out.push_back(id);
    return out;
  }

  void scan(const Id& id) {
    auto tree = repo_.load_tree(id);
    std::vector<BlobHandle> blobs;
    std::vector<Id> subtrees;
    if (tree) {
      for (const Node& n : tree->nodes) {
        add_blobs(blobs, &n);
        if (is_dir(n) && n.subtree)
          subtrees.push_back(*n.subtree);
      }
    }
    std::scoped_lock lock(mutex_);
    if (!tree)
      warnings_.push_back("error: " + tree.error().message);
    for (const BlobHandle& h : blobs)
      if (wanted_.count(h) != 0)
        found_.insert(h);
    next_.insert(next_.end(), subtrees.begin(), subtrees.end());
  }

  const Repository& repo_;
  const BlobSet& wanted_;
  const DiffOptions& options_;
  std::unordered_set<Id, IdHash> visited_;  // calling thread only
  std::mutex mutex_;                        // guards found_, next_, warnings_
  BlobSet found_;
  std::vector<Id> next_;
  std::vector<std::string> warnings_;
};

// restic's updateBlobs: counts `blobs` and adds up their plaintext sizes.
Result<void> count_blobs(const Repository& repo, const BlobSet& blobs, DiffCounts& c,
                         const DiffOptions& o) {
  for (const BlobHandle& h : blobs) {
    ++(h.type == BlobType::kData ? c.data_blobs : c.tree_blobs);
    COFFER_ASSIGN_OR_RETURN(auto where, repo.lookup(h));
    if (!where) {
      if (o.on_warning)
        o.on_warning(fmt::format("unable to find blob size for <{}/{}>", blob_type_name(h.type),
                                 h.id.short_hex()));
      continue;
    }
    c.bytes += where->plain_size();
  }
  return {};
}

BlobSet minus(const BlobSet& a, const BlobSet& b) {
  BlobSet out;
  for (const BlobHandle& h : a)
    if (b.count(h) == 0)
      out.insert(h);
  return out;
}

unsigned default_workers(const Repository& repo) {
  unsigned connections = repo.backend().properties().max_connections;
  return std::max(2U, std::max(connections, std::thread::hardware_concurrency()));
}

// Removes from `removed` and `added` the blobs that shared subtrees reference.
Result<void> drop_shared(const Repository& repo, Totals& t, BlobSet& removed, BlobSet& added,
                         const DiffOptions& o, unsigned workers) {
  if ((removed.empty() && added.empty()) || t.common.empty())
    return {};
  BlobSet wanted = removed;
  wanted.insert(added.begin(), added.end());
  SharedScan scan(repo, wanted, o);
  COFFER_ASSIGN_OR_RETURN(BlobSet shared, scan.run(t.common, workers));
  for (const BlobHandle& h : shared) {
    removed.erase(h);
    added.erase(h);
  }
  if (o.on_warning)
    for (const auto& w : scan.take_warnings()) o.on_warning(w);
  return {};
}

}  // namespace

// The node's "error" field is one of its unknown fields here.
bool restic_node_equals(const Node& a, const Node& b) {
  return a.name == b.name && a.type == b.type && a.mode == b.mode &&
         same_instant(a.mtime, b.mtime) && same_instant(a.atime, b.atime) &&
         same_instant(a.ctime, b.ctime) && a.uid == b.uid && a.gid == b.gid && a.user == b.user &&
         a.group == b.group && a.inode == b.inode && a.device_id == b.device_id &&
         a.size == b.size && a.links == b.links && a.linktarget == b.linktarget &&
         a.device == b.device && a.content == b.content && same_xattrs(a, b) &&
         a.subtree == b.subtree && a.unknown_fields_json == b.unknown_fields_json;
}

Result<DiffStats> diff_trees(const Repository& repo, const Id& from, const Id& to,
                             const DiffOptions& options) {
  unsigned workers = options.workers != 0 ? options.workers : default_workers(repo);
  Job root;
  root.prefix = "/";
  root.id1 = from;
  root.id2 = to;
  COFFER_TRY(run_levels(repo, root, options, workers));
  if (options.before_output)
    COFFER_TRY(options.before_output());
  Totals t;
  t.before.insert({from, BlobType::kTree});
  t.after.insert({to, BlobType::kTree});
  report(root, options, t);
  BlobSet removed = minus(t.before, t.after);
  BlobSet added = minus(t.after, t.before);
  COFFER_TRY(drop_shared(repo, t, removed, added, options, workers));
  COFFER_TRY(count_blobs(repo, removed, t.stats.removed, options));
  COFFER_TRY(count_blobs(repo, added, t.stats.added, options));
  return t.stats;
}

}  // namespace coffer::repo
