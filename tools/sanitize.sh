#!/usr/bin/env bash
# sanitize.sh - builds PlayØMQ with AddressSanitizer and
# UndefinedBehaviorSanitizer (gcc) into build-asan and runs the test suite
# there: `meson test --setup sanitize` (tests/meson.build says which suites
# and why). Any sanitizer report fails the test it happens in, and the run:
# reports of processes whose exit status no test reads are printed at the
# end, from BUILD/sanitizer-reports/.
#   tools/sanitize.sh [meson test options]
# The build directory is $PZ_ASAN_BUILD, or build-asan in the checkout.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${PZ_ASAN_BUILD:-build-asan}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" -Db_sanitize=address,undefined -Db_lundef=false \
    --buildtype=debugoptimized >/dev/null || exit 1
fi
meson compile -C "$build" >/dev/null || { meson compile -C "$build"; exit 1; }
# Every report also lands here (tests/meson.build): one file per process.
reports="$build/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"
status=0
meson test -C "$build" --setup sanitize --print-errorlogs "$@" || status=$?
if [ -n "$(ls -A "$reports")" ]; then
  for report in "$reports"/*; do
    echo "sanitize: report in $report:"
    sed 's/^/  /' "$report"
  done
  # meson's summary counted the tests; one more line so .ci/run counts this.
  echo "Fail:               $(ls "$reports" | wc -l)"
  status=1
fi
exit "$status"
