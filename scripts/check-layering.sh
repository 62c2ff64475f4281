#!/usr/bin/env bash
# Fails if a layer includes one it must not: repo/ never includes fs/ or tools/; fs/ and
# tools/ never include each other (`coffer mount` execs the separate coffer-mount binary);
# backend/ depends on core/ only; C library headers stay in their one unit (house-style.md §3.1).
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
check() {  # check DIR PATTERN MESSAGE
  local hits
  hits=$(grep -rnE "$2" "$1" --include='*.h' --include='*.cc' || true)
  if [[ -n "$hits" ]]; then
    echo "layering violation: $3"
    echo "$hits"
    status=1
  fi
}
check repo '#include "(fs|tools)/' "repo/ must not include fs/ or tools/"
[[ -d fs ]] && check fs '#include "tools/' "fs/ must not include tools/"
[[ -d tools ]] && check tools '#include "fs/' "tools/ must not include fs/"
if grep -qE 'target_link_libraries\(coffer [^)]*coffer_fs' CMakeLists.txt; then
  echo "layering violation: the coffer executable links coffer_fs (it execs coffer-mount)"
  status=1
fi
check repo/backend '#include "repo/(crypto|compress|pack|index|tree|snapshot|cache|ops)/' \
  "backend/ depends on core/ only"
for f in $(grep -rlE '#include <(lmdb\.h|zstd\.h|openssl/|curl/)' repo --include='*.h' || true); do
  echo "layering violation: C library header included from public header $f"
  status=1
done
lmdb_users=$(grep -rlE '#include <lmdb\.h>' repo tools fs 2>/dev/null | grep -v '^repo/cache/' || true)
if [[ -n "$lmdb_users" ]]; then echo "layering violation: <lmdb.h> outside repo/cache: $lmdb_users"; status=1; fi
exit $status
