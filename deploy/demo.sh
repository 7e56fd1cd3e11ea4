#!/usr/bin/env bash
# `make demo`: computes and prints a real layout (dp2 x cfg2 x ulysses2 over 8 ranks) and one
# rank's view of it. Grows into the coordinator + agents demo as the core lands.
set -euo pipefail
BUILD_DIR=${1:-build}
ctl="$BUILD_DIR/bin/cohortctl"
"$ctl" layout --world-size 8 --dp 2 --cfg 2 --ulysses 2
echo
"$ctl" layout --world-size 8 --dp 2 --cfg 2 --ulysses 2 --rank 5
