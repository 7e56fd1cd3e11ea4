#!/usr/bin/env bash
# `make demo`: a coordinator and eight CPU agents (Gloo) on loopback form a real
# dp2 x cfg2 x ulysses2 layout, verify every group, print it with per-group timings, and tear
# it down. Every process is cleaned up on exit, Ctrl-C included.
#
# deploy/demo.sh BUILD_DIR          plaintext on loopback (--insecure), and says so
# deploy/demo.sh BUILD_DIR --tls    `make demo-tls`: the same pool with mutual TLS and a policy:
#                                   certificates minted by deploy/mint-certs.sh (a throwaway CA),
#                                   each agent with its own certificate, cohortctl as operator
set -euo pipefail
BUILD_DIR=${1:-build}
MODE=${2:-}
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

if [[ "$MODE" == "--tls" ]]; then
  here="$(cd "$(dirname "$0")" && pwd)"
  "$here/mint-certs.sh" "$work/certs" --agents 8 >/dev/null
  cat >"$work/policy.yaml" <<'POLICY'
principals:
  - {name: agents, role: agent, certificate: {uri: "spiffe://cohort/agent/*"}}
  - {name: operator, role: operator, certificate: {uri: "spiffe://cohort/operator"}}
POLICY
  tls() { echo --tls-cert "$work/certs/$1.crt" --tls-key "$work/certs/$1.key" --tls-ca "$work/certs/ca.crt"; }
  coordinator_transport=($(tls coordinator) --policy "$work/policy.yaml")
  ctl_transport=($(tls operator))
  agent_name() { echo "agent-$1"; }
  agent_transport() { tls "agent-$1"; }
  echo "transport: mutual TLS (certificates from deploy/mint-certs.sh, a throwaway CA; roles from a policy)"
else
  coordinator_transport=(--insecure)
  ctl_transport=(--insecure)
  agent_name() { echo "demo-agent-$1"; }
  agent_transport() { echo --insecure; }
  echo "transport: PLAINTEXT (--insecure) on loopback: no authentication, no encryption; for TLS: make demo-tls"
fi

"$bin/cohort-coordinator" "${coordinator_transport[@]}" --listen 127.0.0.1:0 --port-file "$work/port" --log-level warn \
  >"$work/coordinator.out" 2>"$work/coordinator.log" &
pids+=($!)
for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.05; done
[[ -s "$work/port" ]] || { echo "error: the coordinator did not start:"; cat "$work/coordinator.log"; exit 1; }
address="127.0.0.1:$(cat "$work/port")"
echo "coordinator listening on $address"

for rank in 0 1 2 3 4 5 6 7; do
  # shellcheck disable=SC2046  # agent_transport prints flags and paths without spaces
  "$bin/cohort-agent" $(agent_transport "$rank") --coordinator "$address" \
    --identity "$(agent_name "$rank")" --rank-hint "$rank" --log-level warn 2>"$work/agent-$rank.log" &
  pids+=($!)
done
echo "8 agents started (Gloo backend, loopback)"
echo

"$bin/cohortctl" init "${ctl_transport[@]}" -c "$address" --world-size 8 --dp 2 --cfg 2 --ulysses 2 --wait --timeout 60
echo
"$bin/cohortctl" state "${ctl_transport[@]}" -c "$address"
echo
"$bin/cohortctl" destroy "${ctl_transport[@]}" -c "$address" --all --wait
echo "demo finished: every group was built, verified with an all-reduce, and torn down"
