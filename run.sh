#!/usr/bin/env bash
# run.sh - the two things a newcomer does with PlayØMQ.
#   ./run.sh demo   installs what is missing, builds, and runs a broker, two
#                   workers, a sink printing primes and a source; stops by
#                   itself after --count numbers, or on Ctrl-C
#   ./run.sh test   installs what is missing, builds, runs every test, then
#                   again under ASan+UBSan, then each fuzz target for 20 s
#   ./run.sh bench  the benchmarks; writes docs/PERFORMANCE.md (~8-12 minutes)
set -euo pipefail
cd "$(dirname "$0")"

case "${1:-}" in
  demo)
    shift
    tools/deps.sh tools/packages-build.txt
    tools/build.sh >/dev/null
    pids=()
    cleanup() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
    trap cleanup EXIT INT TERM
    build/broker/playzmq-broker --source-bind tcp://127.0.0.1:5555 \
      --publish-bind tcp://127.0.0.1:5556 --dispatch-bind tcp://127.0.0.1:5557 \
      --results-bind tcp://127.0.0.1:5558 --history-bind tcp://127.0.0.1:5559 \
      --stats 0 & pids+=($!)
    build/worker/playzmq-worker --broker 127.0.0.1 --threads 1 & pids+=($!)
    build/worker/playzmq-worker --broker 127.0.0.1 --threads 1 & pids+=($!)
    build/sink/playzmq-sink --broker 127.0.0.1 --tags P & pids+=($!)
    sleep 0.5                     # let the sink subscribe before numbers flow
    build/source/playzmq-source --broker 127.0.0.1 --count 200 --rate 20 \
      --max 1000000 "$@" || true
    sleep 0.5                     # the last verdicts are on their way
    ;;
  test)
    # With no options, after the suites: the same suites again built with
    # AddressSanitizer + UndefinedBehaviorSanitizer (tools/sanitize.sh, all
    # but deploy and fault), then every fuzz target for 20 s
    # (tools/fuzz.sh). Options go to the first meson test run only, and
    # skip the other two.
    shift
    tools/deps.sh tools/packages-build.txt tools/packages-test.txt \
      tools/packages-deploy-test.txt tools/packages-fuzz.txt
    tools/build.sh
    status=0
    meson test -C build --print-errorlogs "$@" || status=$?
    if [ $# -eq 0 ]; then
      tools/sanitize.sh || status=1
      if command -v clang >/dev/null; then
        tools/fuzz.sh "${PZ_FUZZ_SECONDS:-20}" || status=1
      else
        echo "fuzz: no clang (tools/packages-fuzz.txt): fuzz targets not run" >&2
      fi
    fi
    exit "$status"
    ;;
  bench)
    # Not one of the two README commands: ~8-12 minutes, rewrites docs/PERFORMANCE.md.
    shift
    tools/deps.sh tools/packages-build.txt tools/packages-bench.txt
    tools/build.sh
    build/bench/playzmq-bench-primality
    python3 bench/pipeline.py "$@"
    ;;
  *)
    echo "usage: ./run.sh demo [source options] | ./run.sh test [meson test options]" \
         "| ./run.sh bench [bench/pipeline.py options]" >&2
    exit 2
    ;;
esac
