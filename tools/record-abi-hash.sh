#!/bin/sh
# Records the SDK headers' hash (computed by the build, cmake/HearthAbi.cmake) in
# core/include/hearth/abi_version.h. Run it after deciding whether HEARTH_ABI_VERSION must change:
#   make build && tools/record-abi-hash.sh [build-dir]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
hash=$(sed -n 's/^#define HEARTH_ABI_HEADERS_SHA256_BUILT "\(.*\)"$/\1/p' "$build/generated/hearth_abi_hash.h")
[ -n "$hash" ] || { echo "no hash in $build/generated/hearth_abi_hash.h: build first" >&2; exit 1; }
sed -i "s/^#define HEARTH_ABI_HEADERS_SHA256 \".*\"$/#define HEARTH_ABI_HEADERS_SHA256 \"$hash\"/" \
  "$here/core/include/hearth/abi_version.h"
echo "recorded $hash"
