"""The documented results come from the runs (tools/results.py): the docs'
blocks equal what the committed JSON gives, a suite runs its commands per
seed, resumes without redoing finished runs, and renders mean (min-max)."""
import json
import os

import numpy as np
import pytest
import yaml

import results  # noqa: E402


def test_committed_blocks_are_what_the_json_gives():
    """README.md and docs/*.md: regenerating every result block from
    docs/results/*.json changes nothing (CI fails on a hand-edited number)."""
    assert results.render(check=True) == []


def test_every_measured_suite_is_shown_once():
    """A block may move between README.md and the docs pages, but every
    suite with committed results is on exactly one page, once."""
    measured = {n[:-len(".json")] for n in os.listdir(results.RESULTS) if n.endswith(".json")}
    where = results.blocks()
    assert {name: where.get(name) for name in measured if len(where.get(name, [])) != 1} == {}
    assert set(where) <= set(results.load_suites())


@pytest.fixture()
def study(tmp_path, monkeypatch):
    """A two-run suite whose 'training' writes metrics from its seed and
    counts its executions."""
    (tmp_path / "docs" / "results").mkdir(parents=True)
    script = tmp_path / "fake_train.py"
    script.write_text(
        "import json, os, sys\n"
        "out, seed = sys.argv[1], int(sys.argv[2])\n"
        "os.makedirs(out, exist_ok=True)\n"
        "open(os.path.join(out, 'count'), 'a').write('x')\n"
        "json.dump({'ir_r1': 10.0 + seed, 'nested': {'acc': 0.5 + seed / 10}}, open(os.path.join(out, 'm.json'), 'w'))\n")
    suites = {"toy": {"title": "toy", "seeds": [0, 1, 2], "note": "A toy.",
                      "runs": [{"name": "model A", "out": "out/a{seed}",
                                "commands": [f"python {script} {{out}} {{seed}}"],
                                "metrics": {"ir1": "m.json:ir_r1", "acc": "m.json:nested.acc*100"}},
                               {"name": "model A again", "out": "out/a{seed}",
                                "commands": [f"python {script} {{out}} {{seed}}"],
                                "metrics": {"ir1": "m.json:ir_r1", "acc": "m.json:nested.acc*100"},
                                "cells": {"acc": "n/a"}}],
                      "columns": [["IR R@1", "{ir1}"], ["acc", "{acc:.0f} %"]]}}
    (tmp_path / "docs" / "results" / "suites.yaml").write_text(yaml.safe_dump(suites))
    doc = tmp_path / "README.md"
    doc.write_text("before\n<!-- results:toy -->\nstale\n<!-- /results:toy -->\nafter\n")
    monkeypatch.setattr(results, "ROOT", str(tmp_path))
    monkeypatch.setattr(results, "RESULTS", str(tmp_path / "docs" / "results"))
    monkeypatch.setattr(results, "SUITES", str(tmp_path / "docs" / "results" / "suites.yaml"))
    monkeypatch.setattr(results, "DOCS", [str(doc)])
    return tmp_path, doc


def test_run_render_check_and_resume(study):
    tmp, doc = study
    assert results.main(["run", "toy"]) == 0
    data = json.loads((tmp / "docs" / "results" / "toy.json").read_text())
    runs = {r["name"]: r for r in data["runs"]}
    assert [s["metrics"]["ir1"] for s in runs["model A"]["seeds"]] == [10.0, 11.0, 12.0]
    assert [s["metrics"]["acc"] for s in runs["model A"]["seeds"]] == pytest.approx([50, 60, 70])
    assert data["machine"]["cores"] >= 1 and data["date"] and "paddlepaddle" in data["versions"]
    # the second run shares the first's outputs: nothing was executed twice
    assert all((tmp / "out" / f"a{s}" / "count").read_text() == "x" for s in range(3))
    assert results.main(["render", "--check"]) == 1                       # the block is stale
    assert results.main(["render"]) == 0
    text = doc.read_text()
    assert text.startswith("before\n<!-- results:toy -->\n| run | IR R@1 | acc |") and text.endswith("after\n")
    assert "| model A | 11.0 (10.0-12.0) | 60 (50-70) % |" in text
    assert "| model A again | 11.0 (10.0-12.0) | n/a |" in text
    assert "seeds 0, 1, 2" in text and "A toy." in text and data["commit"] in text
    assert results.main(["render", "--check"]) == 0
    doc.write_text(text.replace("11.0 (10.0-12.0)", "13.0 (10.0-12.0)", 1))  # a hand-edited number
    assert results.main(["render", "--check"]) == 1
    # a killed study resumes: finished runs are read, not redone
    path = tmp / "docs" / "results" / "toy.json"
    measured = json.loads(path.read_text())
    measured["machine"]["load_avg_at_start"] = [99.0, 99.0, 99.0]  # as the measurement saw it
    path.write_text(json.dumps(measured))
    assert results.main(["run", "toy"]) == 0
    assert (tmp / "out" / "a0" / "count").read_text() == "x"
    # nothing ran: the file keeps the measurement's commit, date and load, not this reading's
    assert json.loads(path.read_text()) == measured
    # an evaluation added to the finished runs: only it runs, the training is not redone
    spec = yaml.safe_load((tmp / "docs" / "results" / "suites.yaml").read_text())
    extra = "python -c \"import json, sys; json.dump({'extra': 7}, open(sys.argv[1], 'w'))\" {out}/e.json"
    for run in spec["toy"]["runs"]:
        run["commands"].append(extra)
        run["metrics"]["extra"] = "e.json:extra"
    (tmp / "docs" / "results" / "suites.yaml").write_text(yaml.safe_dump(spec))
    assert results.main(["run", "toy"]) == 0
    assert (tmp / "out" / "a0" / "count").read_text() == "x"
    data = json.loads(path.read_text())
    assert [s["metrics"]["extra"] for s in data["runs"][0]["seeds"]] == [7, 7, 7]
    assert all(len(s["seconds"]) == 2 for s in data["runs"][0]["seeds"])
    # one more seed runs: the file is the new measurement
    assert results.main(["run", "toy", "--seeds", "0", "1", "2", "3"]) == 0
    assert json.loads(path.read_text())["machine"]["load_avg_at_start"] != [99.0, 99.0, 99.0]


def test_failing_command_and_unknown_suite(study, capsys):
    tmp, _ = study
    spec = yaml.safe_load((tmp / "docs" / "results" / "suites.yaml").read_text())
    spec["toy"]["runs"][0]["commands"] = ["python -c 'import sys; sys.exit(3)'"]
    (tmp / "docs" / "results" / "suites.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SystemExit, match="exit 3"):
        results.main(["run", "toy"])
    assert results.main(["run", "nope"]) == 2
    assert "unknown suite" in capsys.readouterr().err


def test_confidence_interval_cells():
    """{metric:ci} is mean +- t(0.975, n-1) * sd / sqrt(n): for 10, 12, 14
    that is 12 +- 4.303 * 2 / sqrt(3) = 12 +- 4.97."""
    seeds = [{"metrics": {"r": v}} for v in (10.0, 12.0, 14.0)]
    assert results._cell("{r:ci}", seeds) == "12.0 +- 5.0"
    assert results._cell("{r:ci.2f}", seeds) == "12.00 +- 4.97"
    assert results._cell("{r:ci}", seeds[:1]) == "10.0"
    assert results._cell("{r} / {r:.0f}", seeds) == "12.0 (10.0-14.0) / 12 (10-14)"


def test_paired_differences_by_seed():
    """``paired:`` tables each run minus the reference on the same seed:
    a shift of 3 that the seeds' spread hides in the means shows (bold: its
    interval excludes 0); seeds only one run has are left out."""
    ref = [20.0, 40.0, 10.0, 30.0, 25.0]
    runs = {"ref": ref, "shifted": [v + 3 + e for v, e in zip(ref, (0.5, -0.5, 0.2, -0.2, 0.0))],
            "same": [v + e for v, e in zip(ref, (1.0, -1.0, 0.5, -0.5, 0.0))]}
    data = {"runs": [{"name": n, "seeds": [{"seed": i, "metrics": {"m": v}} for i, v in enumerate(vals)]}
                     for n, vals in runs.items()]}
    data["runs"][2]["seeds"].append({"seed": 9, "metrics": {"m": 99.0}})  # no reference for seed 9
    data["runs"].append({"name": "chance", "seeds": [{"seed": 0, "metrics": {"m": 1.0}}]})  # one seed: no row
    by_name = {r["name"]: r for r in data["runs"]}
    text = results._paired_table({"reference": "ref", "columns": [["m", "{m}"]]},
                                 [{"name": n} for n in [*runs, "chance"]], by_name)
    d = np.array(runs["shifted"]) - np.array(ref)
    half = 2.776445 * d.std(ddof=1) / np.sqrt(5)
    assert f"| shifted | **+3.0 +- {half:.1f}** |" in text
    d = np.array(runs["same"]) - np.array(ref)
    assert f"| same | +0.0 +- {2.776445 * d.std(ddof=1) / np.sqrt(5):.1f} |" in text
    assert "| ref |" not in text and "| chance |" not in text and "minus ref on the same seed" in text
    # the means' own intervals overlap: only the pairing shows the shift
    from vlcore.tasks.metrics import mean_interval
    assert mean_interval(runs["shifted"])[1] > 3 and mean_interval(ref)[1] > 3


def test_parallel_jobs_vars_and_shared_runs(study):
    """--jobs 2: the runs execute side by side with their output in
    <out>/results.log, a run's ``vars`` fill its commands (other braces, such
    as a prompt's {label}, stay), and two runs with the same directory and
    commands execute once; a second invocation redoes nothing."""
    tmp, _ = study
    spec = yaml.safe_load((tmp / "docs" / "results" / "suites.yaml").read_text())
    script = spec["toy"]["runs"][0]["commands"][0].split()[1]
    echo = tmp / "echo_args.py"
    echo.write_text("import json, os, sys\n"
                    "json.dump({'argv': sys.argv[2:], 'threads': os.environ.get('OMP_NUM_THREADS')},"
                    " open(os.path.join(sys.argv[1], 'argv.json'), 'w'))\n")
    b = {"name": "model B", "out": "out/b{seed}", "vars": {"extra": "--k {label} x=1"},
         "commands": [f"python {script} {{out}} {{seed}}", f"python {echo} {{out}} {{extra}} {{seed}}"],
         "metrics": {"ir1": "m.json:ir_r1"}}
    spec["toy"]["runs"].append(b)
    (tmp / "docs" / "results" / "suites.yaml").write_text(yaml.safe_dump(spec))
    env_threads = os.environ.pop("OMP_NUM_THREADS", None)
    try:
        assert results.main(["run", "toy", "--jobs", "2"]) == 0
    finally:
        if env_threads is not None:
            os.environ["OMP_NUM_THREADS"] = env_threads
    for s in range(3):
        assert (tmp / "out" / f"a{s}" / "count").read_text() == "x"            # "model A again" shared it
        argv = json.loads((tmp / "out" / f"b{s}" / "argv.json").read_text())
        assert argv["argv"] == ["--k", "{label}", "x=1", str(s)]
        assert argv["threads"] == str(max(1, len(os.sched_getaffinity(0)) // 2))
        assert f"$ python {echo}" in (tmp / "out" / f"b{s}" / "results.log").read_text()
    data = json.loads((tmp / "docs" / "results" / "toy.json").read_text())
    assert data["command"].endswith("--jobs 2")
    assert [s["metrics"]["ir1"] for s in data["runs"][2]["seeds"]] == [10.0, 11.0, 12.0]
    assert results.main(["run", "toy", "--jobs", "2"]) == 0
    assert (tmp / "out" / "b0" / "count").read_text() == "x"


def test_parallel_failures_are_collected_and_the_rest_finish(study):
    """One failing run does not stop the others; the error names the run,
    the command and its log, and the finished runs are not redone."""
    tmp, _ = study
    spec = yaml.safe_load((tmp / "docs" / "results" / "suites.yaml").read_text())
    spec["toy"]["runs"][0]["out"] = "out/a{seed}"
    spec["toy"]["runs"][1] = {"name": "broken", "out": "out/broken{seed}", "seeds": [0],
                              "commands": ["python -c 'import sys; print(\"boom\"); sys.exit(3)'"],
                              "metrics": {"ir1": "m.json:ir_r1"}}
    (tmp / "docs" / "results" / "suites.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SystemExit, match=r"broken seed 0: command failed \(exit 3\).*out/broken0/results.log"):
        results.main(["run", "toy", "--jobs", "2"])
    assert "boom" in (tmp / "out" / "broken0" / "results.log").read_text()
    assert all((tmp / "out" / f"a{s}" / "count").read_text() == "x" for s in range(3))


def test_interval_tables_say_so_under_the_table():
    suite = {"runs": [{"name": "a"}], "columns": [["r", "{r:ci}"]]}
    data = {"suite": "s", "command": "c", "commit": "x", "date": "d",
            "machine": {"cpu": "cpu", "cores": 2, "load_avg_at_start": [1.0], "load_avg_at_end": [1.0]},
            "runs": [{"name": "a", "seeds": [{"seed": s, "metrics": {"r": float(s)}} for s in range(3)]}]}
    text = results.render_suite(suite, data)
    assert "| a | 1.0 +- 2.5 |" in text and "95 % confidence interval (Student's t) over seeds 0, 1, 2" in text
    assert "min-max" not in text


def test_background_load_and_text_metrics(study):
    """``load: N`` runs N busy processes beside the commands (and none after);
    a benchmark's text (e.g. "UNSTABLE ...") is shown as it is."""
    tmp, doc = study
    probe = tmp / "probe.py"
    probe.write_text(
        "import glob, json, os, sys\n"
        "def busy():\n"
        "    n = 0\n"
        "    for p in glob.glob('/proc/[0-9]*/cmdline'):\n"
        "        try:\n"
        "            n += 'a = (a @ a)' in open(p, 'rb').read().decode(errors='replace')\n"
        "        except OSError:\n"
        "            pass\n"
        "    return n\n"
        "os.makedirs(sys.argv[1], exist_ok=True)\n"
        "json.dump({'busy': busy(), 'shown': 'UNSTABLE: the 5 rounds disagree'}, open(sys.argv[1] + '/m.json', 'w'))\n")
    suites = {"toy": {"title": "toy", "seeds": [0], "note": "",
                      "runs": [{"name": "loaded", "out": "out/l", "load": 2,
                                "commands": [f"python {probe} {{out}}"],
                                "metrics": {"busy": "m.json:busy", "shown": "m.json:shown"}},
                               {"name": "quiet", "out": "out/q",
                                "commands": [f"python {probe} {{out}}"],
                                "metrics": {"busy": "m.json:busy", "shown": "m.json:shown"}}],
                      "columns": [["busy", "{busy:.0f}"], ["ratio", "{shown}"]]}}
    (tmp / "docs" / "results" / "suites.yaml").write_text(yaml.safe_dump(suites))
    assert results.main(["run", "toy"]) == 0 and results.main(["render"]) == 0
    data = json.loads((tmp / "docs" / "results" / "toy.json").read_text())
    busy = {r["name"]: r["seeds"][0]["metrics"]["busy"] for r in data["runs"]}
    assert busy["loaded"] >= busy["quiet"] + 2
    assert "| loaded | " in doc.read_text() and "UNSTABLE: the 5 rounds disagree |" in doc.read_text()
    import subprocess
    import sys
    left = subprocess.run([sys.executable, str(probe), str(tmp / "after")], check=True)
    assert left.returncode == 0 and json.loads((tmp / "after" / "m.json").read_text())["busy"] == busy["quiet"]
    # a parent killed before it could stop them: its busy processes stop by themselves
    assert _left_after_killing_the_parent("2", probe, tmp / "orphans", "busy", busy["quiet"]) == busy["quiet"]


def _left_after_killing_the_parent(load, probe, out, key, expected=0):
    """Start ``background_load(<load>)`` in a process, kill it, and return
    the probe's count ``key`` once it is ``expected`` (or after 10 s)."""
    import subprocess
    import sys
    import time
    tools = os.path.dirname(os.path.abspath(results.__file__))
    killed = subprocess.Popen([sys.executable, "-c", f"import results, time\nwith results.background_load({load}):\n"
                               "    time.sleep(60)"], env={**os.environ, "PYTHONPATH": tools})
    time.sleep(3)
    killed.kill()
    killed.wait()
    for _ in range(50):
        subprocess.run([sys.executable, str(probe), str(out)], check=True)
        left = json.loads((out / "m.json").read_text())[key]
        if left == expected:
            break
        time.sleep(0.2)
    return left


def test_a_real_job_as_the_load(study):
    """``load: {jobs: N, command: ...}`` runs N copies of a job beside the
    commands, each with its own scratch directory, and none afterwards; a
    copy that ends early fails the run (the commands were not all under
    load); a killed parent takes its copies with it."""
    import subprocess
    import sys
    tmp, doc = study
    job = tmp / "job.py"
    job.write_text("import os, sys, time\nopen(os.path.join(sys.argv[2], 'seen'), 'w').write(os.environ['OMP_NUM_THREADS'])\n"
                   "time.sleep(float(sys.argv[3]))\nsys.exit(3)\n")
    probe = tmp / "probe.py"
    probe.write_text(
        "import glob, json, os, sys\n"
        "jobs, dirs = 0, []\n"
        "for p in glob.glob('/proc/[0-9]*/cmdline'):\n"
        "    try:\n"
        "        argv = open(p, 'rb').read().decode(errors='replace').split('\\0')\n"
        "    except OSError:\n"
        "        continue\n"
        "    if any(a.endswith('job.py') for a in argv):\n"
        "        jobs += 1\n"
        "        dirs.append(argv[-3])\n"
        "os.makedirs(sys.argv[1], exist_ok=True)\n"
        "threads = [open(os.path.join(d, 'seen')).read() for d in dirs if os.path.exists(os.path.join(d, 'seen'))]\n"
        "json.dump({'jobs': jobs, 'dirs': dirs, 'threads': threads}, open(sys.argv[1] + '/m.json', 'w'))\n")

    def suite(seconds):
        load = {"jobs": 2, "command": f"python {job} {{job}} {{tmp}} {seconds}"}
        return {"toy": {"title": "toy", "seeds": [0], "note": "",
                        "runs": [{"name": "beside a job", "out": f"out/j{seconds}", "load": load,
                                  "commands": ["python -c 'import time; time.sleep(1.5)'", f"python {probe} {{out}}"],
                                  "metrics": {"jobs": "m.json:jobs"}}],
                        "columns": [["jobs", "{jobs:.0f}"]]}}
    (tmp / "docs" / "results" / "suites.yaml").write_text(yaml.safe_dump(suite(60)))
    assert results.main(["run", "toy"]) == 0
    seen = json.loads((tmp / "out" / "j60" / "m.json").read_text())
    assert seen["jobs"] == 2 and len(set(seen["dirs"])) == 2 and seen["threads"] == ["1", "1"]
    assert not any(os.path.exists(d) for d in seen["dirs"])  # scratch removed
    subprocess.run([sys.executable, str(probe), str(tmp / "after")], check=True)
    assert json.loads((tmp / "after" / "m.json").read_text())["jobs"] == 0
    # a job that ends while the commands still run: the run fails and says which job and why
    (tmp / "docs" / "results" / "suites.yaml").write_text(yaml.safe_dump(suite(0.2)))
    with pytest.raises(SystemExit, match=r"its load job 0 ended \(exit 3\) before the commands did"):
        results.main(["run", "toy"])
    # a parent killed before it could stop them: the jobs die with it
    load = f"{{'jobs': 2, 'command': 'python {job} 0 {{tmp}} 60'}}"
    assert _left_after_killing_the_parent(load, probe, tmp / "orphans", "jobs") == 0


def test_a_resumed_study_names_every_commit_and_day(study, monkeypatch):
    """A study finished over several invocations says every commit and day
    its runs finished at (from the runs' done markers), not only the last
    invocation's; a marker from before markers recorded the commit gives its
    day (the file's time) and is counted."""
    import time
    tmp, doc = study
    monkeypatch.setattr(results, "_commit", lambda: "aaaa111")
    assert results.main(["run", "toy", "--seeds", "0", "1"]) == 0
    old = tmp / "out" / "a0" / ".results_done.json"
    marker = json.loads(old.read_text())
    assert marker["commit"] == "aaaa111" and marker["finished"].startswith(time.strftime("%Y-%m-%d"))
    del marker["commit"], marker["finished"]  # as markers were written before
    old.write_text(json.dumps(marker))
    then = time.mktime((2026, 1, 2, 12, 0, 0, 0, 0, -1))
    os.utime(old, (then, then))
    earlier = tmp / "out" / "a1" / ".results_done.json"
    marker = json.loads(earlier.read_text())
    earlier.write_text(json.dumps({**marker, "finished": "2026-01-03 09:00:00"}))
    monkeypatch.setattr(results, "_commit", lambda: "bbbb222")
    assert results.main(["run", "toy"]) == 0  # seed 2 runs now
    data = json.loads((tmp / "docs" / "results" / "toy.json").read_text())
    assert data["commit"] == "aaaa111 to bbbb222 (1 run finished before the commit was recorded)"
    assert data["date"] == f"2026-01-02 to {time.strftime('%Y-%m-%d')}"
    assert results.main(["render"]) == 0
    assert f"at commit {data['commit']} on {data['date']}" in doc.read_text()


def test_a_command_line_may_set_its_environment(tmp_path, monkeypatch):
    """``OMP_NUM_THREADS=1 python bench/...`` runs as a shell runs it: the
    assignment reaches the command's environment, not results.py's own."""
    monkeypatch.setattr(results, "ROOT", str(tmp_path))
    cmd = ("VLCORE_TEST_THREADS=1 python -c \"import json, os, sys; "
           "json.dump(dict(os.environ), open(sys.argv[1], 'w'))\" {out}/env.json")
    run = {"name": "one thread", "out": "out", "commands": [cmd]}
    (tmp_path / "out").mkdir()
    results._run_commands(run, 0, "out", [cmd.replace("{out}", str(tmp_path / "out"))], [], dict(os.environ),
                          lambda *a: None, None)
    env = json.loads((tmp_path / "out" / "env.json").read_text())
    assert env["VLCORE_TEST_THREADS"] == "1" and "VLCORE_TEST_THREADS" not in os.environ
    argv, env = results._env_prefix(["A=1", "B=x=y", "python", "run.py", "C=2"], {"D": "4"})
    assert argv == ["python", "run.py", "C=2"] and env == {"A": "1", "B": "x=y", "D": "4"}


def test_agreement_of_two_runs_of_a_ratio():
    """Medians that differ by less than the sum of their spreads agree; a
    larger difference, or a run that printed UNSTABLE, does not."""
    def run(r, s, ok=1.0):
        return {"seeds": [{"seed": 0, "metrics": {"x": r, "xs": s, "xok": ok}}]}
    by_name = {"quiet": run(1.30, 0.03), "busy": run(1.25, 0.03), "far": run(1.10, 0.03),
               "shaky": run(1.30, 0.2, 0.0)}
    spec = {"ratios": [["speed-up", "x", "xs", "xok", ".2f"]],
            "pairs": [["quiet", "busy"], ["quiet", "far"], ["quiet", "shaky"]]}
    rows = results._agreement_table(spec, by_name).splitlines()
    assert "| speed-up | quiet | busy | 1.30 / 1.25 | 0.05 | 0.06 | yes |" in rows
    assert "| speed-up | quiet | far | 1.30 / 1.10 | 0.20 | 0.06 | **no** |" in rows
    assert "| speed-up | quiet | shaky | 1.30 / 1.30 | 0.00 | 0.23 | no: shaky gave no figure (its row says why) |" in rows


def test_the_tools_own_figures_do_not_mark_the_commit_changed(monkeypatch):
    """A suite run after another finds the first one's JSON uncommitted:
    that is this tool's output, not a change to what was measured; any other
    change is marked."""
    # as _git gives it: stripped, so the first line has lost its leading blank
    status = {"status": "M docs/results/bench_unimo_step.json\n M docs/results/plan_vs_measured.json",
              "rev-parse": "abc1234"}
    monkeypatch.setattr(results, "_git", lambda *a: status[a[0]])
    assert results._commit() == "abc1234"
    status["status"] += "\n M bench/common.py"
    assert results._commit() == "abc1234+local changes"
    status["status"] = " M docs/results/suites.yaml"  # the suites themselves are what is run
    assert results._commit() == "abc1234+local changes"
