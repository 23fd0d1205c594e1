"""The GPU plan on paper (vlcore/framework/gpu_plan.py): each figure from
its stated assumptions, recomputed by hand on a made-up plan; OpenCLIP's
implied utilisation from its published numbers."""
import pytest

from vlcore.framework import gpu_plan as gp
from vlcore.framework.plan import KindPlan, Plan

GB = 1024 ** 3


def _plan():
    p = Plan("x.yaml", {"a": 100_000_000, "b": 50_000_000}, 0.3 * GB)
    p.kinds["pairs"] = KindPlan("pairs", "ITC", 64, 100.0, 300.0, act_fixed=2 * GB, act_per_sample=1.0 * GB,
                                act_attention_per_sample=0.2 * GB, act_largest_per_sample=0.01 * GB,
                                act_fixed_recompute=0.0, act_per_sample_recompute=0.05 * GB)
    return p


def test_batch_speed_and_hours_follow_the_assumptions():
    p, gpu = _plan(), gp.GPUS["a100-80gb"]
    k = gp.kind_on_gpu(p, "pairs", gpu, layers=10)
    state = 150e6 * 16
    assert k["state_gb"] == pytest.approx(state / GB, abs=0.01)
    free = 80 * GB - gp.RESERVE_GB * GB - state
    assert k["plain"]["batch"] == int((free - 0.5 * 2 * GB) // (0.5 * 0.8 * GB))       # maps out, bf16
    assert k["recompute"]["batch"] == int(free // (0.5 * (0.05 + 0.8 / 10) * GB))      # + one layer live
    assert k["plain"]["samples_per_s"] == pytest.approx(0.4 * 312e12 / 300e9, abs=0.1)
    assert k["recompute"]["samples_per_s"] == pytest.approx(0.4 * 312e12 / 400e9, abs=0.1)  # a 4th forward
    assert k["plain"]["gpu_hours_per_million"] == pytest.approx(1e6 / (0.4 * 312e12 / 300e9) / 3600, abs=0.01)


def test_sharding_splits_the_state_over_the_gpus():
    p, gpu = _plan(), gp.GPUS["h100-80gb"]
    none, os1, os2 = (gp.kind_on_gpu(p, "pairs", gpu, s, gpus=8)["state_gb"] for s in ("none", "os", "os_g"))
    assert none == pytest.approx(150e6 * 16 / GB, abs=0.01)
    assert os1 == pytest.approx(150e6 * (4 + 12 / 8) / GB, abs=0.01)
    assert os2 == pytest.approx(150e6 * (2 + 14 / 8) / GB, abs=0.01) and os2 < os1 < none
    with pytest.raises(ValueError, match="unknown GPU 'v100'"):
        gp.gpu_plan(p, ["v100"])
    with pytest.raises(ValueError, match="sharding 'p_g_os'"):
        gp.gpu_plan(p, ["h100-80gb"], sharding="p_g_os")


def test_schedule_and_openclip():
    per = gp.gpu_plan(_plan(), ["a100-80gb"])
    s = gp.schedule_hours("unimo2", per)
    assert s["samples"] == pytest.approx(20 * 9.854e6)
    assert s["gpu_hours"]["a100-80gb"]["plain"] == round(per["a100-80gb"]["pairs"]["plain"]["gpu_hours_per_million"]
                                                        * 197.08)
    assert gp.schedule_hours("unimo", per) == {}
    o = gp.openclip_b16()
    assert o["samples_per_s_per_gpu"] == pytest.approx(12.8e9 / (10700 * 3600), abs=0.1)
    # 24 L d^2 + 4 L^2 d per layer, 12 layers each tower, a step is 3 forwards
    step = 3 * 12 * (24 * 197 * 768 ** 2 + 4 * 197 ** 2 * 768 + 24 * 77 * 512 ** 2 + 4 * 77 ** 2 * 512)
    assert o["step_gflop_per_sample"] == pytest.approx(step / 1e9, abs=0.1)
    assert o["mfu"] == pytest.approx(o["samples_per_s_per_gpu"] * step / 312e12, abs=1e-3)
