#!/usr/bin/env bash
# The GPU check: cohort's NCCL backend on one GPU, at world 1, with the figures in one table.
# Builds nothing: it runs the binaries of a bundle (see docs/gpu.md) or of a build tree.
#
#   (a) a coordinator and one agent, --backend nccl, world 1 with every group kind (11
#       communicators, one ncclCommSplit per kind): join -> READY, verify again (cohortctl check),
#       destroy everything
#   (b) four pools of one agent each, at once, on the same GPU: all READY, then all destroyed
#   (c) pool a again on its live agent (a second NCCL init in that process), kill -9 of the
#       agent -> DEGRADED, its restart -> READY again, destroy
#   raw  nccl_raw_bench: the same NCCL calls without cohort, for cohort's overhead at READY
#   teardown  nccl_teardown_bench: cohort's parallel abort of 11 communicators against a loop
#
# usage: gpu-check.sh [--bin DIR] [--device N] [--out FILE] [--budget SECONDS] [--keep]
#                     [--fake [LIBDIR]] [--backend nccl|gloo]
#   --bin DIR      the binaries (default: bin/ next to this script if it holds cohort-agent, else
#                  build/bin of the checkout holding this script)
#   --device N     the CUDA device every agent and bench uses (default 0)
#   --out FILE     also write the table there
#   --budget S     the whole run's time limit (default 420 s): every wait gets what is left of it
#   --keep         keep the work folder (logs) and print where it is
#   --fake [DIR]   run on the NCCL test double instead of a GPU: DIR (default: nccl-double/ next to
#                  the bin folder) first on LD_LIBRARY_PATH, a fresh COHORT_NCCL_DOUBLE_DIR, and
#                  COHORT_NCCL_DOUBLE_ABORT_DELAY_MS=500 for the teardown bench. The figures are
#                  then the double's, not a GPU's, and the table says so.
#   --backend gloo the cohort phases on CPU (Gloo) to try the script without NCCL; raw and
#                  teardown are skipped
# Exit status: 0 every phase passed, 1 a phase failed (the table says which; logs follow), 2 bad
# flags or missing binaries. Every process it starts is stopped on exit, Ctrl-C included.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=""
device=0
out=""
budget=420
keep=0
fake=0
fake_lib=""
backend=nccl

die_usage() {
  echo "error: $1" >&2
  echo "usage: $0 [--bin DIR] [--device N] [--out FILE] [--budget SECONDS] [--keep] [--fake [LIBDIR]] [--backend nccl|gloo]" >&2
  exit 2
}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) [[ $# -ge 2 ]] || die_usage "--bin needs a folder"; bin=$2; shift 2 ;;
    --device) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || die_usage "--device needs a number"; device=$2; shift 2 ;;
    --out) [[ $# -ge 2 ]] || die_usage "--out needs a file"; out=$2; shift 2 ;;
    --budget) [[ $# -ge 2 && $2 =~ ^[0-9]+$ && $2 -ge 30 ]] || die_usage "--budget needs seconds >= 30"; budget=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --fake)
      fake=1; shift
      if [[ $# -gt 0 && $1 != --* ]]; then fake_lib=$1; shift; fi ;;
    --backend) [[ $# -ge 2 && ($2 == nccl || $2 == gloo) ]] || die_usage "--backend is nccl or gloo"; backend=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die_usage "unknown argument: $1" ;;
  esac
done

if [[ -z $bin ]]; then
  if [[ -x $here/bin/cohort-agent ]]; then bin=$here/bin; else bin=$here/../build/bin; fi
fi
bin=$(cd "$bin" 2>/dev/null && pwd) || die_usage "no binary folder $bin"
need=(cohort-coordinator cohort-agent cohortctl)
[[ $backend == nccl ]] && need+=(nccl_raw_bench nccl_teardown_bench)
for b in "${need[@]}"; do
  [[ -x $bin/$b ]] || die_usage "$bin/$b is missing (bundle it, or build it: make build)"
done
command -v python3 >/dev/null || die_usage "python3 is needed to read cohortctl's JSON"

# The traps report on the script's own stdout/stderr (3 and 4), wherever a step had redirected them.
exec 3>&1 4>&2
work=$(mktemp -d -t cohort-gpu-check.XXXXXX)
pids=()
coordinator_pid=""
# shellcheck disable=SC2317  # called by the traps
cleanup() {
  trap - EXIT INT TERM
  # The agents first (a planned leave the coordinator can still answer), then the coordinator;
  # bounded: anything still alive after 5 s is killed.
  stop_all "${pids[@]}"
  [[ -n $coordinator_pid ]] && stop_all "$coordinator_pid"
  if [[ $keep == 1 ]]; then echo "logs kept in $work" >&3; else rm -rf "$work"; fi
}
# shellcheck disable=SC2317  # called by cleanup
stop_all() {  # stop_all PID...: TERM, up to 5 s, then KILL
  local pid alive
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 50); do
    alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for pid in "$@"; do kill -KILL "$pid" 2>/dev/null; done
}
trap cleanup EXIT
trap 'echo "interrupted" >&4; exit 130' INT TERM

if [[ $fake == 1 ]]; then
  [[ -n $fake_lib ]] || fake_lib=$bin/../nccl-double
  [[ -d $fake_lib ]] || die_usage "no NCCL double at $fake_lib (build it: cmake --build build --target cohort_nccl_double)"
  fake_lib=$(cd "$fake_lib" && pwd)
  [[ -e $fake_lib/libnccl.so.2 ]] || die_usage "$fake_lib has no libnccl.so.2 (build it: cmake --build build --target cohort_nccl_double)"
  export LD_LIBRARY_PATH="$fake_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export COHORT_NCCL_DOUBLE_DIR=$work/nccl-double
  mkdir -p "$COHORT_NCCL_DOUBLE_DIR"
  mode="NCCL TEST DOUBLE ($fake_lib): no GPU; these figures are from the double, NOT a GPU"
elif [[ $backend == gloo ]]; then
  mode="Gloo on CPU (--backend gloo): no NCCL, no GPU; raw and teardown skipped"
else
  mode="GPU: NCCL on CUDA device $device"
fi
export NCCL_SOCKET_IFNAME=${NCCL_SOCKET_IFNAME:-lo}

start_s=$SECONDS
# Seconds a step may wait: min(want, what is left of the budget), at least 1.
tmo() {
  local left=$((budget - (SECONDS - start_s)))
  ((left < 1)) && left=1
  echo $(($1 < left ? $1 : left))
}
now_ms() { date +%s%3N; }

rows=()
failed=0
# row PHASE RESULT WALL_MS COHORT_MS NOTES
row() { rows+=("$1|$2|$3|$4|$5"); [[ $2 == ok || $2 == skip ]] || failed=1; }
note() { echo "[$(( SECONDS - start_s ))s] $*"; }

# Children run in the background and are waited for: a signal then interrupts the wait at once
# (the traps run), and cleanup stops every child still running.
run_bg() {  # run_bg COMMAND...: starts it, sets last_pid
  "$@" &
  last_pid=$!
  pids+=("$last_pid")
}
run() { run_bg "$@"; wait "$last_pid"; }
ctl_bg() {  # ctl_bg SUBCOMMAND ARGS...
  local sub=$1
  shift
  run_bg "$bin/cohortctl" "$sub" --insecure -c "$address" "$@"
}
ctl() { ctl_bg "$@"; wait "$last_pid"; }
# json FILE EXPR: evaluates EXPR over the parsed JSON document `s` of FILE.
json() { python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null; }

start_agent() {  # start_agent POOL IDENTITY: sets agent_pid
  "$bin/cohort-agent" --insecure --coordinator "$address" --pool "$1" --identity "$2" \
    --rank-hint 0 --device "$device" --log-level warn >>"$work/agent-$2.log" 2>&1 &
  agent_pid=$!
  pids+=("$agent_pid")
}
init_pool() {  # init_pool POOL: world 1 with every kind (moe + ep), no waiting
  ctl init -p "$1" --world-size 1 --moe --ep --backend "$backend" \
    --deadline-ms $((1000 * $(tmo 120))) >>"$work/ctl.log" 2>&1
}
wait_ready() {  # wait_ready POOL [GENERATION]
  ctl wait -p "$1" --state ready ${2:+--generation "$2"} --timeout "$(tmo 120)s" >>"$work/ctl.log" 2>&1
}
state() { ctl state -p "$1" -o json >"$work/state-$1.json" 2>>"$work/ctl.log"; }
# Facts of a READY pool from its state: "init_ms ready_ms comms generation".
ready_facts() {
  state "$1" && json "$work/state-$1.json" \
    "s['init_ms'], '%.1f' % (int(s['members'][0]['ready_us'])/1000), len(s['members'][0]['groups']), s['generation']"
}

note "mode: $mode"
note "binaries: $bin"

# --- the coordinator --------------------------------------------------------------------------
"$bin/cohort-coordinator" --insecure --listen 127.0.0.1:0 --port-file "$work/port" \
  --log-level warn >"$work/coordinator.out" 2>"$work/coordinator.log" &
coordinator_pid=$!
for _ in $(seq 200); do [[ -s $work/port ]] && break; sleep 0.1; done
if [[ ! -s $work/port ]]; then
  echo "error: the coordinator did not start within 20 s:" >&2
  cat "$work/coordinator.log" >&2
  exit 1
fi
address="127.0.0.1:$(cat "$work/port")"
note "coordinator on $address"

# --- (a) one agent: join -> READY -> verify -> destroy ----------------------------------------
a_init_ms=""
device_line=""
phase_a() {
  init_pool a || { row a.join_to_ready FAIL - - "cohortctl init refused (ctl.log)"; return 1; }
  local t0; t0=$(now_ms)
  start_agent a agent-a
  a_pid=$agent_pid
  if ! wait_ready a; then
    row a.join_to_ready FAIL $(($(now_ms) - t0)) - "not READY (ctl.log, agent-agent-a.log)"; return 1
  fi
  local wall=$(($(now_ms) - t0)) f
  read -r a_init_ms a_agent_ms comms gen < <(ready_facts a)
  device_line=$(json "$work/state-a.json" "'agent: built with NCCL %s; CUDA device %s (%s, %s)' % (s['members'][0]['nccl_version'], s['members'][0]['device']['gpu_index'], s['members'][0]['device']['gpu_uuid'] or 'no uuid', s['members'][0]['device']['pci_bus_id'] or 'no bus id')")
  row a.join_to_ready ok "$wall" "$a_init_ms" "agent start+join+READY; cohort_ms: plans->READY (coordinator), agent ${a_agent_ms} ms; ${comms} comms"
  t0=$(now_ms)
  if ctl check -p a --timeout "$(tmo 60)s" >>"$work/ctl.log" 2>&1; then
    row a.verify ok $(($(now_ms) - t0)) - "cohortctl check: an all-reduce on each of ${comms} comms"
  else
    row a.verify FAIL $(($(now_ms) - t0)) - "cohortctl check failed (ctl.log)"
  fi
  t0=$(now_ms)
  if ctl destroy -p a --all --wait --timeout "$(tmo 60)s" >>"$work/ctl.log" 2>&1; then
    row a.destroy ok $(($(now_ms) - t0)) - "orderly: ncclCommFinalize + ncclCommDestroy, in parallel"
  else
    row a.destroy FAIL $(($(now_ms) - t0)) - "cohortctl destroy --all failed (ctl.log)"
  fi
}
note "(a) one agent, world 1, every kind"
phase_a

# --- (b) four pools of one agent each, at once, on the same device ----------------------------
phase_b() {
  local p t0 ok=1 waits=() init_max=0 facts
  for p in b0 b1 b2 b3; do
    init_pool "$p" || { row b.4pools_ready FAIL - - "cohortctl init $p refused"; return 1; }
  done
  t0=$(now_ms)
  for p in b0 b1 b2 b3; do start_agent "$p" "agent-$p"; done
  for p in b0 b1 b2 b3; do
    ctl_bg wait -p "$p" --state ready --timeout "$(tmo 120)s" >>"$work/ctl.log" 2>&1
    waits+=("$last_pid")
  done
  for w in "${waits[@]}"; do wait "$w" || ok=0; done
  local wall=$(($(now_ms) - t0))
  local per=""
  for p in b0 b1 b2 b3; do
    read -r facts _ < <(ready_facts "$p")
    per+="$p=${facts:-?} "
    [[ ${facts:-0} =~ ^[0-9]+$ ]] && ((facts > init_max)) && init_max=$facts
  done
  if [[ $ok == 1 ]]; then
    row b.4pools_ready ok "$wall" "$init_max" "4 agents started at once; cohort_ms: the slowest pool's plans->READY (${per% })"
  else
    row b.4pools_ready FAIL "$wall" - "not every pool READY (ctl.log)"
  fi
  t0=$(now_ms)
  ok=1
  waits=()
  for p in b0 b1 b2 b3; do
    ctl_bg destroy -p "$p" --all --wait --timeout "$(tmo 60)s" >>"$work/ctl.log" 2>&1
    waits+=("$last_pid")
  done
  for w in "${waits[@]}"; do wait "$w" || ok=0; done
  if [[ $ok == 1 ]]; then
    row b.4pools_destroy ok $(($(now_ms) - t0)) - "4 x cohortctl destroy --all at once"
  else
    row b.4pools_destroy FAIL $(($(now_ms) - t0)) - "a teardown failed (ctl.log)"
  fi
}
note "(b) four pools of one agent each on device $device"
phase_b

# --- (c) pool a again, kill -9 of its agent, restart -> READY ----------------------------------
c_init_ms=""
phase_c() {
  local t0 gen wall f
  if ! kill -0 "${a_pid:-0}" 2>/dev/null; then
    row c.reinit_same_agent FAIL - - "the agent of (a) is gone"; return 1
  fi
  state a && gen=$(json "$work/state-a.json" "s['generation']")
  t0=$(now_ms)
  if ! init_pool a || ! wait_ready a $((${gen:-0} + 1)); then
    row c.reinit_same_agent FAIL $(($(now_ms) - t0)) - "not READY (ctl.log)"; return 1
  fi
  wall=$(($(now_ms) - t0))
  read -r c_init_ms agent_ms _ gen < <(ready_facts a)
  row c.reinit_same_agent ok "$wall" "$c_init_ms" "second NCCL init in the agent's process; agent ${agent_ms} ms"
  t0=$(now_ms)
  kill -9 "$a_pid"
  wait "$a_pid" 2>/dev/null
  if ctl wait -p a --state degraded --timeout "$(tmo 30)s" >>"$work/ctl.log" 2>&1; then
    row c.kill9_to_degraded ok $(($(now_ms) - t0)) - "the coordinator saw the session close"
  else
    row c.kill9_to_degraded FAIL $(($(now_ms) - t0)) - "not DEGRADED (ctl.log)"; return 1
  fi
  t0=$(now_ms)
  start_agent a agent-a
  a_pid=$agent_pid
  if ! wait_ready a $((gen + 1)); then
    row c.restart_to_ready FAIL $(($(now_ms) - t0)) - "not READY again (ctl.log)"; return 1
  fi
  wall=$(($(now_ms) - t0))
  read -r f agent_ms _ gen < <(ready_facts a)
  row c.restart_to_ready ok "$wall" "$f" "restart+rejoin+READY (generation $gen); agent ${agent_ms} ms"
  t0=$(now_ms)
  if ctl destroy -p a --all --wait --timeout "$(tmo 60)s" >>"$work/ctl.log" 2>&1; then
    row c.destroy ok $(($(now_ms) - t0)) - ""
  else
    row c.destroy FAIL $(($(now_ms) - t0)) - "cohortctl destroy --all failed (ctl.log)"
  fi
}
note "(c) re-init, kill -9 and restart of the agent"
phase_c

# --- raw NCCL and the overhead of cohort ------------------------------------------------------
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
overhead() {  # overhead NAME COHORT_MS RAW_MS WHAT
  if [[ -z $2 || -z $3 ]]; then row "$1" FAIL - - "missing a figure ($4)"; return; fi
  local verdict
  verdict=$(python3 -c "
import sys
c, r = float(sys.argv[1]), float(sys.argv[2])
if r <= 0:
    print('n/a: the raw figure is 0')
else:
    pct = 100 * (c - r) / r
    print('%.1f %% (target < 10 %%: %s)' % (pct, 'met' if pct < 10 else 'MISSED'))
" "$2" "$3")
  [[ $fake == 1 ]] && verdict+=", meaningless on the double"
  row "$1" ok - "$2" "cohort ${2} ms vs raw ${3} ms: ${verdict}; $4"
}
phase_raw() {
  if ! run timeout -k 5 "$(tmo 120)" "$bin/nccl_raw_bench" --device "$device" --repeat 5 >"$work/raw.out" 2>"$work/raw.log"; then
    row raw.first FAIL - - "nccl_raw_bench failed: $(tail -1 "$work/raw.log")"; return 1
  fi
  local first rest
  first=$(grep 'summary=first' "$work/raw.out")
  rest=$(grep 'summary=median_rest' "$work/raw.out")
  device_line+="; nccl_raw_bench: ncclGetVersion $(field "$(head -1 "$work/raw.out")" nccl_version)"
  raw_first=$(field "$first" ready_ms)
  raw_rest=$(field "$rest" ready_ms)
  for r in "first:$first" "median_rest:$rest"; do
    local l=${r#*:}
    row "raw.${r%%:*}" ok "$(field "$l" ready_ms)" - \
      "ready = init $(field "$l" init_ms) + splits $(field "$l" splits_ms) + verify $(field "$l" verify_ms); destroy $(field "$l" destroy_ms)"
  done
  overhead overhead.first "$a_init_ms" "$raw_first" "a.join_to_ready vs raw.first: first NCCL init of a process"
  overhead overhead.warm "$c_init_ms" "$raw_rest" "c.reinit_same_agent vs raw.median_rest"
}
phase_teardown() {
  local env=()
  [[ $fake == 1 ]] && env=(env COHORT_NCCL_DOUBLE_ABORT_DELAY_MS=500)
  if ! run timeout -k 5 "$(tmo 180)" "${env[@]}" "$bin/nccl_teardown_bench" --device "$device" --repeat 3 \
      >"$work/teardown.out" 2>"$work/teardown.log"; then
    row teardown.parallel FAIL - - "nccl_teardown_bench failed: $(tail -1 "$work/teardown.log")"; return 1
  fi
  local s
  s=$(grep 'teardown summary' "$work/teardown.out")
  local delay=""
  [[ $fake == 1 ]] && delay="; the double's abort delay 500 ms"
  row teardown.parallel ok "$(field "$s" parallel_ms)" - "Backend::DestroyAll(abort) of $(field "$s" comms) comms, median of 3${delay}"
  row teardown.serial ok "$(field "$s" serial_ms)" - "Abort()+Destroy() one by one, median of 3"
  row teardown.ratio ok - - "serial / parallel = $(field "$s" ratio)"
}
if [[ $backend == nccl ]]; then
  note "raw NCCL: nccl_raw_bench --repeat 5"
  phase_raw
  note "teardown: nccl_teardown_bench --repeat 3"
  phase_teardown
else
  for p in raw.first raw.median_rest overhead.first overhead.warm teardown.parallel teardown.serial teardown.ratio; do
    row "$p" skip - - "--backend $backend"
  done
fi

# Every phase has a row: one that never ran (an earlier step of its phase failed) says so.
all_phases=(a.join_to_ready a.verify a.destroy b.4pools_ready b.4pools_destroy c.reinit_same_agent
  c.kill9_to_degraded c.restart_to_ready c.destroy raw.first raw.median_rest overhead.first
  overhead.warm teardown.parallel teardown.serial teardown.ratio)
sorted=()
for p in "${all_phases[@]}"; do
  found=""
  for r in "${rows[@]}"; do [[ ${r%%|*} == "$p" ]] && found=$r; done
  sorted+=("${found:-$p|not-run|-|-|an earlier step failed}")
  [[ -n $found ]] || failed=1
done
rows=("${sorted[@]}")

# --- the table --------------------------------------------------------------------------------
{
  echo "cohort GPU check: $mode"
  echo "world 1, every group kind (cohortctl init --world-size 1 --moe --ep --backend $backend); total $((SECONDS - start_s)) s"
  [[ -n $device_line ]] && echo "$device_line"
  printf '%-20s %-6s %9s %10s  %s\n' PHASE RESULT WALL_MS COHORT_MS NOTES
  for r in "${rows[@]}"; do
    IFS='|' read -r p res wall cms notes <<<"$r"
    printf '%-20s %-6s %9s %10s  %s\n' "$p" "$res" "$wall" "$cms" "$notes"
  done
  [[ $fake == 1 ]] && echo "(figures from the NCCL TEST DOUBLE, not a GPU)"
  [[ $failed == 0 ]] && echo "result: every phase passed" || echo "result: FAILED"
} | tee "$work/table.txt"
[[ -n $out ]] && cp "$work/table.txt" "$out"

if [[ $failed != 0 ]]; then
  for f in "$work"/ctl.log "$work"/coordinator.log "$work"/agent-*.log "$work"/raw.log "$work"/teardown.log; do
    [[ -s $f ]] && { echo "--- ${f##*/} (last 20 lines)"; tail -20 "$f"; }
  done
  exit 1
fi
exit 0
