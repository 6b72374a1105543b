#!/usr/bin/env bash
# Installs the Debian 12 packages nupes-mpi needs to build, test and run (as root, or with
# sudo). Safe to re-run: apt skips what is already there.
set -euo pipefail
packages=(
  build-essential cmake pkg-config g++
  libopenmpi-dev openmpi-bin libhdf5-openmpi-dev hdf5-tools
  libzstd-dev zstd libcmocka-dev libopenblas-dev libtomlplusplus-dev
  libxxhash-dev libsentencepiece-dev libcjson-dev
  slurm-wlm munge iproute2
  python3 python3-h5py python3-hdf5plugin python3-numpy
  clang-14 libclang-rt-14-dev
  nodejs
)
# tests/test_gguf_llamacpp.sh installs node-llama-cpp (llama.cpp's prebuilt binaries) with
# npm into a cache folder. Debian ships npm apart from nodejs; a Node.js from elsewhere
# (NodeSource) bundles it and conflicts with Debian's package, so npm is only added when
# there is none. node-llama-cpp 3.21.1 asks for Node.js >= 20 (Debian 12 has 18).
command -v npm >/dev/null 2>&1 || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
