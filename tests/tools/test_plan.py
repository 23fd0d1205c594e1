"""tools/plan.py and vlcore.framework.plan: the parameter count is the
model's, FLOPs grow linearly with the batch, the saved-activation account of
a known layer is exact, the largest batch is the largest that fits, and the
measured peak predicts a step at another batch."""
import json
import resource
import subprocess
import sys

import pytest

from helpers import ROOT, make_tiny_corpus, tiny_config

GB = 1024 ** 3


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plan")
    corpus = make_tiny_corpus(str(tmp / "demo"))
    return tmp, tiny_config(tmp, corpus, tmp / "out")


def test_saved_activations_of_a_linear_layer_and_attention_maps():
    import paddle

    from vlcore.framework.plan import saved_for_backward

    class Toy(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.lin = paddle.nn.Linear(8, 16)

        def forward(self, b):
            h = self.lin(b["x"])                                   # saves its input x: 4 x 8 floats
            maps = paddle.nn.functional.softmax(h.reshape([4, 2, 2, 4]), -1)  # saves its output: 64 floats, 4-D
            return {"loss": maps.sum()}
    x = paddle.randn([4, 8])
    x.stop_gradient = False
    s = saved_for_backward(Toy(), {"x": x}, heads=2)
    assert s["attention_maps"] == 64 * 4 and s["total"] == 32 * 4 + 64 * 4   # the weight is not counted


def test_plan_of_a_tiny_config(tiny, monkeypatch):
    import unimo2  # noqa: F401
    monkeypatch.setenv("VLCORE_NO_REEXEC", "1")  # tools/plan.py would re-execute the process for its allocator
    from vlcore.framework.config import load_config
    from vlcore.framework.plan import forward_flops
    from vlcore.framework.registry import ARCH
    from vlcore.framework.schema import TrainConfig

    import plan as plan_tool
    _, cfg_path = tiny
    cfg = load_config(TrainConfig, cfg_path, [])
    import argparse
    plan = plan_tool.make(argparse.Namespace(config=cfg_path, override=[]), cfg, "tiny")   # accounts in children
    build, synthetic, _ = plan_tool._builders(cfg)
    model = build(False)
    assert plan.n_params == sum(int(p.size) for p in model.parameters())
    # linear in the batch but for the in-batch ITC similarities (batch^2 x proj_dim): 128 FLOPs here
    assert forward_flops(model, synthetic("pairs", 2)) == pytest.approx(2 * forward_flops(model, synthetic("pairs", 1)),
                                                                        rel=1e-4)
    assert set(plan.kinds) == {"pairs", "text", "images"}
    for kind, k in plan.kinds.items():
        assert k.act_per_sample > k.act_per_sample_recompute > 0, kind          # recompute keeps less
        assert k.step_gflop_per_sample == pytest.approx(3 * k.forward_gflop_per_sample)
        m = 0.5 * GB + plan.peak(kind, 0)
        b = plan.max_batch(kind, m)
        assert plan.peak(kind, b) <= m < plan.peak(kind, b + 1)
    assert ARCH.hook("UNIMO2", "synthetic") is not None


@pytest.mark.slow
def test_measured_plan_predicts_a_step_at_another_batch(tiny, tmp_path):
    """The line through two measured steps predicts a third, at a batch
    neither measured, within 15 % (on a model whose activations dominate)."""
    tmp, cfg_path = tiny
    over = ["Arch.hidden_size=128", "Arch.vit.image_size=64", "Arch.vit.patch_size=8",
            "DataLoader.Train.max_text_len=64"]
    out = tmp_path / "plan.json"
    argv = [sys.executable, "tools/plan.py", "-c", cfg_path, "--kinds", "pairs", "--batch", "48",
            "--json", str(out)] + [a for o in over for a in ("-o", o)]
    r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    plan = json.loads(out.read_text())
    line = plan["kinds"]["pairs"]["measured"]["plain"]
    assert line[2][0] == 1 and line[2][1] > 2 and line[1] > 0
    child = subprocess.run(argv[:4] + ["--child", "step", "pairs", "48", "0"] + argv[-2 * len(over):],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr[-2000:]
    measured = json.loads(child.stdout.strip().splitlines()[-1])["peak_bytes"]
    assert plan["peak_gb"]["pairs"] * GB == pytest.approx(measured, rel=0.15)
    assert resource.getpagesize() > 0


def test_compare_puts_a_benchmark_peak_beside_the_plan(tiny, tmp_path, monkeypatch):
    """--compare: the benchmark's peak at its batch beside the plan's at the
    same batch and recompute setting; a benchmark of other shapes is refused
    with its file and key."""
    monkeypatch.setenv("VLCORE_NO_REEXEC", "1")
    import argparse

    from vlcore.framework.config import load_config
    from vlcore.framework.schema import TrainConfig

    import plan as plan_tool
    _, cfg_path = tiny
    cfg = load_config(TrainConfig, cfg_path, [])
    plan = plan_tool.make(argparse.Namespace(config=cfg_path, override=[]), cfg, "configs/tiny.yaml", ["pairs"])
    n = plan.kinds["pairs"].text_len
    bench = {"results": {"tiny": {"pairs": {"batch": 6, "text_len": n, "recompute": True, "peak_rss_mb": 2048.0},
                                  "text": {"error": "killed for memory"}}}}
    path = tmp_path / "step.json"
    path.write_text(json.dumps(bench))
    got = plan_tool.compare(plan, cfg, [str(path)])
    row = got["pairs"]["recompute"]
    assert set(got) == {"pairs"} and row["batch"] == 6 and row["measured_gb"] == 2.0
    assert row["planned_gb"] == pytest.approx(plan.peak("pairs", 6, True) / GB, abs=1e-3)
    assert row["error"] == pytest.approx(row["planned_gb"] / 2.0 - 1, abs=1e-3)
    assert row["from"] == "the model's account"                 # nothing measured in this plan
    bench["results"]["tiny"]["pairs"]["text_len"] = n + 1
    path.write_text(json.dumps(bench))
    with pytest.raises(ValueError, match=rf"step.json: results.tiny.pairs.text_len is {n + 1}, this plan's is {n}"):
        plan_tool.compare(plan, cfg, [str(path)])
    with pytest.raises(ValueError, match="no results for tiny"):
        plan_tool.compare(plan, cfg, [str(_other(tmp_path))])


def _other(tmp_path):
    p = tmp_path / "other.json"
    p.write_text(json.dumps({"results": {"unimo2_base": {}}}))
    return p
