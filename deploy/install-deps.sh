#!/usr/bin/env bash
# Installs the Debian packages cohort builds and tests with. Idempotent: does nothing (and needs
# no network) when every package is already present.
# Usage: deploy/install-deps.sh [--bench] [--fuzz] [--format]
#   --bench  also installs python3-torch, the torch.distributed peer the benchmarks compare with.
#   --fuzz   also installs clang and its libFuzzer/sanitizer runtimes (make fuzz).
#   --format also installs clang-format (make format, make format-check).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libgloo-dev libspdlog-dev libfmt-dev libcli11-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev
  libyaml-cpp-dev libssl-dev openssl curl procps ccache
)
for arg in "$@"; do
  case "$arg" in
    --bench) packages+=(python3-torch) ;;
    --fuzz) packages+=(clang libclang-rt-dev) ;;
    --format) packages+=(clang-format) ;;
    *) echo "install-deps: unknown option '$arg' (use --bench, --fuzz, --format)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
