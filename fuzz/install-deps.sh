#!/usr/bin/env bash
# What `make fuzz` needs beyond deploy/install-deps.sh: clang and its libFuzzer/sanitizer
# runtimes (Debian 12: clang-14, libclang-rt-14-dev). Does nothing when they are present.
set -euo pipefail
deploy/install-deps.sh
missing=()
for p in clang libclang-rt-dev; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "fuzz/install-deps: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
