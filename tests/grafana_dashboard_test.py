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

Usage: grafana_dashboard_test.py SOURCE_DIR [BINARY_DIR] [DASHBOARD_JSON]
"""
import json
import os
import re
import sys

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
    print(f"OK: {len(panels)} panels, {n_exprs} PromQL expressions over {len(series)} exported series names")
    return 0


sys.exit(main())
