#!/usr/bin/env bash
# build.sh - configures (once) and builds PlayØMQ into ./build.
# The Dockerfile runs this same script, so CI exercises the image's build.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/build.ninja ] || meson setup build --buildtype=release
meson compile -C build
