#!/usr/bin/env python3
"""The benchmarks' one summary table, and the scaling plots.

Reads the "METRIC <name> <value> <unit>" lines the benchmarks print (scale_bench, flow_bench, ...)
from the logs given, prints one markdown table (metric, value, target, peer, ratio) and writes it
with PNG plots (time, coordinator CPU and memory against the number of agents) to OUT_DIR
(default bench/results).

  usage: summarize.py [--out OUT_DIR] LOG...

Ratio: target / value for "lower is better" targets (above 1: the target is met with room), and
peer / value against a peer's figure (above 1: cohort is faster). Nothing here measures; a metric
no log has is left out.
"""

import argparse
import datetime
import os
import re
import sys

# (metric, target, peer, peer's value, what the row means). Targets are upper bounds ("< 1000").
ROWS = [
    ("scale.n1024.join.wall_ms", None, None, None, "1,024 agents: all joined"),
    ("scale.n1024.init.to_pool_ready_ms", None, None, None, "1,024 agents: Initialize -> READY"),
    ("scale.n4096.join.wall_ms", None, None, None, "4,096 agents: all joined"),
    ("scale.n4096.init.to_pool_ready_ms", 1000, None, None, "4,096 agents: Initialize -> READY"),
    ("scale.n4096.steady.coordinator_cpu_pct", 25, None, None,
     "4,096 agents, heartbeats: coordinator CPU (% of a core)"),
    ("scale.n4096.abort.fanout_all_survivors_ms", 1000, None, None,
     "4,096 agents: 1 % killed -> every survivor aborted"),
    ("scale.n4096.abort.generations_started", None, None, None,
     "4,096 agents: generations the 1 % kill started"),
    ("scale.n4096.abort.to_pool_ready_again_ms", None, None, None,
     "4,096 agents: 1 % killed -> READY again with standbys"),
    ("scale.n4096.destroy.all_torn_down_ms", None, None, None,
     "4,096 agents: Destroy -> every member torn down"),
    ("scale.n4096.init.max_plan_bytes", None, None, None, "4,096 agents: largest plan"),
    ("scale.n4096.coordinator_peak_rss_mb", None, None, None, "4,096 agents: coordinator peak RSS"),
    ("scale.n16384.join.wall_ms", None, None, None, "16,384 agents (heartbeats 4 s): all joined"),
    ("scale.n16384.init.to_pool_ready_ms", 5000, None, None,
     "16,384 agents (heartbeats 4 s): Initialize -> READY"),
    ("scale.n16384.steady.coordinator_cpu_pct", None, None, None,
     "16,384 agents, heartbeats every 4 s: coordinator CPU (% of a core)"),
    ("scale.n16384.abort.fanout_all_survivors_ms", 1000, None, None,
     "16,384 agents (heartbeats 4 s): 1 % killed -> every survivor aborted"),
    ("scale.n16384.abort.generations_started", None, None, None,
     "16,384 agents (heartbeats 4 s): generations the 1 % kill started"),
    ("scale.n16384.abort.to_pool_ready_again_ms", None, None, None,
     "16,384 agents (heartbeats 4 s): 1 % killed -> READY again with standbys"),
    ("scale.n16384.destroy.all_torn_down_ms", None, None, None,
     "16,384 agents (heartbeats 4 s): Destroy -> every member torn down"),
    ("scale.n16384.coordinator_peak_rss_mb", 200, None, None,
     "16,384 agents (heartbeats 4 s): coordinator peak RSS (MB)"),
    ("latency.c1.kv_get.p50_ms", 0.15, "torch TCPStore get", 0.058, "store get p50, 1 client"),
    ("latency.c1.kv_get.p99_ms", None, None, None, "store get p99, 1 client"),
    ("latency.c64.kv_get.p50_ms", 0.15, "torch TCPStore get", 0.058, "store get p50, 64 clients"),
    ("latency.c1.kv_set.p50_ms", None, "XLA coordination service", 0.4, "store set p50, 1 client"),
    ("latency.c1.join.p50_ms", None, None, None, "Join p50, 1 client"),
    ("latency.c64.join.p99_ms", None, None, None, "Join p99, 64 clients"),
    ("latency.c1.get_state_one_rank.p50_ms", None, None, None, "GetState (one rank) p50"),
    ("latency.c64.get_state_one_rank.p50_ms", None, None, None, "GetState (one rank) p50, 64 clients"),
    ("latency.c1.get_state_pool_w1024.p50_ms", None, None, None,
     "GetState (whole pool of 1,024) p50"),
    ("latency.c1.grpc_floor.p50_ms", None, None, None,
     "gRPC floor: a call the coordinator refuses at once, p50"),
    ("flow.world4.cohort_median_ms", None, "torch.distributed (gloo)", "flow.world4.torch_median_ms",
     "world 4: Initialize -> READY"),
    ("flow.world8.cohort_median_ms", None, "torch.distributed (gloo)", "flow.world8.torch_median_ms",
     "world 8: Initialize -> READY"),
    ("flow.world16.cohort_median_ms", None, "torch.distributed (gloo)",
     "flow.world16.torch_median_ms", "world 16: Initialize -> READY"),
    ("flow.world4.cohort_total_with_teardown_median_ms", None, "torch.distributed (gloo)",
     "flow.world4.torch_total_with_teardown_median_ms",
     "world 4: Initialize -> READY, then destroy everything -> torn down"),
    ("flow.world8.cohort_total_with_teardown_median_ms", None, "torch.distributed (gloo)",
     "flow.world8.torch_total_with_teardown_median_ms",
     "world 8: Initialize -> READY, then destroy everything -> torn down"),
    ("flow.world16.cohort_total_with_teardown_median_ms", None, "torch.distributed (gloo)",
     "flow.world16.torch_total_with_teardown_median_ms",
     "world 16: Initialize -> READY, then destroy everything -> torn down"),
    ("flow.world4.cohort_relayout_median_ms", None, "torch.distributed (gloo)",
     "flow.world4.torch_relayout_median_ms",
     "world 4: model-parallel destroy -> another layout READY (world kept)"),
    ("flow.world8.cohort_relayout_median_ms", None, "torch.distributed (gloo)",
     "flow.world8.torch_relayout_median_ms",
     "world 8: model-parallel destroy -> another layout READY (world kept)"),
    ("flow.world16.cohort_relayout_median_ms", None, "torch.distributed (gloo)",
     "flow.world16.torch_relayout_median_ms",
     "world 16: model-parallel destroy -> another layout READY (world kept)"),
]

METRIC = re.compile(r"^METRIC (\S+) (\S+) (\S+)$")


def read_metrics(paths):
    metrics = {}
    for path in paths:
        with open(path, errors="replace") as f:
            for line in f:
                m = METRIC.match(line.strip())
                if m:
                    try:
                        metrics[m.group(1)] = (float(m.group(2)), m.group(3))
                    except ValueError:
                        pass
    return metrics


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def table(metrics):
    lines = ["| metric | value | target | peer | ratio |", "| --- | --- | --- | --- | --- |"]
    for name, target, peer, peer_value, what in ROWS:
        if name not in metrics:
            continue
        value, unit = metrics[name]
        if isinstance(peer_value, str):  # another metric of the same run
            peer_value = metrics.get(peer_value, (None, ""))[0]
        ratio = "-"
        target_text = "-"
        if target is not None:
            met = value < target
            target_text = f"< {fmt(target)} ({'met' if met else 'MISSED'})"
            if value > 0:
                ratio = f"{target / value:.1f}x"
        peer_text = "-"
        if peer is not None and peer_value is not None:
            peer_text = f"{peer}: {fmt(peer_value)}"
            if value > 0:
                ratio = f"{peer_value / value:.1f}x vs peer"
        lines.append(f"| {what} (`{name}`) | {fmt(value)} {unit} | {target_text} | {peer_text} | "
                     f"{ratio} |")
    return lines


def plots(metrics, out_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no plots: python3-matplotlib is not installed)", file=sys.stderr)
        return []
    sizes = sorted({int(m.group(1)) for name in metrics
                    for m in [re.match(r"scale\.n(\d+)\.", name)] if m})
    if not sizes:
        return []
    written = []
    panels = [
        ("scale_time.png", "time (ms)",
         [("join.wall_ms", "all joined"), ("init.to_pool_ready_ms", "Initialize -> READY"),
          ("abort.fanout_all_survivors_ms", "1 % killed -> survivors aborted"),
          ("destroy.all_torn_down_ms", "destroy")]),
        ("scale_cpu.png", "coordinator CPU (% of one core)",
         [("join.coordinator_cpu_pct", "join"), ("init.coordinator_cpu_pct", "init"),
          ("steady.coordinator_cpu_pct", "steady heartbeats")]),
        ("scale_memory.png", "coordinator RSS (MB)",
         [("coordinator_peak_rss_mb", "peak"), ("steady.coordinator_rss_mb", "steady")]),
    ]
    for file_name, ylabel, series in panels:
        fig, ax = plt.subplots(figsize=(6, 4))
        drawn = False
        for suffix, label in series:
            xs = [n for n in sizes if f"scale.n{n}.{suffix}" in metrics]
            if not xs:
                continue
            ax.plot(xs, [metrics[f"scale.n{n}.{suffix}"][0] for n in xs], marker="o", label=label)
            drawn = True
        if not drawn:
            plt.close(fig)
            continue
        ax.set_xscale("log", base=2)
        ax.set_xlabel("simulated agents")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = os.path.join(out_dir, file_name)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(file_name)
    return written


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    parser.add_argument("logs", nargs="+")
    args = parser.parse_args()
    metrics = read_metrics(args.logs)
    if not metrics:
        print("error: no METRIC lines in " + ", ".join(args.logs), file=sys.stderr)
        return 1
    rows = table(metrics)
    print("\n".join(rows))
    os.makedirs(args.out, exist_ok=True)
    images = plots(metrics, args.out)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(f"# Benchmark summary ({stamp}, `make bench` on this machine)\n\n")
        f.write("\n".join(rows) + "\n\n")
        for image in images:
            f.write(f"![{image}]({image})\n")
        f.write("\n## Every metric\n\n| metric | value |\n| --- | --- |\n")
        for name in sorted(metrics):
            value, unit = metrics[name]
            f.write(f"| `{name}` | {fmt(value)} {unit} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
