#!/usr/bin/env python
"""The documented results, from the runs that produce them.

    python tools/results.py run SUITE [SUITE ...] [--seeds 0 1 2] [--jobs 2]   # run, write docs/results/SUITE.json
    python tools/results.py render [--check]                         # fill the docs' result blocks
    python tools/results.py list

A suite (``docs/results/suites.yaml``) is a set of runs, each a few command
lines templated by ``{seed}``, ``{out}`` and the run's own ``vars``, and the metrics to read from
the JSON files the commands write (a suite's own ``vars`` apply to all its
runs; a run's ``load:`` runs N busy processes or N copies of a real job beside
it, see :class:`background_load`). ``run``
executes every run for every seed (a run whose outputs are complete is not
redone: a killed study resumes; commands appended to a finished run run
alone), then writes ``docs/results/SUITE.json`` with every per-seed value,
the wall time of each command, and where it was measured (commit, date,
processor, load, library versions). ``render`` rewrites each block between
``<!-- results:SUITE -->`` and ``<!-- /results:SUITE -->`` in README.md and
docs/*.md from that JSON alone: a table with the mean and the range
(min-max) over the seeds (or, with ``{metric:ci}``, the mean and its 95 %
confidence interval), and the provenance. ``--check`` changes nothing
and exits 1 if a block is not what the JSON gives (CI runs it).

Why ranges: the runs are bit-for-bit repeatable on one machine, but another
processor takes other floating-point paths (MKL picks kernels by CPU), so a
fresh clone elsewhere draws another value -- from about the seed range.
"""
import argparse
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from vlcore.formats.sharded import atomic_open  # noqa: E402

RESULTS = os.path.join(ROOT, "docs", "results")
SUITES = os.path.join(RESULTS, "suites.yaml")
DOCS = [os.path.join(ROOT, "README.md")]
BLOCK = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)
FIELD = re.compile(r"\{(\w+)(?::([^}]*))?\}")


def load_suites(path=None):
    path = path or SUITES
    with open(path, encoding="utf-8") as f:
        suites = yaml.safe_load(f)
    for name, s in suites.items():
        for key in ("title", "seeds", "runs", "columns"):
            if key not in s:
                raise ValueError(f"{path}: suite {name!r} has no {key!r}")
        seen = set()
        for run in s["runs"]:
            # a suite's vars (e.g. the config and data directory its runs share) under each run's own
            run["vars"] = {**(s.get("vars") or {}), **(run.get("vars") or {})}
            for key in ("name", "out", "commands", "metrics"):
                if key not in run:
                    raise ValueError(f"{path}: suite {name!r} run {run.get('name')!r} has no {key!r}")
            if run["name"] in seen:  # rows are matched to results by name
                raise ValueError(f"{path}: suite {name!r} has two runs named {run['name']!r}")
            seen.add(run["name"])
    return suites


# ------------------------------------------------------------------ running
def _git(*args):
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _commit():
    """The checked-out commit, marked when the working tree differs from it
    in anything but the figures this tool writes (docs/results/*.json: a
    suite run after another would otherwise be marked by the first one's
    output)."""
    changed = _git("status", "--porcelain", "--untracked-files=no").splitlines()
    paths = [line.split(None, 1)[-1] for line in changed]  # "XY path" (the first line's blank stripped)
    dirty = any(not (p.startswith("docs/results/") and p.endswith(".json")) for p in paths)
    return _git("rev-parse", "--short", "HEAD") + ("+local changes" if dirty else "")


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions():
    import importlib.metadata as md
    out = {}
    for pkg in ("paddlepaddle", "paddlepaddle-gpu", "numpy", "opencv-python-headless", "tokenizers", "Pillow"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _read_metric(out, spec):
    """``file.json:key`` (nested keys with dots, list positions as numbers;
    ``*factor`` scales) under the run directory. A string value (e.g. a
    benchmark's "UNSTABLE ..." instead of a ratio) is kept as it is."""
    spec, _, factor = spec.partition("*")
    path, _, key = spec.partition(":")
    with open(os.path.join(out, path), encoding="utf-8") as f:
        value = json.load(f)
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]  # "runs.0.wall_s"
    if isinstance(value, str) and not factor:
        return value
    return float(value) * float(factor or 1)


def _done_marker(out):
    return os.path.join(out, ".results_done.json")


def _commands(run, seed):
    """The run directory and command lines of ``run`` for ``seed``:
    templates filled with ``{seed}``, ``{out}`` and the run's ``vars``."""
    fields = {k: str(v) for k, v in (run.get("vars") or {}).items()}
    fields["seed"] = str(seed)
    out = _fill(run["out"], fields)
    fields["out"] = out
    return out, [_fill(c, fields) for c in run["commands"]]


def _fill(template, fields):
    """``{name}`` of a known field becomes its value; any other braces stay
    (a command may carry a YAML mapping or a prompt's ``{label}``)."""
    return re.sub(r"\{(\w+)\}", lambda m: fields.get(m.group(1), m.group(0)), template)


def _done_seconds(out, commands):
    """The wall times of a finished run of exactly these commands, or None."""
    marker = _done_marker(os.path.join(ROOT, out))
    if not os.path.isfile(marker):
        return None
    with open(marker, encoding="utf-8") as f:
        done = json.load(f)
    return done["seconds"] if done.get("key") == _key(commands) else None


def _finished_prefix(out, commands):
    """The wall times of a finished run whose commands are the first of
    these (an evaluation added to a finished study), else ``[]``."""
    marker = _done_marker(os.path.join(ROOT, out))
    if not os.path.isfile(marker):
        return []
    with open(marker, encoding="utf-8") as f:
        done = json.load(f)
    have = done.get("commands") or []
    ok = have and done.get("key") == _key(have) and commands[:len(have)] == have
    return list(done["seconds"]) if ok else []


def _key(commands):
    return hashlib.sha1("\n".join(commands).encode()).hexdigest()[:12]


def execute(run, seed, log=print, log_file=None, threads=None):
    """Run the commands of ``run`` for ``seed`` (unless done before) and
    write the done marker; output goes to the terminal, or to ``log_file``
    (under the run directory) when jobs run side by side. ``threads`` sets
    OMP_NUM_THREADS for the commands (a share of the cores per job)."""
    out, commands = _commands(run, seed)
    if _done_seconds(out, commands) is not None or not commands:
        return
    seconds = [] if run.get("fresh") else _finished_prefix(out, commands)
    if run.get("fresh"):  # e.g. the quick start's own output dir: time a run from scratch
        shutil.rmtree(os.path.join(ROOT, out), ignore_errors=True)
    elif seconds:  # an evaluation added to a finished run: only the new commands run
        log(f"[results] {run['name']} seed {seed}: {len(seconds)} of {len(commands)} commands done before")
    env = dict(os.environ)
    if threads and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(threads)
    with background_load(run.get("load", 0), f"{run['name']} seed {seed}"):
        _run_commands(run, seed, out, commands, seconds, env, log, log_file)
    _write_json(_done_marker(os.path.join(ROOT, out)), {"key": _key(commands), "commands": commands,
                                                         "seconds": seconds, "commit": _commit(),
                                                         "finished": time.strftime("%Y-%m-%d %H:%M:%S")})


def _provenance(suite, seeds):
    """``(commit, date)`` of the runs behind a suite's figures, from their
    done markers: a study that resumed over days was measured at every
    commit and on every day its runs finished, not only in the last
    invocation. Markers written before they recorded it give the day (the
    file's time) but not the commit, and are counted as such. ``None``
    when no run has a marker (nothing ran)."""
    by_dir = {}  # runs that share a directory (e.g. "w/o GD (I)") finished once
    for run in suite["runs"]:
        for seed in (run.get("seeds") or seeds):
            out, commands = _commands(run, seed)
            marker = _done_marker(os.path.join(ROOT, out))
            if not commands or out in by_dir or not os.path.isfile(marker):
                continue
            with open(marker, encoding="utf-8") as f:
                done = json.load(f)
            when = done.get("finished") or time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(marker)))
            by_dir[out] = (when, done.get("commit"))
    if not by_dir:
        return None
    finished = sorted(by_dir.values(), key=lambda x: x[0])
    commits = [c for _, c in finished if c]
    days = [w[:10] for w, _ in finished]
    span = lambda first, last: first if first == last else f"{first} to {last}"  # noqa: E731
    commit = span(commits[0], commits[-1]) if commits else "(not recorded)"
    unknown = sum(1 for _, c in finished if not c)
    if commits and unknown:
        commit += f" ({unknown} run{'s' if unknown > 1 else ''} finished before the commit was recorded)"
    return commit, span(days[0], days[-1])


# One busy process: single-threaded fp32 matmuls, the kind of work a training job does. It stops by
# itself when its parent is gone (killed before it could stop them): its parent id then changes.
_BUSY = ("import os; os.environ['OMP_NUM_THREADS'] = '1'; import numpy as np; parent = os.getppid(); "
         "a = np.random.default_rng(0).random((256, 256), dtype=np.float32)\n"
         "while os.getppid() == parent: a = (a @ a) * 1e-3 + 1")


class background_load:
    """``load:`` in a run, so that "under load" is a condition the suite
    reproduces rather than whatever else the machine was doing, held for as
    long as the run's commands take:

    - ``N``: N busy processes, one core each;
    - ``{jobs: N, command: CMD}``: N copies of a real job, one thread each, as
      ``tools/ablations.py --jobs N`` runs them (``{job}`` in CMD is the
      copy's index, ``{tmp}`` a scratch directory removed afterwards). A copy
      that ends before the commands do fails the run: the condition did not
      hold for all of it. Each copy is killed with its process group and,
      on Linux, dies with this process even if it is killed first."""

    def __init__(self, spec, name="load"):
        self.spec, self.name, self.procs, self.tmp = spec, name, [], []

    def __enter__(self):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        if not isinstance(self.spec, dict):
            self.procs = [subprocess.Popen([sys.executable, "-c", _BUSY], env=env, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL) for _ in range(int(self.spec or 0))]
            return self
        for job in range(int(self.spec.get("jobs", 1))):
            self.tmp.append(tempfile.mkdtemp(prefix="vl_load_"))
            argv = shlex.split(self.spec["command"].format(job=job, tmp=self.tmp[-1]))
            if argv[0] == "python":
                argv[0] = sys.executable
            log = open(os.path.join(self.tmp[-1], "job.log"), "wb")
            self.procs.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True, preexec_fn=_die_with_parent))
            log.close()
        return self

    def __exit__(self, *exc):
        ended = [(i, code) for i, code in enumerate(p.poll() for p in self.procs) if code is not None]
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL) if isinstance(self.spec, dict) else p.kill()
            except ProcessLookupError:
                pass
        for p in self.procs:
            p.wait()
        tails = {i: _tail(os.path.join(self.tmp[i], "job.log")) for i, _ in ended} if self.tmp else {}
        for d in self.tmp:
            shutil.rmtree(d, ignore_errors=True)
        if isinstance(self.spec, dict) and ended and exc[0] is None:
            i, code = ended[0]
            raise RunFailed(f"{self.name}: its load job {i} ended (exit {code}) before the commands did, so they "
                            f"did not run under load: {self.spec['command']}; its last output: {tails[i]}")
        return False


def _die_with_parent():
    """Ask Linux to kill this child when its parent dies (prctl
    PR_SET_PDEATHSIG), so a killed study leaves no load job behind."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _tail(path, n=300):
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode(errors="replace").strip().replace("\n", " | ") or "(none)"
    except OSError:
        return "(none)"


def _run_commands(run, seed, out, commands, seconds, env, log, log_file):
    for cmd in commands[len(seconds):]:
        log(f"[results] {run['name']} seed {seed}: {cmd}")
        t0 = time.time()
        argv, cmd_env = _env_prefix(shlex.split(cmd), env)
        if argv[0] == "python":  # the interpreter running this script (the venv's)
            argv[0] = sys.executable
        if log_file:
            path = os.path.join(ROOT, out, log_file)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"$ {cmd}\n")
                f.flush()
                r = subprocess.run(argv, cwd=ROOT, env=cmd_env, stdout=f, stderr=subprocess.STDOUT)
        else:
            r = subprocess.run(argv, cwd=ROOT, env=cmd_env)
        if r.returncode != 0:
            where = f"; its output: {os.path.join(out, log_file)}" if log_file else ""
            raise RunFailed(f"{run['name']} seed {seed}: command failed (exit {r.returncode}): {cmd}{where}")
        seconds.append(round(time.time() - t0, 1))


def _env_prefix(argv, env):
    """``VAR=value ... cmd args``, as a shell reads it: the leading
    assignments go into the command's environment (e.g. a benchmark on one
    thread, ``OMP_NUM_THREADS=1 python bench/...``), so the line in the docs
    runs as it is in a shell too."""
    env = dict(env)
    while argv and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[0]):
        key, _, value = argv.pop(0).partition("=")
        env[key] = value
    return argv, env


class RunFailed(RuntimeError):
    pass


def run_one(run, seed, log=print):
    """Run ``run`` for ``seed`` unless a finished run of the same commands is
    on disk; return ``{"seed", "metrics", "seconds"}``."""
    out, commands = _commands(run, seed)
    seconds = _done_seconds(out, commands)
    if seconds is not None:
        log(f"[results] {run['name']} seed {seed}: done before ({out}), reading its metrics")
    else:
        try:
            execute(run, seed, log)
        except RunFailed as e:
            raise SystemExit(f"error: {e}")
        seconds = _done_seconds(out, commands) or []
    fields = {k: str(v) for k, v in (run.get("vars") or {}).items()}  # e.g. {gpu} in a metric's key
    metrics = {name: _read_metric(os.path.join(ROOT, out), _fill(spec, fields))
               for name, spec in run["metrics"].items()}
    for i, s in enumerate(seconds):
        metrics[f"minutes_{i}"] = round(s / 60.0, 2)
    return {"seed": seed, "out": out, "metrics": metrics, "seconds": seconds}


def run_parallel(suite, seeds, jobs, log=print):
    """Execute the suite's runs ``jobs`` at a time (seed by seed), each job
    with a share of the cores (OMP_NUM_THREADS), its output in
    ``<out>/results.log``. Runs
    that share a directory and commands (two metric views of one training)
    execute once. Every run is tried; failures are reported together."""
    from concurrent.futures import ThreadPoolExecutor
    tasks, seen = [], set()
    # seed-major: every variant of the first seed before any second seed, so
    # failures show early and a study stopped midway covers every variant
    order = sorted(((i, run, seed) for i, run in enumerate(suite["runs"]) for seed in run.get("seeds") or seeds),
                   key=lambda t: (t[2], t[0]))
    for _, run, seed in order:
        out, commands = _commands(run, seed)
        if commands and (out, _key(commands)) not in seen and _done_seconds(out, commands) is None:
            seen.add((out, _key(commands)))
            tasks.append((run, seed))
    threads = max(1, len(os.sched_getaffinity(0)) // jobs)
    log(f"[results] {len(tasks)} runs to do, {jobs} at a time, {threads} thread(s) each")
    failed = []

    def one(task):
        try:
            execute(task[0], task[1], log, log_file="results.log", threads=threads)
            log(f"[results] {task[0]['name']} seed {task[1]}: done")
        except RunFailed as e:
            failed.append(str(e))
            log(f"[results] error: {e}")
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, tasks))
    if failed:
        raise SystemExit("error: " + "; ".join(failed))


def run_suite(name, suite, seeds=None, log=print, jobs=1):
    seeds = list(seeds if seeds is not None else suite["seeds"])
    start = {"load_avg": [round(x, 2) for x in os.getloadavg()], "time": time.strftime("%Y-%m-%d %H:%M"),
             "commit": _commit()}
    ran = any(_done_seconds(*_commands(run, seed)) is None
              for run in suite["runs"] for seed in (run.get("seeds") or seeds) if _commands(run, seed)[1])
    if jobs > 1:
        run_parallel(suite, seeds, jobs, log)
    runs = []
    for run in suite["runs"]:
        per_seed = [run_one(run, seed, log) for seed in (run.get("seeds") or seeds)]
        runs.append({"name": run["name"], "seeds": per_seed})
    path = os.path.join(RESULTS, f"{name}.json")
    if not ran and os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        if old.get("runs") == runs:  # nothing ran now: the file's commit, date and load are the measurement's
            log(f"[results] nothing new to run; {os.path.relpath(path, ROOT)} kept as measured")
            return old
    end_commit = _commit()
    commit, date = _provenance(suite, seeds) or (
        start["commit"] if end_commit == start["commit"] else f"{start['commit']} to {end_commit}",
        time.strftime("%Y-%m-%d"))
    result = {"suite": name, "command": f"python tools/results.py run {name}" +
              (f" --seeds {' '.join(map(str, seeds))}" if seeds != suite["seeds"] else "") +
              (f" --jobs {jobs}" if jobs > 1 else ""),
              "commit": commit, "date": date,
              "machine": {"cpu": _cpu_model(), "cores": len(os.sched_getaffinity(0)),
                          "load_avg_at_start": start["load_avg"],
                          "load_avg_at_end": [round(x, 2) for x in os.getloadavg()]},
              "versions": _versions(), "runs": runs}
    _write_json(path, result)
    log(f"[results] wrote {os.path.relpath(path, ROOT)}")
    return result


def _write_json(path, obj):
    with atomic_open(path) as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


# ------------------------------------------------------------------ rendering
def _stat(values, fmt):
    lo, hi, mean = min(values), max(values), sum(values) / len(values)
    if len(values) == 1 or f"{lo:{fmt}}" == f"{hi:{fmt}}":
        return f"{mean:{fmt}}"
    return f"{mean:{fmt}} ({lo:{fmt}}-{hi:{fmt}})"


def _interval(values, fmt):
    """``mean +- h`` with ``h`` the half-width of the 95 % confidence
    interval of the mean (vlcore.tasks.metrics.mean_interval); one value has
    no interval."""
    from vlcore.tasks.metrics import mean_interval
    mean, half = mean_interval(values)
    return f"{mean:{fmt}}" if len(values) < 2 else f"{mean:{fmt}} +- {half:{fmt}}"


def _cell(template, seeds):
    """Fill ``{metric}`` / ``{metric:.2f}`` fields with mean (min-max), and
    ``{metric:ci}`` / ``{metric:ci.2f}`` with mean +- the 95 % interval."""
    def sub(m):
        name, fmt = m.group(1), m.group(2) or ".1f"
        values = [s["metrics"][name] for s in seeds if name in s["metrics"]]
        if not values:
            raise KeyError(f"no metric {name!r}")
        if any(isinstance(v, str) for v in values):  # text as measured, once per distinct value
            return " / ".join(dict.fromkeys(str(v) for v in values))
        if fmt.startswith("ci"):
            return _interval(values, fmt[2:] or ".1f")
        return _stat(values, fmt)
    return FIELD.sub(sub, template)


def render_suite(suite, data):
    by_name = {r["name"]: r for r in data["runs"]}
    head = ["run"] + [c[0] for c in suite["columns"]]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for run in suite["runs"]:
        r = by_name.get(run["name"])
        if r is None:
            raise KeyError(f"suite {data['suite']!r}: no results for run {run['name']!r}; run it again")
        cells = []
        for label, template in suite["columns"]:
            cells.append(_cell(run.get("cells", {}).get(label, template), r["seeds"]))
        lines.append("| " + " | ".join([run["name"]] + cells) + " |")
    seeds = sorted({s["seed"] for r in data["runs"] for s in r["seeds"]})
    m = data["machine"]
    where = (f"generated by `python tools/results.py render` from `docs/results/{data['suite']}.json`, "
             f"measured with `{data['command']}` at commit {data['commit']} on {data['date']} ({m['cpu']}, "
             f"{m['cores']} cores; load average {m['load_avg_at_start'][0]:.1f} at the start, "
             f"{m['load_avg_at_end'][0]:.1f} at the end" +
             (": times grow with the load)" if "minutes_" in json.dumps(suite) else ")"))
    if suite.get("deterministic"):
        note = f"\nOne measurement, {where}.\n"
    elif any(":ci" in c[1] for c in suite["columns"]):
        note = (f"\nMean +- the half-width of its 95 % confidence interval (Student's t) over seeds "
                f"{', '.join(map(str, seeds))}; {where}. Each seed repeats bit for bit on one machine; the interval "
                "is about the seeds, which is what another machine's floating-point paths also vary.\n")
    else:
        note = (f"\nMean (min-max) over seeds {', '.join(map(str, seeds))}; {where}. Each seed repeats bit for "
                "bit on one machine; another processor takes other floating-point paths and draws another "
                "value, expect it within about this range.\n")
    if suite.get("note"):
        note += "\n" + suite["note"].strip() + "\n"
    if suite.get("paired"):
        note += "\n" + _paired_table(suite["paired"], suite["runs"], by_name)
    if suite.get("agreement"):
        note += "\n" + _agreement_table(suite["agreement"], by_name)
    return "\n".join(lines) + "\n" + note


def _agreement_table(spec, by_name):
    """``agreement: {ratios: [[label, RATIO, SPREAD, STABLE, FMT], ...],
    pairs: [[RUN, OTHER RUN], ...]}``: whether a benchmark's ratio, measured
    in two runs (one of them beside another job), agrees with itself. Two
    medians agree when they differ by no more than the sum of their stated
    spreads (the half-widths of their 95 % intervals); a run that printed
    UNSTABLE or OVERSUBSCRIBED instead of a figure does not agree with
    anything. The metrics
    are the benchmark's (bench/common.py ratio_summary) for the first seed."""
    lines = ["| ratio | run | other run | medians | difference | sum of the spreads | agree |",
             "|" + " --- |" * 7]
    for a, b in spec["pairs"]:
        ma, mb = by_name[a]["seeds"][0]["metrics"], by_name[b]["seeds"][0]["metrics"]
        for label, ratio, spread, stable, fmt in spec["ratios"]:
            if ratio not in ma or ratio not in mb:
                continue
            diff, both = abs(ma[ratio] - mb[ratio]), ma[spread] + mb[spread]
            if not (ma[stable] and mb[stable]):
                verdict = ("no: " + " and ".join(n for n, m in ((a, ma), (b, mb)) if not m[stable])
                           + " gave no figure (its row says why)")
            else:
                verdict = "yes" if diff <= both else "**no**"
            lines.append(f"| {label} | {a} | {b} | {ma[ratio]:{fmt}} / {mb[ratio]:{fmt}} | {diff:{fmt}} | "
                         f"{both:{fmt}} | {verdict} |")
    return ("Two runs of each ratio (quiet and beside other jobs, or quiet twice): they agree when their medians "
            "differ by no more than the sum of their stated spreads (the +- above, each the half-width of a 95 % "
            "interval).\n\n"
            + "\n".join(lines) + "\n")


def _paired_table(spec, runs, by_name):
    """``paired: {reference: RUN, columns: [[label, "{metric}"], ...]}``:
    each run's value minus the reference run's of the same seed, mean +- the
    95 % interval of the differences. Runs of one seed share its data order
    (where their data are the same) and much of their initialisation, so the
    variation that comes with the seed, and that all runs share, cancels in
    the difference; an effect too small for the intervals of the means can
    show here."""
    from vlcore.tasks.metrics import mean_interval
    ref_name = spec["reference"]
    ref = {s["seed"]: s["metrics"] for s in by_name[ref_name]["seeds"]}
    lines = ["| run | " + " | ".join(label for label, _ in spec["columns"]) + " |",
             "|" + " --- |" * (1 + len(spec["columns"]))]
    for run in runs:
        r = by_name[run["name"]]
        if run["name"] == ref_name:
            continue
        cells = []
        for _, template in spec["columns"]:
            name, fmt = FIELD.fullmatch(template).groups()
            fmt = fmt or ".1f"
            diffs = [s["metrics"][name] - ref[s["seed"]][name] for s in r["seeds"]
                     if s["seed"] in ref and name in s["metrics"] and name in ref[s["seed"]]]
            if len(diffs) < 2:
                cells.append("")
                continue
            mean, half = mean_interval(diffs)
            cell = f"{mean:+{fmt}} +- {half:{fmt}}"
            cells.append(f"**{cell}**" if abs(mean) > half else cell)
        if any(cells):  # not e.g. the chance row
            lines.append("| " + " | ".join([run["name"]] + cells) + " |")
    return (f"Paired by seed, each run minus {ref_name} on the same seed:\n\n" + "\n".join(lines) +
            "\n\nMean +- the half-width of the 95 % confidence interval of the per-seed differences (Student's t); "
            "**bold**: the interval excludes 0. A run's seed fixes its data order (where the data are the same) and "
            "much of its initialisation, so what varies with the seed alone cancels in the difference. Each "
            "interval alone is a 95 % one: among 20 cells with no real difference, about one is bold by chance.\n")


def render(check=False, docs=None, log=print):
    """Rewrite (or, with ``check``, compare) every result block; returns the
    list of stale block names."""
    suites = load_suites()
    stale = []
    for doc in docs or DOCS + sorted(_doc_pages()):
        with open(doc, encoding="utf-8") as f:
            text = f.read()

        def sub(m):
            name = m.group("name")
            if name not in suites:
                raise KeyError(f"{doc}: block {name!r} names no suite in {SUITES}")
            with open(os.path.join(RESULTS, f"{name}.json"), encoding="utf-8") as f:
                data = json.load(f)
            body = render_suite(suites[name], data)
            if body != m.group("body"):
                stale.append(f"{os.path.relpath(doc, ROOT)}:{name}")
            return m.group(1) + body + m.group(4)
        new = BLOCK.sub(sub, text)
        if new != text and not check:
            with atomic_open(doc) as f:
                f.write(new)
            log(f"[results] updated {os.path.relpath(doc, ROOT)}")
    return stale


def _doc_pages():
    d = os.path.join(ROOT, "docs")
    return [os.path.join(d, n) for n in os.listdir(d) if n.endswith(".md")] if os.path.isdir(d) else []


def blocks(docs=None):
    """``{suite: [page, ...]}``: where each result block is (README.md and
    docs/*.md, paths relative to the repository)."""
    found = {}
    for doc in docs or DOCS + sorted(_doc_pages()):
        with open(doc, encoding="utf-8") as f:
            for m in BLOCK.finditer(f.read()):
                found.setdefault(m.group("name"), []).append(os.path.relpath(doc, ROOT))
    return found


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run suites and write docs/results/<suite>.json")
    r.add_argument("suites", nargs="+")
    r.add_argument("--seeds", nargs="+", type=int, help="override the suite's seeds")
    r.add_argument("--jobs", type=int, default=1,
                   help="runs side by side, each with a share of the cores (outputs in <out>/results.log)")
    c = sub.add_parser("render", help="fill the docs' result blocks from docs/results/*.json")
    c.add_argument("--check", action="store_true", help="exit 1 if a block is stale; change nothing")
    sub.add_parser("list", help="the suites and their runs")
    args = ap.parse_args(argv)
    try:
        suites = load_suites()
        if args.cmd == "list":
            for name, s in suites.items():
                print(f"{name}: {s['title']} (seeds {s['seeds']}; runs: {', '.join(r['name'] for r in s['runs'])})")
            return 0
        if args.cmd == "run":
            unknown = [s for s in args.suites if s not in suites]
            if unknown:
                raise ValueError(f"unknown suite(s) {unknown}; known: {sorted(suites)}")
            for name in args.suites:
                run_suite(name, suites[name], args.seeds, jobs=max(1, args.jobs))
            return 0
        stale = render(check=args.check)
        if args.check and stale:
            print(f"error: stale result blocks (run python tools/results.py render): {', '.join(stale)}",
                  file=sys.stderr)
            return 1
        return 0
    except (OSError, ValueError, KeyError, yaml.YAMLError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
