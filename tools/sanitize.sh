#!/usr/bin/env bash
# sanitize.sh - builds PlayØMQ with AddressSanitizer and
# UndefinedBehaviorSanitizer (gcc) into build-asan and runs the test suite
# there: `meson test --setup sanitize` (tests/meson.build says which suites
# and why). Any sanitizer report fails the test it happens in.
#   tools/sanitize.sh [meson test options]
# The build directory is $PZ_ASAN_BUILD, or build-asan in the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${PZ_ASAN_BUILD:-build-asan}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" -Db_sanitize=address,undefined -Db_lundef=false \
    --buildtype=debugoptimized >/dev/null
fi
meson compile -C "$build" >/dev/null || meson compile -C "$build"
meson test -C "$build" --setup sanitize --print-errorlogs "$@"
