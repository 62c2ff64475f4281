// Parsing times the way restic 0.14's `find --oldest/--newest` does: Go's
// time.ParseInLocation(layout, text, time.Local) over restic's list of layouts.
//
// Thread contract: pure functions (they read the process's TZ).
#pragma once

#include <string>
#include <string_view>

#include "repo/repository.h"

namespace coffer::tools {

// Go's time.ParseInLocation for the layout elements restic's layouts use ("2006", "01", "02",
// "2", "15", "04", "05" with an optional fraction, "-0700", "MST", "Mon", "Jan"), in the local
// zone. Only the instant is meaningful in the result. Errors: kInvalidArgument.
repo::Result<repo::GoTime> go_parse_in_local(std::string_view layout, std::string_view text);

// The first of restic find's layouts that parses `text` ("2006-01-02", "2006-01-02 15:04",
// ..., "02.01.2006 15:04:05 MST", "Mon Jan 2 15:04:05 -0700 MST 2006").
// Errors: kInvalidArgument `unable to parse time: "TEXT"`.
repo::Result<repo::GoTime> parse_find_time(const std::string& text);

}  // namespace coffer::tools
