#!/usr/bin/env python
"""Markdown tables laid out like the papers' tables, with the papers'
numbers (``tools/paper_results.yaml``) beside ours (``metrics.json`` /
``eval_metrics.json`` files written by tools/eval.py and tools/train.py):

    python tools/results_table.py --table unimo2_table10 \\
        --ours "UNIMO-2 demo" zs_flickr30k=output/zs/eval_metrics.json flickr30k=output/ft/eval_metrics.json \\
        --compare UNIMO-2 --out results.md

Each ``--ours LABEL ROLE=PATH ...`` adds one row; a table's columns name the
role and metric key they read (see the YAML). ``--table all`` prints every
table that one of our runs fills at least partly; ``--list`` lists the
tables. ``--compare ROW`` adds a "ours - ROW" difference row per run.
"""
import argparse
import json
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PAPERS = os.path.join(HERE, "paper_results.yaml")


def load_papers(path):
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    tables = (data or {}).get("tables")
    if not isinstance(tables, dict) or not tables:
        raise ValueError(f"{path}: no 'tables' mapping")
    for name, t in tables.items():
        for key in ("title", "source", "columns", "rows"):
            if key not in t:
                raise ValueError(f"{path}: table {name!r} has no {key!r}")
        n = len(t["columns"])
        for row, values in t["rows"].items():
            if len(values) != n:
                raise ValueError(f"{path}: table {name!r} row {row!r} has {len(values)} values for {n} columns")
    return tables


def parse_run(spec):
    """``["LABEL", "ROLE=PATH", ...]`` -> (label, {role: metrics dict}, {role: path})."""
    if len(spec) < 2:
        raise ValueError(f"--ours {' '.join(spec)}: expected LABEL ROLE=PATH [ROLE=PATH ...]")
    label, metrics, paths = spec[0], {}, {}
    for item in spec[1:]:
        role, sep, path = item.partition("=")
        if not sep or not role or not path:
            raise ValueError(f"--ours {label}: {item!r} is not ROLE=PATH")
        try:
            with open(path, encoding="utf-8") as f:
                metrics[role] = json.load(f)
        except FileNotFoundError:
            raise ValueError(f"--ours {label}: {path}: no such file") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"--ours {label}: {path}: not JSON ({e.msg}, line {e.lineno})") from None
        if not isinstance(metrics[role], dict):
            raise ValueError(f"--ours {label}: {path}: expected a JSON object of metrics")
        paths[role] = path
    return label, metrics, paths


def _value(metrics, col):
    v = metrics.get(col["role"], {}).get(col["metric"])
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _fmt(v, signed=False):
    if v is None:
        return "-"
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def render(name, table, runs, compare=None):
    """One Markdown table: the paper's rows, then ours (bold labels), then
    differences to the ``compare`` row."""
    cols = table["columns"]
    lines = [f"**{table['title']}**", "", f"Paper numbers: {table['source']}.", ""]
    lines.append("| Model | " + " | ".join(c["label"] for c in cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for row, values in table["rows"].items():
        lines.append(f"| {row} (paper) | " + " | ".join(_fmt(v) for v in values) + " |")
    ours = []
    for label, metrics, _ in runs:
        values = [_value(metrics, c) for c in cols]
        ours.append((label, values))
        lines.append(f"| **{label} (ours)** | " + " | ".join(_fmt(v) for v in values) + " |")
    if compare is not None:
        if compare not in table["rows"]:
            raise ValueError(f"--compare {compare!r}: table {name} has rows {list(table['rows'])}")
        ref = table["rows"][compare]
        for label, values in ours:
            diff = [None if a is None or b is None else a - b for a, b in zip(values, ref)]
            lines.append(f"| {label} - {compare} | " + " | ".join(_fmt(d, signed=True) for d in diff) + " |")
    missing = sorted({f"{c['role']}:{c['metric']}" for label, m, _ in runs for c in cols
                      if c["role"] in m and _value(m, c) is None})
    used = sorted({f"{role}={path}" for _, m, paths in runs for role, path in paths.items()
                   if any(c["role"] == role for c in cols)})
    lines.append("")
    if used:
        lines.append("Ours: " + ", ".join(used) + ".")
    if missing:
        lines.append("Not in our metrics files: " + ", ".join(missing) + ".")
    return "\n".join(lines).rstrip() + "\n"


def build(tables, names, runs, compare=None):
    if names == ["all"]:
        names = [n for n, t in tables.items()
                 if any(c["role"] in m for _, m, _ in runs for c in t["columns"])] or list(tables)
    unknown = [n for n in names if n not in tables]
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; known: {', '.join(tables)}")
    return "\n".join(render(n, tables[n], runs, compare) for n in names)


def main(argv=None):
    p = argparse.ArgumentParser(description="Paper-style Markdown tables of our metrics beside the papers'.")
    p.add_argument("--table", action="append", default=[], help="table name (repeatable) or 'all'")
    p.add_argument("--ours", action="append", default=[], nargs="+", metavar="LABEL ROLE=PATH",
                   help="one row of ours: a label and the metrics JSON of each role")
    p.add_argument("--compare", default=None, help="paper row to subtract from each of ours")
    p.add_argument("--papers", default=DEFAULT_PAPERS, help="paper numbers (YAML)")
    p.add_argument("--out", default="", help="write the Markdown here (default: stdout)")
    p.add_argument("--list", action="store_true", help="list the tables and their roles")
    args = p.parse_args(argv)
    try:
        tables = load_papers(args.papers)
        if args.list:
            for n, t in tables.items():
                roles = sorted({c["role"] for c in t["columns"]})
                print(f"{n}: {t['title']} (roles: {', '.join(roles)})")
            return 0
        runs = [parse_run(spec) for spec in args.ours]
        text = build(tables, args.table or ["all"], runs, args.compare)
    except (ValueError, OSError, yaml.YAMLError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
