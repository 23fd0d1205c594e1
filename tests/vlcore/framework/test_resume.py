"""Kill a training run with SIGKILL, resume it with Global.resume=auto, and
check that it continues exactly like the run that was never interrupted."""
import os
import signal

import numpy as np
import pytest

from vlcore.framework.checkpoint import load_weights
from vlcore.framework.runlog import read_metrics

from helpers import make_tiny_corpus, run_tool, tiny_config

pytestmark = pytest.mark.slow

STEPS = 8


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_tiny_corpus(os.path.join(str(tmp_path_factory.mktemp("corpus")), "demo"))


def _losses(out_dir):
    """step -> record of the *last* time that step was logged."""
    return {r["step"]: r for r in read_metrics(os.path.join(out_dir, "metrics.jsonl")) if r.get("split") != "eval"}


def test_killed_run_resumes_exactly(tmp_path, corpus):
    common = {"Global": {"max_steps": STEPS, "save_interval": 2},
              "DataLoader": {"Train": {"num_workers": 1}, "Eval": None}}
    ref_out, cut_out = tmp_path / "ref", tmp_path / "cut"
    ref = run_tool(["tools/train.py", "-c", tiny_config(tmp_path, corpus, ref_out, "ref.yaml", **common)])
    assert ref.returncode == 0, ref.stderr[-3000:]

    cfg = tiny_config(tmp_path, corpus, cut_out, "cut.yaml", **common)
    killed = run_tool(["tools/train.py", "-c", cfg], VLCORE_TEST_KILL_AT_STEP=5)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert sorted(os.listdir(cut_out)).count("step_4") == 1 and not (cut_out / "step_6").exists()
    assert max(_losses(cut_out)) == 5  # step 5 ran, but its checkpoint was never written

    resumed = run_tool(["tools/train.py", "-c", cfg, "-o", "Global.resume=auto"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout and "step_4" in resumed.stdout

    ref_log, cut_log = _losses(ref_out), _losses(cut_out)
    assert sorted(cut_log) == list(range(1, STEPS + 1))
    for step in range(1, STEPS + 1):
        for key in ("loss", "lr", "corpus"):
            assert cut_log[step][key] == ref_log[step][key], (step, key, cut_log[step], ref_log[step])
    a = load_weights(str(ref_out / f"step_{STEPS}"))
    b = load_weights(str(cut_out / f"step_{STEPS}"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_resume_auto_without_checkpoint_starts_fresh(tmp_path, corpus):
    out = tmp_path / "fresh"
    cfg = tiny_config(tmp_path, corpus, out, Global={"max_steps": 2}, DataLoader={"Eval": None})
    r = run_tool(["tools/train.py", "-c", cfg, "-o", "Global.resume=auto"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "no checkpoint" in r.stdout and (out / "step_2").is_dir()
    # Resuming a finished run does no more training.
    again = run_tool(["tools/train.py", "-c", cfg, "-o", "Global.resume=auto"])
    assert again.returncode == 0 and "already trained to step 2" in again.stdout
