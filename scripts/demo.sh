#!/usr/bin/env bash
# make demo: hetee's main job, end to end, from a Release build directory.
set -euo pipefail
B="${1:-build-release}"
"$B/bin/hetee" demo
