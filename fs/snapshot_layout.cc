#include "fs/snapshot_layout.h"

#include <array>

namespace coffer::fs {
namespace {

constexpr std::array<const char*, 4> kTemplates = {"ids/%i", "snapshots/%T", "hosts/%h/%T",
                                                   "tags/%t/%T"};

std::string tag_file_name(const std::string& tag) {
  if (tag.empty() || tag == ".")
    return "_";
  if (tag == "..")
    return "__";
  std::string out = tag;
  for (char& c : out) {
    if (c == '/')
      c = '_';
  }
  return out;
}

// Splits "/a/b" into ("/a", "b"); "/a" into ("", "a").
std::pair<std::string, std::string> split_last(const std::string& path) {
  auto slash = path.rfind('/');
  return {path.substr(0, slash), path.substr(slash + 1)};
}

void append_all(std::vector<std::string>& out, const std::string& text) {
  for (auto& o : out) o += text;
}

// Replaces every path by one copy per (sanitized) tag.
std::vector<std::string> fan_out_tags(const std::vector<std::string>& out,
                                      const std::vector<std::string>& tags) {
  std::vector<std::string> next;
  for (const auto& tag : tags) {
    for (const auto& o : out) next.push_back(o + tag_file_name(tag));
  }
  return next;
}

}  // namespace

std::string snapshot_time_name(const repo::GoTime& time) {
  return repo::format_go_time(repo::GoTime{time.unix_seconds, 0, time.offset_seconds});
}

std::string clean_layout_path(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string::npos)
      end = path.size();
    std::string part = path.substr(start, end - start);
    if (part == "..") {
      if (!parts.empty())
        parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(std::move(part));
    }
    start = end + 1;
  }
  std::string out;
  for (const auto& p : parts) out += "/" + p;
  return out;
}

std::vector<std::string> expand_template(const std::string& templ, const repo::SnapshotEntry& snap,
                                         std::string& time_suffix) {
  const repo::Snapshot& s = snap.snapshot;
  std::string time = snapshot_time_name(s.time);
  std::vector<std::string> out(1);
  bool in_verb = false;
  bool write_time = false;
  time_suffix.clear();
  for (char c : templ) {
    if (write_time) {
      append_all(out, time);
      write_time = false;
    }
    if (!in_verb) {
      if (c == '%')
        in_verb = true;
      else
        append_all(out, std::string(1, c));
      continue;
    }
    in_verb = false;
    switch (c) {
      case 'T':
        write_time = true;
        break;
      case 't':
        if (s.tags.empty())
          return {};
        if (s.tags.size() == 1)
          append_all(out, s.tags.front());
        else
          out = fan_out_tags(out, s.tags);
        break;
      case 'i':
        append_all(out, snap.id.short_hex());
        break;
      case 'I':
        append_all(out, snap.id.hex());
        break;
      case 'u':
        append_all(out, s.username);
        break;
      case 'h':
        append_all(out, s.hostname);
        break;
      default:
        append_all(out, std::string(1, c));
    }
  }
  if (write_time)
    time_suffix = time;
  return out;
}

SnapshotLayout SnapshotLayout::build(const std::vector<SnapshotPtr>& snapshots) {
  SnapshotLayout layout;
  layout.snapshots_ = snapshots;
  layout.add_dir("");
  for (const char* templ : kTemplates) {
    std::string t = templ;
    layout.add_dir(clean_layout_path(t.substr(0, t.find('/'))));
  }
  std::map<std::string, repo::GoTime> latest;
  for (const auto& snap : snapshots) {
    for (const char* templ : kTemplates) layout.add_from_template(templ, snap, latest);
  }
  return layout;
}

const MetaDir* SnapshotLayout::dir(const std::string& path) const {
  auto it = dirs_.find(path);
  return it == dirs_.end() ? nullptr : &it->second;
}

bool SnapshotLayout::taken(const std::string& path) const {
  if (dirs_.count(path) != 0)
    return true;
  auto [parent, name] = split_last(path);
  const MetaDir* d = dir(parent);
  return d != nullptr && d->entries.count(name) != 0;
}

void SnapshotLayout::add_dir(const std::string& path) {
  if (dirs_.count(path) != 0)
    return;
  dirs_.emplace(path, MetaDir{});
  if (path.empty())
    return;
  auto [parent, name] = split_last(path);
  add_dir(parent);
  MetaDir& p = dirs_[parent];
  if (p.entries.emplace(name, MetaEntry{}).second)
    ++p.subdirs;
}

bool SnapshotLayout::add_leaf(const std::string& path, const MetaEntry& entry,
                              const repo::GoTime& time) {
  if (path.empty() || dirs_.count(path) != 0)
    return false;
  auto [parent, name] = split_last(path);
  for (std::string up = parent; !up.empty(); up = split_last(up).first) {
    auto [pp, pn] = split_last(up);
    const MetaDir* d = dir(pp);
    if (d != nullptr && d->entries.count(pn) != 0 && dirs_.count(up) == 0)
      return false;  // an ancestor is a snapshot or a symlink
  }
  add_dir(parent);
  auto& slot = dirs_[parent].entries[name];
  if (slot.kind == MetaEntry::Kind::kSnapshot && slot.snapshot)
    return false;
  slot = entry;
  for (std::string up = parent;; up = split_last(up).first) {
    MetaDir& d = dirs_[up];
    if (d.newest < time)
      d.newest = time;
    if (up.empty())
      break;
  }
  return true;
}

void SnapshotLayout::add_from_template(const std::string& templ, const SnapshotPtr& snap,
                                       std::map<std::string, repo::GoTime>& latest) {
  std::string suffix;
  const repo::GoTime& time = snap->snapshot.time;
  for (const std::string& base : expand_template(templ, *snap, suffix)) {
    std::string name = suffix;
    std::string full = clean_layout_path(base + name);
    for (int i = 1; taken(full); ++i) {
      name = suffix + "-" + std::to_string(i);
      full = clean_layout_path(base + name);
    }
    if (!add_leaf(full, MetaEntry{MetaEntry::Kind::kSnapshot, snap, ""}, time) || suffix.empty())
      continue;
    std::string dir_path = clean_layout_path(base);
    auto it = latest.find(dir_path);
    if (it != latest.end() && time < it->second)
      continue;
    std::string link = dir_path + "/latest";
    const MetaDir* d = dir(dir_path);
    auto existing = d->entries.find("latest");
    if (existing != d->entries.end() && existing->second.kind != MetaEntry::Kind::kSymlink)
      continue;
    dirs_[dir_path].entries["latest"] = MetaEntry{MetaEntry::Kind::kSymlink, snap, name};
    latest[dir_path] = time;
  }
}

}  // namespace coffer::fs
