#!/usr/bin/env python3
"""Keeps deploy/grafana/cohort-dashboard.json honest (ctest grafana_dashboard, label docs).

Checks: valid JSON; schemaVersion; a `datasource` variable of type datasource (prometheus) and a
`pool` query variable; unique panel ids; every non-row panel has a datasource and targets with an
expr; every metric name in a PromQL expr is one the code exports, and every label in a
`by (...)` clause or a `{label=...}` matcher is one of that metric's labels.

Exported metrics come from the sources: the "Metric names" comment tables of
coordinator/metrics.h and agent/agent_metrics.h (name, labels, type), each cross-checked against a
string literal "cohort_..." in the .cc/.h files of coordinator/ and agent/ (a name only in a
comment fails). Histograms also export _bucket (label le), _sum and _count.

With BINARY_DIR/bin/cohort-coordinator and cohort-agent built, the table itself is checked
against the running code: a coordinator with a one-member startup pool (backend none) and an agent
are started on port 0 and their /metrics scraped; every cohort_* series scraped, and each of its
labels, must be in the table (so a name or label that the code spells differently fails).

Usage: grafana_dashboard_test.py SOURCE_DIR [BINARY_DIR] [DASHBOARD_JSON]
"""
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.request

src = sys.argv[1]
dashboard_path = (sys.argv[3] if len(sys.argv) > 3
                  else os.path.join(src, "deploy/grafana/cohort-dashboard.json"))
errors = []


def exported_metrics():
    """name -> (labels, type) from the metrics headers' comment tables."""
    metrics = {}
    table = re.compile(r"^//\s+(cohort_[a-z0-9_]+)(\{([a-z_,]*)\})?\s+(counter|gauge|histogram)\b")
    for header, extra in (("coordinator/metrics.h", set()),
                          ("agent/agent_metrics.h", {"pool", "identity"})):
        with open(os.path.join(src, header)) as f:
            for line in f:
                m = table.match(line)
                if m:
                    labels = set(filter(None, (m.group(3) or "").split(","))) | extra
                    metrics[m.group(1)] = (labels, m.group(4))
    literals = set()
    for d in ("coordinator", "agent"):
        for name in os.listdir(os.path.join(src, d)):
            if name.endswith((".cc", ".h")):
                with open(os.path.join(src, d, name)) as f:
                    literals |= set(re.findall(r'"(cohort_[a-z0-9_]+)"', f.read()))
    for name in sorted(metrics):
        if name not in literals:
            errors.append(f"{name}: in a metrics header's table but in no string literal of the code")
            del metrics[name]
    for name in sorted(literals - set(metrics)):
        errors.append(f"{name}: exported by the code but missing from the metrics headers' tables")
    series = {}
    for name, (labels, kind) in metrics.items():
        series[name] = labels
        if kind == "histogram":
            series[name + "_bucket"] = labels | {"le"}
            series[name + "_sum"] = labels
            series[name + "_count"] = labels
    return series


def start(args):
    """Starts args; a thread moves its stdout lines to proc.lines (None at EOF)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    proc.lines = queue.Queue()

    def pump():
        for line in proc.stdout:
            proc.lines.put(line)
        proc.lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return proc


def read_line(proc, prefix, deadline):
    """The word after prefix in the first stdout line of proc that has it, before deadline."""
    while True:
        try:
            line = proc.lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise RuntimeError(f"no {prefix!r} from {proc.args[0]} in time")
        if line is None:
            raise RuntimeError(f"{proc.args[0]} closed its stdout before printing {prefix!r}")
        m = re.search(re.escape(prefix) + r"\s*(\S+)", line)
        if m:
            return m.group(1)


def scrape(url, deadline):
    with urllib.request.urlopen(url, timeout=max(1.0, deadline - time.monotonic())) as r:
        return r.read().decode()


def check_live(binary_dir, series):
    """Scrapes a real coordinator and agent; returns the cohort_* series names seen."""
    bindir = os.path.join(binary_dir, "bin")
    coordinator = os.path.join(bindir, "cohort-coordinator")
    agent = os.path.join(bindir, "cohort-agent")
    if not (os.access(coordinator, os.X_OK) and os.access(agent, os.X_OK)):
        print(f"note: {bindir} has no cohort-coordinator/cohort-agent; live scrape skipped")
        return set()
    procs = []
    seen = {}
    deadline = time.monotonic() + 30
    try:
        co = start([coordinator, "--insecure", "--listen", "127.0.0.1:0",
                    "--metrics-listen", "127.0.0.1:0", "--world-size", "1", "--backend", "none"])
        procs.append(co)
        addr = read_line(co, "listening on", deadline)
        co_url = read_line(co, "metrics on", deadline)
        ag = start([agent, "--insecure", "--coordinator", addr, "--identity", "a",
                    "--metrics-listen", "127.0.0.1:0", "--backends", "none"])
        procs.append(ag)
        ag_url = read_line(ag, "metrics on", deadline)
        # Wait (with the deadline) until the pool is READY, so the pool and group series exist.
        text = ""
        while time.monotonic() < deadline:
            text = scrape(co_url, deadline)
            if re.search(r'^cohort_pool_phase\{[^}]*phase="ready"[^}]*\} 1', text, re.M):
                break
            time.sleep(0.2)
        else:
            errors.append("live: the one-member pool did not become READY in 30s")
        text += "\n" + scrape(ag_url, deadline)
    except (OSError, RuntimeError) as e:
        errors.append(f"live scrape: {e}")
        return set()
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=10)
    for m in re.finditer(r"^(cohort_[a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", text, re.M):
        labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
        seen.setdefault(m.group(1), set()).update(labels)
    for name, labels in sorted(seen.items()):
        if name not in series:
            errors.append(f"live: {name} is exported but not in the metrics headers' tables")
        elif labels - series[name]:
            errors.append(f"live: {name} has labels {sorted(labels - series[name])} the tables do not list")
    for must in ("cohort_pool_phase", "cohort_pool_world_size", "cohort_events_total",
                 "cohort_agent_rank", "cohort_agent_group_state"):
        if must not in seen:
            errors.append(f"live: {must} not scraped")
    return set(seen)


PROMQL_WORDS = {"sum", "max", "min", "avg", "count", "topk", "bottomk", "rate", "irate", "increase",
                "histogram_quantile", "by", "without", "on", "ignoring", "group_left",
                "group_right", "label_values", "and", "or", "unless", "offset", "bool", "delta",
                "abs", "clamp_min", "clamp_max", "time", "vector", "scalar", "sort", "sort_desc",
                "absent", "changes", "resets", "deriv", "idelta", "quantile", "stddev"}


def check_expr(where, expr, series):
    # Drop string literals and durations before looking for identifiers.
    bare = re.sub(r'"[^"]*"', '""', expr)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    names = [n for n in re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", re.sub(r"\{[^}]*\}", "", bare))
             if n.startswith("cohort_")]
    others = [n for n in re.findall(r"\b([a-zA-Z_][a-zA-Z0-9_]*)\s*\(", bare)
              if n not in PROMQL_WORDS]
    for n in others:
        errors.append(f"{where}: unknown function {n!r} in {expr!r}")
    if not names:
        errors.append(f"{where}: no cohort metric in {expr!r}")
    labels = set()
    for n in names:
        if n not in series:
            errors.append(f"{where}: metric {n!r} is not exported by cohort (expr {expr!r})")
        else:
            labels |= series[n]
    if not labels:
        return
    used = set()
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", bare):
        used |= {l.strip() for l in group.split(",") if l.strip()}
    for matchers in re.findall(r"\{([^}]*)\}", bare):
        used |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    for l in sorted(used - labels):
        errors.append(f"{where}: label {l!r} is not a label of {names} (expr {expr!r})")


def main():
    series = exported_metrics()
    live = check_live(sys.argv[2], series) if len(sys.argv) > 2 else set()
    try:
        with open(dashboard_path) as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        print(f"FAIL: {dashboard_path}: {e}")
        return 1
    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36:
        errors.append(f"schemaVersion {dash.get('schemaVersion')!r}: want >= 36")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        errors.append("no `datasource` variable of type datasource, query prometheus")
    pool = variables.get("pool")
    if not pool or pool.get("type") != "query":
        errors.append("no `pool` query variable")
    else:
        q = pool.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"label_values\((\w+),\s*pool\)", q or "")
        if not m or m.group(1) not in series or "pool" not in series[m.group(1)]:
            errors.append(f"pool variable: {q!r} is not label_values(<exported metric with pool>, pool)")
    panels = []
    for p in dash.get("panels", []):
        panels.append(p)
        panels.extend(p.get("panels", []))
    ids = [p.get("id") for p in panels]
    for i in set(ids):
        if ids.count(i) > 1 or not isinstance(i, int):
            errors.append(f"panel id {i!r}: not a unique integer")
    n_exprs = 0
    for p in panels:
        if p.get("type") == "row":
            continue
        where = f"panel {p.get('id')} {p.get('title')!r}"
        if not p.get("datasource"):
            errors.append(f"{where}: no datasource")
        targets = p.get("targets") or []
        if not targets:
            errors.append(f"{where}: no targets")
        for t in targets:
            if not t.get("expr"):
                errors.append(f"{where}: target {t.get('refId')} has no expr")
                continue
            n_exprs += 1
            check_expr(where, t["expr"], series)
    if errors:
        for e in errors:
            print("FAIL:", e)
        return 1
    # The check's own test: a misspelled metric and a wrong label must be refused.
    for bad in ('sum by (pool) (rate(cohort_failure_detected_total[5m]))',
                'sum by (reason) (rate(cohort_coordinator_limit_refusals_total[5m]))'):
        check_expr("self-test", bad, series)
        if not errors:
            print(f"FAIL: the check accepted {bad!r}")
            return 1
        errors.clear()
    print(f"OK: {len(panels)} panels, {n_exprs} PromQL expressions over {len(series)} exported "
          f"series names ({len(live)} of them scraped live)")
    return 0


sys.exit(main())
