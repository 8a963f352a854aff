#!/usr/bin/env bash
# Runs the op benchmarks, the throughput suite and the tests on a GPU
# machine that has no network (the `device` tool's NVIDIA H200), from the
# working tree plus .device/ made here by bench/device/prepare.sh:
#
#     device run, carry [".device"], timeout_s 600:
#       bash bench/device/run.sh
#
# Steps: unpack the Vulkan loader packages into / (or $ALISA_DEVICE_ROOT, a
# scratch root for trying the steps on another machine) and Deno into
# $ALISA_DEVICE_BIN; point Vulkan at the NVIDIA driver; print the WebGPU
# adapter; then each stage under its own time limit, so one slow stage
# cannot take the others' time, writing its output under $OUT as it goes:
#
# | stage | output | limit (s) |
# | --- | --- | ---: |
# | GPU op benchmarks | gpu-ops.txt | 60 |
# | throughput, embedded model, batches 1-64, output 512 | throughput-austen.{md,json,svg} | 200 |
# | throughput, mha-1024 preset, batches 4/16/64, output 256 | throughput-mha-1024.{md,json} | 150 |
# | the tests (all but the two that need npm tokenizers) | tests.txt | 120 |
#
# All of it, and the unpacking, is in run.log. Stage limits can be scaled
# with ALISA_DEVICE_SCALE (e.g. 0.2 for a trial on a slow machine) and a
# stage skipped by listing it in ALISA_DEVICE_SKIP (ops,austen,mha,tests).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/device-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
dev=.device
root=${ALISA_DEVICE_ROOT:-/}
bin=${ALISA_DEVICE_BIN:-/tmp/alisa-bin}
scale=${ALISA_DEVICE_SCALE:-1}
skip=",${ALISA_DEVICE_SKIP:-},"
t_start=$(date +%s)
say() { echo "== [$(($(date +%s) - t_start)) s] $*"; }
die() { echo "run.sh: $*" >&2; exit 2; }

# -- unpack ----------------------------------------------------------------
[ -s "$dev/deno.xz" ] || die "$dev/deno.xz is missing: run bench/device/prepare.sh here and carry [\".device\"]"
say "unpacking the Vulkan loader into $root"
mkdir -p "$root"
for f in "$dev"/gl/*.deb; do
  [ -e "$f" ] || die "no .deb files in $dev/gl: run bench/device/prepare.sh"
  dpkg -x "$f" "$root" || die "dpkg -x $f failed"
done
if [ "$root" = / ]; then
  ldconfig
else
  export LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

say "unpacking Deno into $bin"
mkdir -p "$bin"
if command -v xz >/dev/null 2>&1; then
  xz -dc "$dev/deno.xz" >"$bin/deno"
else
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
    "$dev/deno.xz" "$bin/deno"
fi || die "could not decompress $dev/deno.xz"
chmod +x "$bin/deno"
export PATH="$bin:$PATH" DENO_DIR=/tmp/alisa-deno-dir DENO_NO_UPDATE_CHECK=1
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
export DENO_WEBGPU_BACKEND=${DENO_WEBGPU_BACKEND:-vulkan} # no EGL: see .ci/run
deno --version | head -1 || die "the unpacked deno does not run"
[ -d "$dev/shared" ] && export ALISA_SHARED=${ALISA_SHARED:-$PWD/$dev/shared}

# -- the driver --------------------------------------------------------------
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then
  export VK_DRIVER_FILES=$icd
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
[ -f "$icd" ] && export LD_LIBRARY_PATH="/usr/local/nvidia/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
say "Vulkan driver files: ${VK_DRIVER_FILES:-(the loader defaults)}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

say "WebGPU adapter"
deno run -A bench/device/adapter.ts || die "no WebGPU adapter: check VK_DRIVER_FILES and that libvulkan.so.1 was unpacked (ldconfig -p | grep vulkan)"

# -- stages ------------------------------------------------------------------
stage() { # name limit_seconds command...
  local name=$1 limit=$2
  shift 2
  case $skip in *",$name,"*) say "$name: skipped"; return ;; esac
  limit=$(awk -v l="$limit" -v s="$scale" 'BEGIN { printf "%d", l * s < 5 ? 5 : l * s }')
  say "$name (limit ${limit} s): $*"
  timeout --signal=INT --kill-after=10 "$limit" "$@"
  local rc=$?
  [ $rc -eq 0 ] || say "$name: exit $rc$([ $rc -ge 124 ] && echo ' (time limit: what finished is written)')"
}

stage ops 60 bash -c "deno run -A bench/gpu_ops_bench.ts >'$OUT/gpu-ops.txt' 2>&1; rc=\$?; tail -n 40 '$OUT/gpu-ops.txt'; exit \$rc"
stage austen 200 deno run -A bench/throughput.ts --batches 1,4,8,16,32,64 --output 512 \
  --json "$OUT/throughput-austen.json" --md "$OUT/throughput-austen.md" --svg "$OUT/throughput-austen.svg"
stage mha 150 deno run -A bench/throughput.ts --preset mha-1024 --batches 4,16,64 --output 256 \
  --json "$OUT/throughput-mha-1024.json" --md "$OUT/throughput-mha-1024.md"
# The tests, unchecked (type checking fetches npm type packages) and without
# the two tokenizer files that compare against npm tokenizers: no network.
stage tests 120 bash -c "deno test -A --no-check --parallel \$(grep -L 'npm:' tests/*_test.ts) >'$OUT/tests.txt' 2>&1; rc=\$?; grep -E '^(ok|FAILED)|passed|failed' '$OUT/tests.txt' | tail -n 5; exit \$rc"
say "done; results in $OUT"
ls -la "$OUT"
