#!/usr/bin/env bash
# `make demo`: a coordinator and eight CPU agents (Gloo) on loopback form a real
# dp2 x cfg2 x ulysses2 layout, verify every group, print it with per-group timings, and tear
# it down. Every process is cleaned up on exit, Ctrl-C included.
set -euo pipefail
BUILD_DIR=${1:-build}
bin="$BUILD_DIR/bin"
work=$(mktemp -d -t cohort-demo.XXXXXX)
pids=()

cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # Bounded: anything still alive after 5 s is killed.
  for _ in $(seq 50); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

"$bin/cohort-coordinator" --insecure --listen 127.0.0.1:0 --port-file "$work/port" --log-level warn \
  >"$work/coordinator.out" 2>"$work/coordinator.log" &
pids+=($!)
for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.05; done
[[ -s "$work/port" ]] || { echo "error: the coordinator did not start:"; cat "$work/coordinator.log"; exit 1; }
address="127.0.0.1:$(cat "$work/port")"
echo "coordinator listening on $address"

for rank in 0 1 2 3 4 5 6 7; do
  "$bin/cohort-agent" --insecure --coordinator "$address" --identity "demo-agent-$rank" --rank-hint "$rank" \
    --log-level warn 2>"$work/agent-$rank.log" &
  pids+=($!)
done
echo "8 agents started (Gloo backend, loopback)"
echo

"$bin/cohortctl" init --insecure -c "$address" --world-size 8 --dp 2 --cfg 2 --ulysses 2 --wait --timeout 60
echo
"$bin/cohortctl" state --insecure -c "$address"
echo
"$bin/cohortctl" destroy --insecure -c "$address" --all --wait
echo "demo finished: every group was built, verified with an all-reduce, and torn down"
