"""Real fleet jobs on CPU (gloo): 2 processes on one node, 2 "nodes" on
127.0.0.1, fleetrun, and the exactness of the cross-rank contrastive
gradients."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT, free_port, make_tiny_corpus, tiny_config, tool_env

pytestmark = [pytest.mark.slow, pytest.mark.dist]

TRAIN = os.path.join(ROOT, "tools", "train.py")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_tiny_corpus(os.path.join(str(tmp_path_factory.mktemp("corpus")), "demo"))


def _launch(args, log_dir, launcher=None, timeout=300):
    cmd = (launcher or [sys.executable, "-m", "paddle.distributed.launch"]) + ["--log_dir", str(log_dir)] + args
    return subprocess.Popen(cmd, cwd=ROOT, env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _finish(proc, timeout=300):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def _worker_logs(log_dir):
    return {name: open(os.path.join(log_dir, name)).read() for name in sorted(os.listdir(log_dir))
            if name.startswith("workerlog")}


def _assert_synced_run(log_dirs, world):
    """Rank 0 logs at INFO (the other ranks only warnings and errors)."""
    text = "\n".join(t for d in log_dirs for t in _worker_logs(d).values())
    assert f"world size {world}" in text, text[-3000:]
    assert f"parameters identical on all {world} ranks" in text, text[-3000:]


def test_two_processes_one_node(tmp_path, corpus):
    cfg = tiny_config(tmp_path, corpus, tmp_path / "out", DataLoader={"Eval": None})
    code, out = _finish(_launch(["--nproc_per_node", "2", TRAIN, "-c", cfg], tmp_path / "log"))
    assert code == 0, out[-3000:]
    _assert_synced_run([tmp_path / "log"], 2)
    assert (tmp_path / "out" / "step_6" / "model.safetensors").is_file()


def test_fleetrun(tmp_path, corpus):
    fleetrun = shutil.which("fleetrun") or os.path.join(os.path.dirname(sys.executable), "fleetrun")
    if not os.path.exists(fleetrun):
        pytest.skip("fleetrun is not installed")
    cfg = tiny_config(tmp_path, corpus, tmp_path / "out", Global={"max_steps": 3}, DataLoader={"Eval": None})
    code, out = _finish(_launch(["--nproc_per_node", "2", TRAIN, "-c", cfg], tmp_path / "log", [fleetrun]))
    assert code == 0, out[-3000:]
    _assert_synced_run([tmp_path / "log"], 2)


def test_two_nodes_on_loopback(tmp_path, corpus):
    cfg = tiny_config(tmp_path, corpus, tmp_path / "out", Global={"max_steps": 3})
    master = f"127.0.0.1:{free_port()}"
    procs = [_launch(["--nnodes", "2", "--master", master, "--rank", str(rank), "--nproc_per_node", "1",
                      TRAIN, "-c", cfg], tmp_path / f"log{rank}") for rank in (0, 1)]
    results = [_finish(p) for p in procs]
    for code, out in results:
        assert code == 0, out[-3000:]
    _assert_synced_run([tmp_path / "log0", tmp_path / "log1"], 2)
    assert "world size 2" in "".join(_worker_logs(tmp_path / "log0").values())
    # Only global rank 0 writes the run's files; both took part in the eval.
    assert json.loads((tmp_path / "out" / "eval_metrics.json").read_text())["images"] == 6


def test_cross_rank_contrastive_gradients_are_exact(tmp_path):
    script = os.path.join(ROOT, "tests", "dist_scripts", "check_gather_grad.py")
    code, out = _finish(_launch(["--nproc_per_node", "2", script, str(tmp_path / "res")], tmp_path / "log"))
    assert code == 0, out[-3000:] + "\n".join(_worker_logs(tmp_path / "log").values())[-3000:]
    for rank in (0, 1):
        res = json.loads((tmp_path / "res" / f"rank{rank}.json").read_text())
        assert res["infonce_loss"] < 1e-9, res
        assert res["infonce_grad"] < 1e-9, res
        assert res["ntxent_grad"] < 1e-9, res
