#!/usr/bin/python3
"""Peer benchmark: build a cohort layout with torch.distributed (gloo backend).

Run with the Debian interpreter, which has python3-torch:

    build/bin/cohortctl layout -n 8 --dp 2 --cfg 2 --ulysses 2 -o json > /tmp/l.json
    build/bin/cohortctl layout -n 8 --tp 2 --cfg 2 --ulysses 2 -o json > /tmp/l2.json
    /usr/bin/python3 bench/torch_groups.py --layout-json /tmp/l.json \
        [--relayout-json /tmp/l2.json] [--repeat 3] [--timeout 120]

The layout document is {"valid":true,"groups":{"world":[[0..W-1]],"dp":[...],...}}
with group kinds in creation order. For each repeat, W fresh processes are
started (this same script with --child); each one

  1. init_process_group("gloo", tcp://127.0.0.1:<port>, rank, W),
  2. for every kind except "world" (the default group), in document order, and
     every group of that kind in list order, calls new_group(ranks, "gloo")
     (torch requires every process to take part in every new_group call) and
     keeps the groups containing its rank,
  3. verifies each kept group: all_reduce(global rank) must equal sum(ranks),
  4. with --relayout-json (a second layout of the same world size): destroys
     every group it kept except the default one (destroy_process_group(g) and
     the last reference dropped, so that the gloo group is closed), then does
     (2) and (3) for the second layout on the kept default group,
  5. destroy_process_group(), and drops its last references to the groups.

Each child times (1)-(3) as "ready", (4) as "relayout" and (5) as "teardown"
with perf_counter and prints one JSON line. The parent reports, per run, the max
over ranks of each, of "ready + teardown" (total_with_teardown_s: the span of
cohort's Initialize -> READY plus its destroy of everything), plus the wall time
from spawning the children to all of them exiting (which includes interpreter
start and `import torch`). Output is one JSON line. Where torch cannot be
imported, the line is {"peer": ..., "skipped": "<why>"} and the exit code 0.
A run that does not finish within --timeout seconds is killed and the script
exits non-zero.
"""

import argparse
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PEER = "torch.distributed gloo"


def load_layout(path):
    """Return (world_size, [(kind, [ranks, ...]), ...]) without the world kind."""
    with open(path) as f:
        doc = json.load(f)  # json keeps the document's key order
    if not doc.get("valid", False):
        raise SystemExit("torch_groups: layout %s is not valid: %s" % (path, doc))
    groups = doc["groups"]
    world_size = len(groups["world"][0])
    kinds = [(k, v) for k, v in groups.items() if k != "world"]
    return world_size, kinds


# --------------------------------------------------------------------------
# Child: one rank.
# --------------------------------------------------------------------------

def build_groups(dist, rank, kinds, timeout):
    """new_group for every group of `kinds`, in order (torch requires every
    process to take part in every call); returns (kept, created) where kept
    lists (kind, ranks, group) of the groups holding `rank`."""
    kept = []
    created = 0
    for kind, group_list in kinds:
        for ranks in group_list:
            g = dist.new_group(ranks=ranks, backend="gloo", timeout=timeout)
            created += 1
            if rank in ranks:
                kept.append((kind, ranks, g))
    return kept, created


def verify_groups(torch, dist, rank, kept):
    """The sum of global ranks over each kept group."""
    for kind, ranks, g in kept:
        t = torch.tensor([rank], dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=g)
        if t.item() != sum(ranks):
            raise RuntimeError("rank %d: %s group %s all_reduce gave %d, want %d"
                               % (rank, kind, ranks, t.item(), sum(ranks)))


def destroy_groups(dist, kept):
    """destroy_process_group(g) for each kept group, then drop the list's
    references: destroy_process_group only forgets a group, and its gloo
    context closes when the last reference goes."""
    for _, _, g in kept:
        dist.destroy_process_group(g)
    kept.clear()


def child_main(args):
    start_wall = time.time()  # after interpreter start + argument parsing
    import datetime
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)  # W processes share a few cores
    world_size, kinds = load_layout(args.layout_json)
    relayout_kinds = None
    if args.relayout_json:
        relayout_world, relayout_kinds = load_layout(args.relayout_json)
        if relayout_world != world_size:
            raise SystemExit("torch_groups: --relayout-json has world %d, not %d"
                             % (relayout_world, world_size))
    rank = args.rank
    timeout = datetime.timedelta(seconds=args.timeout)

    init_wall = time.time()  # "import done" stamp, reported to the parent
    t0 = time.perf_counter()
    dist.init_process_group(
        "gloo", init_method="tcp://127.0.0.1:%d" % args.port,
        rank=rank, world_size=world_size, timeout=timeout)
    kept, created = build_groups(dist, rank, kinds, timeout)
    verify_groups(torch, dist, rank, kept)
    ready = time.perf_counter() - t0
    kept_count = len(kept)

    relayout = None
    relayout_created = 0
    if relayout_kinds is not None:
        t1 = time.perf_counter()
        destroy_groups(dist, kept)  # every group but the default (world) one
        kept, relayout_created = build_groups(dist, rank, relayout_kinds, timeout)
        verify_groups(torch, dist, rank, kept)
        relayout = time.perf_counter() - t1

    t2 = time.perf_counter()
    dist.destroy_process_group()
    kept.clear()  # the last references to the subgroups: their contexts close
    teardown = time.perf_counter() - t2

    print(json.dumps({
        "rank": rank, "ready_s": ready, "relayout_s": relayout,
        "teardown_s": teardown,
        "start_wall": start_wall, "init_wall": init_wall,
        "groups_created": created, "groups_kept": kept_count,
        "relayout_groups_created": relayout_created,
        "torch_version": torch.__version__,
    }), flush=True)


# --------------------------------------------------------------------------
# Parent: spawn, supervise, aggregate.
# --------------------------------------------------------------------------

def free_port():
    """A TCP port the OS considers free right now (bind port 0, then release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_all(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        p.wait()


def one_run(args, world_size):
    """Start W ranks, wait for all of them, return the parsed child reports."""
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    port = free_port()
    cmd = [sys.executable, os.path.abspath(__file__), "--child",
           "--layout-json", args.layout_json, "--port", str(port),
           "--timeout", str(args.timeout)]
    if args.relayout_json:
        cmd += ["--relayout-json", args.relayout_json]
    spawn_wall = time.time()
    t0 = time.perf_counter()
    # Child output goes to temp files, not pipes: a chatty rank cannot block.
    outs = [tempfile.TemporaryFile() for _ in range(world_size)]
    errs = [tempfile.TemporaryFile() for _ in range(world_size)]
    procs = [subprocess.Popen(cmd + ["--rank", str(r)], env=env,
                              stdout=outs[r], stderr=errs[r])
             for r in range(world_size)]

    def read(f):
        f.seek(0)
        return f.read().decode(errors="replace")

    deadline = t0 + args.timeout
    try:
        # Poll so that one failing rank (or a hang) ends the run promptly
        # instead of leaving the others blocked in a collective.
        while any(p.poll() is None for p in procs):
            failed = [r for r, p in enumerate(procs)
                      if p.returncode not in (None, 0)]
            if failed:
                r = failed[0]
                kill_all(procs)
                err = read(errs[r])
                raise SystemExit("torch_groups: rank %d exited with %d:\n%s"
                                 % (r, procs[r].returncode, err[-4000:]))
            if time.perf_counter() > deadline:
                stuck = [r for r, p in enumerate(procs) if p.poll() is None]
                kill_all(procs)
                raise SystemExit("torch_groups: timeout after %gs; ranks still "
                                 "running: %s" % (args.timeout, stuck))
            time.sleep(0.005)
        wall = time.perf_counter() - t0
    finally:
        kill_all(procs)

    reports = []
    for r, p in enumerate(procs):
        out, err = read(outs[r]), read(errs[r])
        if p.returncode != 0:
            raise SystemExit("torch_groups: rank %d exited with %d:\n%s"
                             % (r, p.returncode, err[-4000:]))
        lines = [l for l in out.splitlines() if l.startswith("{")]
        if not lines:
            raise SystemExit("torch_groups: rank %d printed no report:\n%s%s"
                             % (r, out, err[-4000:]))
        reports.append(json.loads(lines[-1]))
    return spawn_wall, wall, reports


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--layout-json", required=True)
    ap.add_argument("--relayout-json",
                    help="a second layout of the same world, built after "
                         "destroying the first one's groups (the world kept)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=120.0)
    # Internal: child mode.
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child_main(args)

    if importlib.util.find_spec("torch") is None:
        print(json.dumps({
            "peer": PEER,
            "skipped": "torch is not installed for %s (Debian: python3-torch)"
                       % sys.executable,
        }))
        return 0

    args.layout_json = os.path.abspath(args.layout_json)
    world_size, kinds = load_layout(args.layout_json)
    expected_groups = sum(len(g) for _, g in kinds)
    expected_relayout_groups = 0
    if args.relayout_json:
        args.relayout_json = os.path.abspath(args.relayout_json)
        _, relayout_kinds = load_layout(args.relayout_json)
        expected_relayout_groups = sum(len(g) for _, g in relayout_kinds)

    runs, torch_version = [], None
    for _ in range(max(1, args.repeat)):
        spawn_wall, wall, reports = one_run(args, world_size)
        for rep in reports:
            if rep["groups_created"] != expected_groups:
                raise SystemExit("torch_groups: rank %d created %d groups, "
                                 "expected %d" % (rep["rank"],
                                                  rep["groups_created"],
                                                  expected_groups))
            if rep["relayout_groups_created"] != expected_relayout_groups:
                raise SystemExit("torch_groups: rank %d created %d groups for "
                                 "the second layout, expected %d"
                                 % (rep["rank"], rep["relayout_groups_created"],
                                    expected_relayout_groups))
        torch_version = reports[0]["torch_version"]
        runs.append({
            # Slowest rank from init_process_group to verified groups.
            "init_to_ready_s": round(max(r["ready_s"] for r in reports), 4),
            "teardown_s": round(max(r["teardown_s"] for r in reports), 4),
            # Slowest rank from init_process_group to verified groups, plus
            # its destroy_process_group() (the relayout span left out).
            "total_with_teardown_s": round(
                max(r["ready_s"] + r["teardown_s"] for r in reports), 4),
            # Spawn to last exit: includes interpreter start + import torch.
            "wall_s": round(wall, 4),
            # Last rank entering init_process_group to the last rank ready:
            # init_to_ready_s minus the skew of ranks finishing `import torch`.
            "last_start_to_ready_s": round(
                max(r["init_wall"] + r["ready_s"] for r in reports)
                - max(r["init_wall"] for r in reports), 4),
            # Spawn to the last rank finishing `import torch` (informational).
            "startup_s": round(max(r["init_wall"] for r in reports)
                               - spawn_wall, 4),
        })
        if args.relayout_json:
            # Slowest rank from destroying the first layout's groups to the
            # second layout's groups verified.
            runs[-1]["relayout_s"] = round(
                max(r["relayout_s"] for r in reports), 4)

    result = {
        "peer": PEER,
        "torch_version": torch_version,
        "world_size": world_size,
        "kinds": [k for k, _ in kinds],
        "groups_created": expected_groups,
        "relayout_groups_created": expected_relayout_groups,
        "verified": True,  # every rank checked every kept group's all_reduce
        "runs": runs,
    }
    spans = [("init_to_ready", "init_to_ready_s"),
             ("total_with_teardown", "total_with_teardown_s")]
    if args.relayout_json:
        spans.append(("relayout", "relayout_s"))
    for name, key in spans:
        values = [r[key] for r in runs]
        result["best_%s_s" % name] = min(values)
        result["median_%s_s" % name] = round(statistics.median(values), 4)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
