"""The documented results come from the runs (tools/results.py): the docs'
blocks equal what the committed JSON gives, a suite runs its commands per
seed, resumes without redoing finished runs, and renders mean (min-max)."""
import json
import os

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
    assert results.main(["run", "toy"]) == 0
    assert (tmp / "out" / "a0" / "count").read_text() == "x"


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
