// Text and JSON renderings shared by the commands (restic-compatible where restic has one).
//
// Thread contract: pure functions.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "repo/repository.h"

namespace coffer::tools {

// "drwxr-xr-x" style permission string of a node, as restic's ls prints it.
std::string permissions_string(const repo::Node& node);
// Go's os.FileMode.String() of Go mode bits ("drwxr-xr-x", "Lrwxrwxrwx", "-rw-r--r--").
std::string go_mode_string(std::uint32_t go_mode);
// Local time "2006-01-02 15:04:05" of a GoTime.
std::string local_time(const repo::GoTime& t);
// Go's time.Time.String() form in the stored offset: "2026-11-26 09:02:03.25649642 +0000 UTC".
std::string go_time_string(const repo::GoTime& t);
// A snapshot as restic's --json prints it (stored fields + id + short_id).
nlohmann::ordered_json snapshot_json(const repo::SnapshotEntry& e);
// A node as restic's `ls --json` prints it.
nlohmann::ordered_json node_json(const std::string& path, const repo::Node& node);
// restic's byte counts: "12 B", "1.500 KiB", "3.250 MiB", "1.000 GiB", "2.000 TiB".
std::string format_bytes(std::uint64_t n);

// Parses "YYYY-MM-DD HH:MM:SS" as local time. Errors: kInvalidArgument.
repo::Result<repo::GoTime> parse_local_time(const std::string& text);

// Lossy UTF-8 view of raw bytes for human output (invalid bytes become U+FFFD).
std::string printable(std::string_view raw);

}  // namespace coffer::tools
