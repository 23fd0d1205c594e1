"""The ablation study (tools/ablations.py, docs/ablations.md): every
variant's switches validate against its config, for training and for each
evaluation, before hours are spent; the plot shows each suite's means with
their intervals."""
import json
import os
import shlex

import numpy as np
import pytest
import yaml

import ablations
import results
from helpers import ROOT


def _commands():
    suites = results.load_suites()
    for name in ablations.SUITES:
        for run in suites[name]["runs"]:
            _, commands = results._commands(run, 0)
            for cmd in commands:
                yield name, run["name"], cmd


@pytest.fixture(scope="module")
def load():
    import unimo  # noqa: F401  (registers the Arch / Loss / data / eval sections)
    import unimo2  # noqa: F401
    from vlcore.framework.config import load_config
    from vlcore.framework.schema import TrainConfig
    return lambda config, overrides: load_config(TrainConfig, os.path.join(ROOT, config), overrides)


def test_every_variant_command_validates(load):
    """Each command line of the suites: its -c config with its -o
    overrides is a valid config, and the switch it is named for took."""
    seen = {}
    for suite, run, cmd in _commands():
        argv = shlex.split(cmd)
        assert argv[0] == "python" and argv[1] in ("tools/train.py", "tools/eval.py",
                                                   "tools/visualize_grounding.py"), cmd
        config = argv[argv.index("-c") + 1]
        o = argv.index("-o")
        end = next((i for i in range(o + 1, len(argv)) if argv[i].startswith("--")), len(argv))
        cfg = load(config, argv[o + 1:end])
        if argv[1] == "tools/visualize_grounding.py":  # only for a top-K dictionary, on the run's own corpus
            assert cfg.Arch.grounding.mode == "topk", (suite, run)
            assert argv[argv.index("--labels") + 1] == f"{cfg.DataLoader.Train.demo_dir}/images_train.jsonl"
        seen[(suite, run)] = cfg
    assert len({k[0] for k in seen}) == len(ablations.SUITES)
    for suite, held_out_pairs in (("unimo2_ablation", 0), ("unimo2_ablation_rare", 20), ("unimo2_ablation_colours", 1)):
        u2 = {run: cfg for (s, run), cfg in seen.items() if s == suite}
        assert u2["w/o GD (P)"].Arch.grounding.mode == "none" and u2["w/o G.T."].Arch.fusion.attention == "full"
        assert u2["1-to-1 Map"].Arch.grounding.mode == "one_to_one"
        ratios = {run: set(cfg.DataLoader.Train.curriculum[-1].ratios) for run, cfg in u2.items() if run != "chance"}
        assert ratios["UNIMO-2"] == {"pairs", "images", "text"}
        assert ratios["w/o Text"] == {"pairs", "images"} and ratios["w/o Images"] == {"pairs", "text"}
        assert ratios["w/o Both"] == {"pairs"}
        assert all(cfg.DataLoader.Train.demo.held_out_pairs == held_out_pairs for cfg in u2.values())
    grounding = {run: cfg for (s, run), cfg in seen.items() if s == "unimo2_ablation_grounding"}
    assert grounding["C 32, K 8"].Arch.grounding.dict_size == 32 and grounding["C 128, K 32"].Arch.grounding.top_k == 32
    assert all(cfg.DataLoader.Train.demo_dir == "data/ablation_colours" for cfg in grounding.values())
    colours = {run: cfg for (s, run), cfg in seen.items() if s == "unimo2_ablation_colours"}
    assert all(cfg.DataLoader.Train.demo.held_out_colours == ["orange", "purple"] for cfg in colours.values())
    # the pilot chooses the anchor count on other colours than the study's
    pilot = {run: cfg for (s, run), cfg in seen.items() if s == "unimo2_colour_pilot"}
    assert len(pilot) == 6 and all(cfg.DataLoader.Train.demo.held_out_colours == ["black", "white"]
                                   for cfg in pilot.values())
    u = {run: cfg for (suite, run), cfg in seen.items() if suite == "unimo_ablation"}
    kinds = {run: cfg.DataLoader.Train.corpora[0].rewrite_kinds for run, cfg in u.items() if run != "chance"}
    assert kinds["w/o TF-IDF negatives"] == ["bt", "sg"] and kinds["w/o scene-graph negatives"] == ["bt", "tfidf"]
    assert u["w/o CMCL (VLM matching head instead)"].Loss.cmcl.weight == 0
    assert set(u["w/o text corpus (paper Table 6)"].DataLoader.Train.curriculum[0].ratios) == {"pairs", "images"}


def test_held_out_words_are_in_no_training_pair_of_the_study():
    """The study's configs train on their own corpus only (and no labelled
    prompts, which would pair the held-out words with their images), so the
    unseen split stays unseen (or, on the second corpus, rare) in pairs."""
    for path in ablations.CONFIGS:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            train = yaml.safe_load(f)["DataLoader"]["Train"]
        held = train["demo"].get("held_out_shapes") or train["demo"].get("held_out_colours")
        assert held in (["hexagon", "star"], ["orange", "purple"])
        assert {c["kind"] for c in train["corpora"]} == {"pairs", "images", "text"}
        assert all(c["path"].startswith(train["demo_dir"] + "/") for c in train["corpora"])


def test_plot_from_results(tmp_path, monkeypatch):
    """A results JSON of one suite -> a PNG; the intervals plotted are the
    t-intervals of the seeds (vlcore.tasks.metrics.mean_interval)."""
    from vlcore.tasks.metrics import mean_interval
    mean, half = mean_interval([10.0, 12.0, 14.0])
    assert mean == 12.0 and half == pytest.approx(4.302653 * 2 / np.sqrt(3), rel=1e-6)
    assert mean_interval([3.0]) == (3.0, 0.0)
    runs = [{"name": n, "seeds": [{"seed": s, "metrics": {"sir": 10 + s + i, "uir": 5.0, "uir5": 9.0, "utr": 1.0 + s}}
                                  for s in range(5)]} for i, n in enumerate(["UNIMO", "w/o CMCL"])]
    runs.append({"name": "chance", "seeds": [{"seed": 0, "metrics": {"sir": 1.0, "uir": 1.0, "uir5": 5.0, "utr": 1.0}}]})
    (tmp_path / "unimo_ablation.json").write_text(json.dumps({"runs": runs}))
    monkeypatch.setattr(results, "RESULTS", str(tmp_path))
    drawn = {}
    import vlcore.viz.intervals as iv
    real = iv.interval_panels
    monkeypatch.setattr(iv, "interval_panels", lambda panels, path: drawn.setdefault("p", panels) and real(panels, path))
    out = ablations.plot(path=str(tmp_path / "a.png"))
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    (panel,) = drawn["p"]
    assert [r[0] for r in panel["rows"]] == ["UNIMO", "w/o CMCL"] and panel["chance"] == [1.0, 1.0, 5.0, 1.0]
    assert "over 5 seeds" in panel["title"]
    mean, half, seeds = panel["rows"][1][1][0]
    assert (mean, half) == pytest.approx(mean_interval([11, 12, 13, 14, 15])) and seeds == [11, 12, 13, 14, 15]
    monkeypatch.setattr(results, "RESULTS", str(tmp_path / "none"))
    with pytest.raises(ValueError, match="no ablation results yet"):
        ablations.plot(path=str(tmp_path / "b.png"))
