"""Data preparation under the real ``paddle.distributed.launch`` on CPU: 2
processes on one node and 2 "nodes" on 127.0.0.1 write the same bytes as
one process (make_shards, tokenize_shards, scene-graph rewriting, the region
extractor); a rank killed mid-job, re-run, redoes only its unfinished
shards. The launcher starts ``python -m data_prep.<tool>`` as its command."""
import filecmp
import os
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT, free_port, make_tiny_corpus, tool_env

pytestmark = [pytest.mark.slow, pytest.mark.dist]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_tiny_corpus(os.path.join(str(tmp_path_factory.mktemp("corpus")), "demo"))


def _launch(launch_args, tool_args, log_dir, launcher=None, **env):
    cmd = [*(launcher or [sys.executable, "-m", "paddle.distributed.launch"]), "--log_dir", str(log_dir), *launch_args,
           sys.executable, *map(str, tool_args)]
    return subprocess.Popen(cmd, cwd=ROOT, env=tool_env(VLCORE_NO_REEXEC=1, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=240):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def _logs(*log_dirs):
    return {f"{d}/{n}": open(os.path.join(d, n)).read() for d in log_dirs for n in sorted(os.listdir(d))
            if n.startswith("workerlog")}


def one_node(tool_args, tmp_path, name="log", **env):
    code, out = _finish(_launch(["--nproc_per_node", "2"], tool_args, tmp_path / name, **env))
    return code, out, "\n".join(_logs(tmp_path / name).values())


def two_nodes(tool_args, tmp_path, name="log"):
    master = f"127.0.0.1:{free_port()}"
    procs = [_launch(["--nnodes", "2", "--master", master, "--rank", str(r), "--nproc_per_node", "1"], tool_args,
                     tmp_path / f"{name}{r}") for r in (0, 1)]
    results = [_finish(p) for p in procs]
    logs = "\n".join(_logs(tmp_path / f"{name}0", tmp_path / f"{name}1").values())
    for code, out in results:
        assert code == 0, out[-2000:] + logs[-3000:]
    return logs


def single(tool_args):
    r = subprocess.run([sys.executable, *map(str, tool_args)], cwd=ROOT, env=tool_env(), capture_output=True,
                       text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout + r.stderr


def same_tree(a, b, skip=()):
    """The same file names under ``a`` and ``b`` and, but for ``skip``, the same bytes."""
    def names(root):
        return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
    assert names(a) == names(b)
    for n in names(a):
        if os.path.basename(n) not in skip:
            assert filecmp.cmp(os.path.join(a, n), os.path.join(b, n), shallow=False), n
    return names(a)


def _make_shards(corpus, out):
    return ["-m", "data_prep.make_shards", "--manifest", os.path.join(corpus, "pairs_train.jsonl"), "--out", out,
            "--shard-size", "5"]


def _tokenize(corpus, out, shard_size=5):
    return ["-m", "data_prep.tokenize_shards", "--text", os.path.join(corpus, "text_train.txt"), "--tokenizer-dir",
            os.path.join(corpus, "vocab"), "--out", out, "--shard-size", str(shard_size)]


def _scene_graph(corpus, out):
    return ["-m", "data_prep.rewrite.scene_graph", "--pairs", os.path.join(corpus, "pairs_train.jsonl"),
            "--out", out, "--shard-size", "20", "--min-count", "1", "--per-kind", "3"]


def _scene_graph_available():
    from data_prep.rewrite.sg_parse import SceneGraphUnavailable, load_parser
    try:
        load_parser()
    except SceneGraphUnavailable as e:
        return str(e)
    return None


# shards.json counts what its writer did itself (this_run); everything else is compared byte for byte
SKIP = ("shards.json",)


def test_two_ranks_on_one_node_write_what_one_process_writes(corpus, tmp_path):
    finished_by_rank_0 = {"shards": "rank 0 writes shards.json", "tokens": "rank 0 writes"}
    for name, job in (("shards", _make_shards), ("tokens", _tokenize)):
        single(job(corpus, tmp_path / f"{name}_one"))
        code, out, logs = one_node(job(corpus, tmp_path / f"{name}_two"), tmp_path, f"log_{name}")
        assert code == 0, out[-2000:] + logs[-3000:]
        # 10 shards: 5 each, and rank 1 leaves the finishing step to rank 0
        assert "rank 0 of 2: 5 of 10 shards (index % 2 == 0), 0 already done" in logs, logs
        assert "rank 1 of 2: 5 of 10 shards (index % 2 == 1), 0 already done" in logs, logs
        assert finished_by_rank_0[name] in logs, logs
        names = same_tree(tmp_path / f"{name}_one", tmp_path / f"{name}_two", skip=SKIP)
        assert sum(n.endswith((".tar", ".ids.npy")) for n in names) == 10


def test_tfidf_on_two_ranks(corpus, tmp_path):
    """Rank 0 builds the index once, rank 1 waits for it; each searches its
    shards; the negatives are the bytes one process writes."""
    def job(out):
        return ["-m", "data_prep.rewrite.tfidf", "--pairs", os.path.join(corpus, "pairs_train.jsonl"), "--out", out,
                "--k", "5", "--shard-size", "40"]
    single(job(tmp_path / "one"))
    code, out, logs = one_node(job(tmp_path / "two"), tmp_path)
    assert code == 0, out[-2000:] + logs[-3000:]
    assert "rank 1 of 2: waiting for the TF-IDF index" in logs or "rank 1 of 2: 5 of 10 shards" in logs, logs
    assert "rank 1 of 2: done; the shards are the output" in logs, logs
    one = sorted(n for n in os.listdir(tmp_path / "one") if n.startswith("tfidf-"))
    assert len(one) > 2 and one == sorted(n for n in os.listdir(tmp_path / "two") if n.startswith("tfidf-"))
    for n in one:
        assert filecmp.cmp(tmp_path / "one" / n, tmp_path / "two" / n, shallow=False), n


def test_fleetrun(corpus, tmp_path):
    fleetrun = shutil.which("fleetrun") or os.path.join(os.path.dirname(sys.executable), "fleetrun")
    if not os.path.exists(fleetrun):
        pytest.skip("fleetrun is not installed")
    single(_make_shards(corpus, tmp_path / "one"))
    code, out = _finish(_launch(["--nproc_per_node", "2"], _make_shards(corpus, tmp_path / "two"), tmp_path / "log",
                                launcher=[fleetrun]))
    logs = "\n".join(_logs(tmp_path / "log").values())
    assert code == 0, out[-2000:] + logs[-3000:]
    assert "rank 1 of 2: 5 of 10 shards" in logs, logs
    same_tree(tmp_path / "one", tmp_path / "two", skip=SKIP)


def test_scene_graph_on_two_ranks(corpus, tmp_path):
    why = _scene_graph_available()
    if why:
        pytest.skip(f"scene-graph parser unavailable: {why}")
    single(_scene_graph(corpus, tmp_path / "one"))
    code, out, logs = one_node(_scene_graph(corpus, tmp_path / "two"), tmp_path)
    assert code == 0, out[-2000:] + logs[-3000:]
    # the parse stage and the rewrite stage are each split between the two ranks
    assert logs.count("(index % 2 == 1)") == 2 and logs.count("(index % 2 == 0)") == 2, logs
    names = same_tree(tmp_path / "one", tmp_path / "two")
    assert "vocab.json" in names and sum(n.startswith("sg-") for n in names) >= 2


def test_two_nodes_on_loopback(corpus, tmp_path):
    jobs = [("shards", _make_shards), ("tokens", _tokenize)]
    if not _scene_graph_available():
        jobs.append(("sg", _scene_graph))
    for name, job in jobs:
        single(job(corpus, tmp_path / f"{name}_one"))
        logs = two_nodes(job(corpus, tmp_path / f"{name}_two"), tmp_path, f"log_{name}")
        assert "rank 1 of 2: " in logs and "rank 0 of 2: " in logs, logs
        same_tree(tmp_path / f"{name}_one", tmp_path / f"{name}_two", skip=SKIP)


def _stamps(directory, suffix):
    return {f: (os.stat(os.path.join(directory, f)).st_ino, os.stat(os.path.join(directory, f)).st_mtime_ns)
            for f in os.listdir(directory) if f.endswith(suffix)}


def test_a_killed_rank_reruns_only_its_unfinished_shards(corpus, tmp_path):
    out = tmp_path / "tokens"
    job = _tokenize(corpus, out, shard_size=3)  # 16 shards, 8 per rank
    code, _, logs = one_node(job, tmp_path, "log_killed", DATA_PREP_KILL_AFTER_SHARDS=2, DATA_PREP_KILL_RANK=1)
    assert code != 0  # rank 1 died; the launcher stopped the job
    before = _stamps(out, ".ids.npy")
    odd = sorted(f for f in before if int(f.split("-")[1]) % 2 == 1)
    assert len(odd) == 2, (sorted(before), logs[-3000:])  # rank 1 finished exactly 2 before its kill
    assert not os.path.exists(out / "tokens.index.json")
    even = len(before) - len(odd)
    code, output, logs = one_node(job, tmp_path, "log_again")
    assert code == 0, output[-2000:] + logs[-3000:]
    assert "rank 1 of 2: 8 of 16 shards (index % 2 == 1), 2 already done" in logs, logs
    assert f"rank 0 of 2: 8 of 16 shards (index % 2 == 0), {even} already done" in logs, logs
    after = _stamps(out, ".ids.npy")
    assert len(after) == 16 and all(after[f] == before[f] for f in before)  # kept, not rewritten
    single(_tokenize(corpus, tmp_path / "one", shard_size=3))
    same_tree(tmp_path / "one", out)


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    import paddle

    from data_prep.detector.config import DetectorConfig
    from data_prep.detector.model import BottomUpAttention
    from vlcore.formats import weights_file

    from region_helpers import make_images, tiny_config_file
    d = tmp_path_factory.mktemp("extract")
    make_images(str(d / "imgs"), [(64, 80)] * 6, seed=4)
    cfg_path = tiny_config_file(str(d), min_boxes=4, max_boxes=6)
    paddle.seed(5)
    weights_file.save(str(d / "w.safetensors"), BottomUpAttention(DetectorConfig.load(cfg_path)).state_dict())
    return d, cfg_path, str(d / "w.safetensors")


def test_region_extractor_on_two_ranks_rank_0_merges(detector, tmp_path):
    from vlcore.formats.region_store import RegionStore
    d, cfg_path, weights = detector

    def job(out):
        return ["-m", "data_prep.extract_region_features", "--images", d / "imgs", "--out", out, "--weights",
                weights, "--detector-config", cfg_path, "--no-progress"]
    single(job(tmp_path / "one"))
    code, out, logs = one_node(job(tmp_path / "two"), tmp_path)
    assert code == 0, out[-2000:] + logs[-3000:]
    assert "rank 0 of 2: merged 2 parts, 6 records copied" in logs, logs
    for r in (0, 1):
        assert os.path.isfile(tmp_path / f"two.shard-0000{r}-of-00002" / "part_done.json")
    merged, want = RegionStore(str(tmp_path / "two")), RegionStore(str(tmp_path / "one"))
    assert sorted(merged.keys()) == sorted(want.keys()) and len(want) == 6
    for key in want.keys():
        assert merged.get_raw(key) == want.get_raw(key)  # the same computation, the same bytes
