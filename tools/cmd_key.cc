// coffer key: manages the key files (passwords) of a repository, as `restic key` does.
//
//   coffer key list
//   coffer key add [--new-password-file F] [--user U] [--host H]
//   coffer key remove ID
//   coffer key passwd [--new-password-file F]
//
// `list` holds a non-exclusive lock (none with --no-lock); add, remove and passwd always hold
// an exclusive one.
#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "repo/init.h"
#include "repo/lock.h"
#include "repo/tree/node.h"
#include "tools/commands.h"
#include "tools/format.h"

namespace coffer::tools {
namespace {

struct KeyCmdOptions {
  std::string action;
  std::vector<std::string> args;
  std::string new_password_file, user, host;
};

struct KeyRow {
  bool current;
  std::string id, user, host, created;
};

// Display columns of UTF-8 text (code points; wide glyphs count as one).
std::size_t text_width(std::string_view s) {
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

std::string pad(const std::string& s, std::size_t width) {
  std::size_t w = text_width(s);
  return w >= width ? s : s + std::string(width - w, ' ');
}

std::vector<KeyRow> key_rows(const std::vector<repo::KeyInfo>& keys) {
  std::vector<KeyRow> rows;
  for (const auto& k : keys) {
    auto t = repo::parse_go_time(k.created);
    rows.push_back(KeyRow{k.current, k.id.short_hex(), printable(k.username), printable(k.hostname),
                          t ? local_time(*t) : printable(k.created)});
  }
  return rows;
}

// restic's table: columns padded and joined by two spaces, a rule above and below the rows.
void print_table(const std::vector<KeyRow>& rows) {
  std::vector<std::array<std::string, 4>> lines = {{" ID", "User", "Host", "Created"}};
  for (const auto& r : rows)
    lines.push_back({(r.current ? "*" : " ") + r.id, r.user, r.host, r.created});
  std::array<std::size_t, 4> widths{};
  for (const auto& l : lines) {
    for (std::size_t i = 0; i < l.size(); ++i) widths[i] = std::max(widths[i], text_width(l[i]));
  }
  std::size_t total = widths[0] + widths[1] + widths[2] + widths[3] + 3 * 2;
  for (std::size_t n = 0; n < lines.size(); ++n) {
    const auto& l = lines[n];
    std::string line = pad(l[0], widths[0]) + "  " + pad(l[1], widths[1]) + "  " +
                       pad(l[2], widths[2]) + "  " + l[3];
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out_line(line);
    if (n == 0)
      out_line(std::string(total, '-'));
  }
  out_line(std::string(total, '-'));
}

// restic's `key list --json`: Go-encoded, one line.
void print_json(const std::vector<KeyRow>& rows) {
  std::string out = "[";
  for (const auto& r : rows) {
    if (out.size() > 1)
      out += ',';
    out += fmt::format(R"({{"current":{},"id":{},"userName":{},"hostName":{},"created":{}}})",
                       r.current ? "true" : "false", repo::go_json_string(r.id),
                       repo::go_json_string(r.user), repo::go_json_string(r.host),
                       repo::go_json_string(r.created));
  }
  out_line(out + "]");
}

repo::Result<int> list(const GlobalOptions& g) {
  COFFER_ASSIGN_OR_RETURN(auto repository, open_repository(g, false));
  COFFER_ASSIGN_OR_RETURN(auto keys, repo::list_keys(*repository));
  auto rows = key_rows(keys);
  if (g.json)
    print_json(rows);
  else
    print_table(rows);
  return kExitOk;
}

repo::Result<std::string> new_password(const KeyCmdOptions& o) {
  return read_new_password(PasswordInput{o.new_password_file, "", {}, "enter new password: "});
}

void verbose_line(const GlobalOptions& g, const std::string& line) {
  if (!g.quiet && !g.json)
    out_line(line);
}

// add, remove or passwd, under an exclusive lock.
repo::Result<int> change(const GlobalOptions& g, const KeyCmdOptions& o) {
  COFFER_ASSIGN_OR_RETURN(auto repository, open_repository(g, false, false));
  COFFER_ASSIGN_OR_RETURN(repository.lock, repo::RepoLock::acquire(*repository, true));
  if (o.action == "remove") {
    COFFER_ASSIGN_OR_RETURN(repo::Id id, repository->resolve(repo::FileKind::kKey, o.args[0]));
    COFFER_TRY(repo::remove_key(*repository, id));
    verbose_line(g, "removed key " + id.hex());
    return kExitOk;
  }
  COFFER_ASSIGN_OR_RETURN(std::string password, new_password(o));
  repo::KeyOptions options{o.user, o.host, {}};
  auto id = o.action == "add" ? repo::add_key(*repository, password, options)
                              : repo::change_password(*repository, password, options);
  std::fill(password.begin(), password.end(), '\0');
  if (!id)
    return repo::fail(id.error().with_context("creating new key failed"));
  verbose_line(g, "saved new key with ID " + id->hex());
  return kExitOk;
}

repo::Result<int> run(const GlobalOptions& g, const KeyCmdOptions& o) {
  if (o.args.size() != (o.action == "remove" ? 1U : 0U))
    return repo::fail(repo::Errc::kInvalidArgument, "wrong number of arguments");
  if (o.action == "list")
    return list(g);
  return change(g, o);
}

}  // namespace

Command add_key_command(CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<KeyCmdOptions>();
  CLI::App* sub = app.add_subcommand("key", "Manage keys (passwords)");
  sub->add_option("ACTION", o->action, "list, add, remove or passwd")
      ->required()
      ->check(CLI::IsMember({"list", "add", "remove", "passwd"}));
  sub->add_option("ID", o->args, "key to remove (id or unique prefix)");
  sub->add_option("--new-password-file", o->new_password_file,
                  "read the new password from the first line of this file");
  sub->add_option("--user", o->user, "username for the new key (default: the current user)");
  sub->add_option("--host", o->host, "hostname for the new key (default: this host)");
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
