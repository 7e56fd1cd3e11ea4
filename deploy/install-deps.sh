#!/usr/bin/env bash
# Installs the Debian packages cohort builds and tests with, and the npm packages of the
# Kubernetes manifests' validator (deploy/k8s/validate/node_modules, `npm ci` from its lockfile;
# node and npm are expected on the machine, as is kubectl). Idempotent: does nothing (and needs
# no network) when every package is already present.
# Usage: deploy/install-deps.sh [--bench] [--fuzz] [--format]
#   --bench  also installs python3-torch, the torch.distributed peer the benchmarks compare with,
#            and python3-matplotlib for the plots of bench/results.
#   --fuzz   also installs clang and its libFuzzer/sanitizer runtimes (make fuzz).
#   --format also installs clang-format (make format, make format-check).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libgloo-dev libspdlog-dev libfmt-dev libcli11-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev
  libyaml-cpp-dev libssl-dev openssl curl procps ccache yamllint
)
for arg in "$@"; do
  case "$arg" in
    --bench) packages+=(python3-torch python3-matplotlib) ;;
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
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The manifests' validator (ctest k8s_manifests): exact versions from package-lock.json. Skipped
# when installed and no newer than the lockfile.
validate_dir="$(cd "$(dirname "$0")" && pwd)/k8s/validate"
if [[ ! -f "$validate_dir/node_modules/.package-lock.json" ||
      "$validate_dir/package-lock.json" -nt "$validate_dir/node_modules/.package-lock.json" ]]; then
  if ! command -v npm >/dev/null; then
    echo "install-deps: npm not found: install Node.js 20 and npm for deploy/k8s/validate" >&2
    exit 1
  fi
  echo "install-deps: npm ci in $validate_dir" >&2
  (cd "$validate_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
