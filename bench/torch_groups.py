#!/usr/bin/python3
"""Peer benchmark: build a cohort layout with torch.distributed (gloo backend).

Run with the Debian interpreter, which has python3-torch:

    build/bin/cohortctl layout -n 8 --dp 2 --cfg 2 --ulysses 2 -o json > /tmp/l.json
    /usr/bin/python3 bench/torch_groups.py --layout-json /tmp/l.json [--repeat 3] [--timeout 120]

The layout document is {"valid":true,"groups":{"world":[[0..W-1]],"dp":[...],...}}
with group kinds in creation order. For each repeat, W fresh processes are
started (this same script with --child); each one

  1. init_process_group("gloo", tcp://127.0.0.1:<port>, rank, W),
  2. for every kind except "world" (the default group), in document order, and
     every group of that kind in list order, calls new_group(ranks, "gloo")
     (torch requires every process to take part in every new_group call) and
     keeps the groups containing its rank,
  3. verifies each kept group: all_reduce(global rank) must equal sum(ranks),
  4. destroy_process_group().

Each child times (1)-(3) as "ready" and (4) as "teardown" with perf_counter and
prints one JSON line. The parent reports, per run, the max over ranks of both,
plus the wall time from spawning the children to all of them exiting (which
includes interpreter start and `import torch`). Output is one JSON line.
A run that does not finish within --timeout seconds is killed and the script
exits non-zero.
"""

import argparse
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

def child_main(args):
    start_wall = time.time()  # after interpreter start + argument parsing
    import datetime
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)  # W processes share a few cores
    world_size, kinds = load_layout(args.layout_json)
    rank = args.rank
    timeout = datetime.timedelta(seconds=args.timeout)

    init_wall = time.time()  # "import done" stamp, reported to the parent
    t0 = time.perf_counter()
    dist.init_process_group(
        "gloo", init_method="tcp://127.0.0.1:%d" % args.port,
        rank=rank, world_size=world_size, timeout=timeout)

    # Every process calls new_group for every group, in the same order.
    kept = []  # (kind, ranks, group handle)
    created = 0
    for kind, group_list in kinds:
        for ranks in group_list:
            g = dist.new_group(ranks=ranks, backend="gloo", timeout=timeout)
            created += 1
            if rank in ranks:
                kept.append((kind, ranks, g))

    # Verification: the sum of global ranks over each kept group.
    for kind, ranks, g in kept:
        t = torch.tensor([rank], dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=g)
        if t.item() != sum(ranks):
            raise RuntimeError("rank %d: %s group %s all_reduce gave %d, want %d"
                               % (rank, kind, ranks, t.item(), sum(ranks)))
    ready = time.perf_counter() - t0

    t1 = time.perf_counter()
    dist.destroy_process_group()
    teardown = time.perf_counter() - t1

    print(json.dumps({
        "rank": rank, "ready_s": ready, "teardown_s": teardown,
        "start_wall": start_wall, "init_wall": init_wall,
        "groups_created": created, "groups_kept": len(kept),
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
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=120.0)
    # Internal: child mode.
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child_main(args)

    args.layout_json = os.path.abspath(args.layout_json)
    world_size, kinds = load_layout(args.layout_json)
    expected_groups = sum(len(g) for _, g in kinds)

    runs, torch_version = [], None
    for _ in range(max(1, args.repeat)):
        spawn_wall, wall, reports = one_run(args, world_size)
        for rep in reports:
            if rep["groups_created"] != expected_groups:
                raise SystemExit("torch_groups: rank %d created %d groups, "
                                 "expected %d" % (rep["rank"],
                                                  rep["groups_created"],
                                                  expected_groups))
        torch_version = reports[0]["torch_version"]
        runs.append({
            # Slowest rank from init_process_group to verified groups.
            "init_to_ready_s": round(max(r["ready_s"] for r in reports), 4),
            "teardown_s": round(max(r["teardown_s"] for r in reports), 4),
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

    ready = [r["init_to_ready_s"] for r in runs]
    print(json.dumps({
        "peer": PEER,
        "torch_version": torch_version,
        "world_size": world_size,
        "kinds": [k for k, _ in kinds],
        "groups_created": expected_groups,
        "verified": True,  # every rank checked every kept group's all_reduce
        "runs": runs,
        "best_init_to_ready_s": min(ready),
        "median_init_to_ready_s": round(statistics.median(ready), 4),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
