"""Retrieval evaluation with its pairs split across 2 ranks (gloo on CPU):
every pair scored by exactly one rank, metrics identical on both ranks and
to the single-process evaluation."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import ROOT, tool_env

pytestmark = [pytest.mark.slow, pytest.mark.dist]

SCRIPT = os.path.join(ROOT, "tests", "dist_scripts", "check_retrieval_eval.py")


def test_sharded_pairs_match_single_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--log_dir", str(tmp_path / "log"),
                           "--nproc_per_node", "2", SCRIPT, str(tmp_path / "res")], cwd=ROOT, env=tool_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.load(open(tmp_path / "res" / f"rank{r}.json")) for r in (0, 1)]
    assert all(r["world"] == 2 for r in ranks)
    for key in ("ex_pairs", "two_pairs"):
        a, b = ({tuple(p) for p in r[key]} for r in ranks)
        assert not a & b and len(a) + len(b) == sum(len(r[key]) for r in ranks)  # disjoint, no repeats
    assert len(ranks[0]["ex_pairs"]) + len(ranks[1]["ex_pairs"]) == 12 * 36
    # the same numbers on both ranks and in one process
    from vlcore.tasks import retrieval_eval
    rng = np.random.default_rng(0)
    ci = np.repeat(np.arange(12), 3)
    cross = rng.normal(size=[12, 36]).astype(np.float32)
    cross[ci, np.arange(36)] += 1.0
    dual = cross + rng.normal(size=cross.shape).astype(np.float32)
    single_ex = retrieval_eval.evaluate(12, ci, lambda i, c: cross[i, c], fold_size=6)
    single_two = retrieval_eval.evaluate(12, ci, lambda i, c: cross[i, c], dual=dual, k=4, fold_size=6)
    for r in ranks:
        for m in ("tr_r1", "ir_r5", "rsum", "fold_tr_r1", "fold_rsum"):
            assert r["exhaustive"][m] == pytest.approx(single_ex[m])
            assert r["two_stage"][m] == pytest.approx(single_two[m])
        assert r["two_stage"]["pairs_scored"] == single_two["pairs_scored"]
