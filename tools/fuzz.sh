#!/usr/bin/env bash
# fuzz.sh - builds the libFuzzer targets of fuzz/ with clang, AddressSanitizer
# and UndefinedBehaviorSanitizer, and runs each on its corpus.
#   tools/fuzz.sh [SECONDS] [TARGET...]   SECONDS per target (default 600);
#                                          all targets unless some are named
# Prints one line per target: runs, execs/s, coverage, crashes. Exits 1 if
# any target crashed (or a check of its own failed), 2 if clang is missing.
# The seed corpus fuzz/corpus/TARGET and the inputs of past findings,
# fuzz/regressions/TARGET, are copied to BUILD/corpus/TARGET, which grows
# run after run; a crash leaves its input in BUILD/artifacts/TARGET/
# (replay: BUILD/fuzz/fuzz_TARGET FILE). BUILD is $PZ_FUZZ_BUILD, or
# build-fuzz in the checkout. docs/FUZZING.md has the targets and findings.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
build=${PZ_FUZZ_BUILD:-build-fuzz}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(record publication history broker client sink source journal)

if ! command -v clang >/dev/null; then
  echo "fuzz: clang is not installed (tools/packages-fuzz.txt)" >&2
  exit 2
fi
if [ ! -f "$build/build.ninja" ]; then
  CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined \
    -Db_lundef=false --buildtype=debugoptimized >/dev/null || exit 1
fi
# Only the fuzz targets (and the libraries they link), not the programs,
# tests and benchmarks the build also defines.
names=()
for target in "${targets[@]}"; do names+=("fuzz_$target"); done
meson compile -C "$build" "${names[@]}" >/dev/null \
  || { meson compile -C "$build" "${names[@]}"; exit 1; }

failed=0
for target in "${targets[@]}"; do
  corpus="$build/corpus/$target"
  artifacts="$build/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  cp -n fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true
  cp -n fuzz/regressions/"$target"/* "$corpus"/ 2>/dev/null || true
  # Targets that open sockets each run: their frees come later, from
  # libzmq's reaper thread, so libFuzzer's per-run leak check would fire on
  # every run; leaks are the sanitizer test run's job (tools/sanitize.sh).
  leaks=1
  case "$target" in client|sink|source) leaks=0 ;; esac
  log="$build/fuzz-$target.log"
  before=$(find "$artifacts" -type f | wc -l)
  "$build/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=30 \
    -detect_leaks=$leaks -close_fd_mask=3 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1
  status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
  crashes=$(( $(find "$artifacts" -type f | wc -l) - before ))
  [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ] && crashes=1
  printf 'fuzz %-12s %10s runs %8s execs/s  %-22s crashes %s\n' \
    "$target" "${runs:-?}" "${speed:-?}" "${cov:-cov: ?}" "$crashes"
  if [ "$status" -ne 0 ]; then
    failed=1
    grep -m1 -E 'ERROR|check failed|runtime error' "$log" | sed 's/^/  /'
    echo "  log: $log; inputs: $artifacts/"
  fi
done
exit $failed
