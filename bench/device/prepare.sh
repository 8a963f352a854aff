#!/usr/bin/env bash
# Prepares, on this machine, what bench/device/run.sh needs on a GPU machine
# that has no network: an xz-compressed Deno binary (the one on PATH, which
# must be x86-64 Linux) and the Vulkan loader packages (Debian amd64 .debs:
# libvulkan1 and the GL vendor-neutral dispatch libraries the NVIDIA ICD
# loads), and a copy of the smaller shared files. Everything goes to
# .device/ (git-ignored), about 38 MB, inside the device tool's 64 MiB per
# call together with the working tree.
#
#     bash bench/device/prepare.sh          # once per session, ~1 minute
#
# Then the device tool runs, with carry [".device"]:
#
#     bash bench/device/run.sh              # there; results under $OUT
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=.device
mkdir -p "$dir/gl"

deno_bin=$(command -v deno) || { echo "prepare: deno is not on PATH" >&2; exit 1; }
deno_bin=$(readlink -f "$deno_bin")
case "$(file -b "$deno_bin" 2>/dev/null || echo ELF)" in
  *ELF*x86-64* | ELF) ;;
  *) echo "prepare: $deno_bin is not an x86-64 ELF binary; the GPU machine is x86-64" >&2; exit 1 ;;
esac
if [ ! -s "$dir/deno.xz" ] || [ "$deno_bin" -nt "$dir/deno.xz" ]; then
  echo "== compressing $deno_bin ($("$deno_bin" --version | head -1))"
  xz -T0 -9e -c "$deno_bin" >"$dir/deno.xz.tmp"
  mv "$dir/deno.xz.tmp" "$dir/deno.xz"
fi
"$deno_bin" --version | head -1 >"$dir/deno.version"

if ! ls "$dir"/gl/libvulkan1_*.deb >/dev/null 2>&1; then
  echo "== downloading the Vulkan loader packages (amd64)"
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/alisa-amd64-lists'
  mkdir -p /tmp/alisa-amd64-lists/partial
  # shellcheck disable=SC2086
  apt-get $o update -qq
  # shellcheck disable=SC2086
  (cd "$dir/gl" && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
# The shared material the tests and benchmarks read, minus the larger
# model files (the f32/f16 GGUFs and the HF directory: their tests skip
# with a message), since ../shared does not travel to the GPU machine.
shared=${ALISA_SHARED:-../shared}
if [ -d "$shared" ]; then
  rm -rf "$dir/shared"
  mkdir -p "$dir/shared/models"
  for d in docs fixtures data; do
    [ -d "$shared/$d" ] && cp -r "$shared/$d" "$dir/shared/"
  done
  for f in austen-5m-q8_0.gguf stories260K-f32.gguf stories260K.bin; do
    [ -f "$shared/models/$f" ] && cp "$shared/models/$f" "$dir/shared/models/"
  done
else
  echo "prepare: no shared material at $shared (set ALISA_SHARED): the GPU run's tests will skip what needs it"
fi
du -sh "$dir"/deno.xz "$dir"/gl "$dir"/shared 2>/dev/null
du -sh --exclude=.git --exclude=wasm/target --exclude=node_modules . | sed 's/\t.*/ working tree + carried (the limit is 64 MiB)/' 
echo "ready: carry [\".device\"] and run: bash bench/device/run.sh"
