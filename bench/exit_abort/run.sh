#!/usr/bin/env bash
# Counts how often a `deno test` process that ran WebGPU in four runtimes
# aborts at exit, with the default wgpu backends and with Vulkan only:
#   bash bench/exit_abort/run.sh [RUNS]     (default 60 runs each)
# On Debian 12 with Mesa's llvmpipe, the default backends also open EGL
# through glvnd, and the process aborted after every test had passed
# ("double free or corruption" in a thread's TSD destructors, glvnd's
# libGLdispatch on the main thread). DENO_WEBGPU_BACKEND=vulkan avoids it.
set -uo pipefail
cd "$(dirname "$0")"
runs=${1:-60}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for i in 1 2 3 4; do cp module.ts "$dir/m${i}_test.ts"; done
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
for backend in default vulkan; do
  aborted=0
  for _ in $(seq 1 "$runs"); do
    if [ "$backend" = vulkan ]; then
      DENO_WEBGPU_BACKEND=vulkan deno test -A "$dir" >/dev/null 2>&1 || aborted=$((aborted + 1))
    else
      env -u DENO_WEBGPU_BACKEND deno test -A "$dir" >/dev/null 2>&1 || aborted=$((aborted + 1))
    fi
  done
  echo "$backend backends: $aborted of $runs runs aborted"
done
