"""data_prep.job_part and the rank-aware data_prep.shards: which shards a
rank or a ``--shard i/N`` task takes, what the launcher's environment means,
rank 0 waiting for the other parts (and naming the missing ones when they do
not come), and a job split into parts giving the files one process writes.
The ranks here are processes or threads given the launcher's variables by
hand; tests/data_prep/test_launch_data_prep.py runs the real launcher."""
import filecmp
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from data_prep.job_part import SINGLE, Part, PartError, part_from, selected_device, wait_until
from data_prep.make_shards import convert
from data_prep.shards import JobError, check_layout, wait_for_shards

from helpers import ROOT, make_tiny_corpus, tool_env


def _env(rank, world):
    return {"PADDLE_TRAINER_ID": str(rank), "PADDLE_TRAINERS_NUM": str(world)}


def _quiet(*_a, **_k):
    pass


@pytest.mark.parametrize("world", [1, 2, 3, 7])
@pytest.mark.parametrize("num_shards", [1, 2, 5, 16])
def test_every_shard_has_exactly_one_rank(world, num_shards):
    parts = [part_from(environ=_env(r, world)) for r in range(world)]
    taken = [i for p in parts for i in p.mine(num_shards)]
    assert sorted(taken) == list(range(num_shards))
    for p in parts:
        assert p.mine(num_shards) == [i for i in range(num_shards) if i % world == p.index]
        assert all(p.owner(i) == p.index for i in p.mine(num_shards))
    # loads differ by at most one shard
    sizes = [len(p.mine(num_shards)) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_the_launcher_environment_and_shard_argument():
    assert part_from(environ={}) == SINGLE
    assert part_from(environ=_env(0, 1)) == SINGLE  # --nproc_per_node 1: the whole job
    p = part_from(environ=_env(1, 3))
    assert (p.index, p.count, p.origin, str(p)) == (1, 3, "launcher", "rank 1 of 3")
    assert p.waits and not p.finishes
    r0 = part_from(environ=_env(0, 3))
    assert r0.waits and r0.finishes and r0.finisher == "rank 0"
    s = part_from("2/4", environ={})
    assert (s.index, s.count, s.origin, str(s)) == (2, 4, "--shard", "shard 2/4")
    assert not s.waits and not s.finishes  # array tasks wait for nobody; shard 0 included
    assert not part_from("0/4", environ={}).finishes
    assert part_from("0/1", environ={}).finishes is False and SINGLE.finishes and not SINGLE.waits
    for bad, msg in [("2/2", "need 0 <= i < N"), ("x", "expected i/N"), ("1/2/3", "expected i/N")]:
        with pytest.raises(PartError, match=msg):
            part_from(bad, environ={})
    with pytest.raises(PartError, match="under a launcher with 2 ranks"):
        part_from("0/2", environ=_env(0, 2))
    with pytest.raises(PartError, match="PADDLE_TRAINER_ID=2 with PADDLE_TRAINERS_NUM=2"):
        part_from(environ=_env(2, 2))
    with pytest.raises(PartError, match="PADDLE_TRAINERS_NUM='two'"):
        part_from(environ={"PADDLE_TRAINERS_NUM": "two"})
    with pytest.raises(PartError, match="--wait-timeout"):
        part_from(wait_timeout=0, environ={})


def test_selected_device_is_the_launchers_gpu():
    assert selected_device({}) is None
    assert selected_device({"FLAGS_selected_gpus": "3"}) == "gpu:3"
    assert selected_device({"FLAGS_selected_gpus": "1,2"}) == "gpu:1"  # one process, several cards: the first
    assert selected_device({"FLAGS_selected_gpus": ""}) is None


def test_wait_gives_up_after_no_progress_and_names_what_is_missing(tmp_path):
    part = Part(0, 2, "launcher", wait_timeout=0.6)
    (tmp_path / "x-00000-of-00003.jsonl").write_text("")
    t0 = time.monotonic()
    with pytest.raises(PartError) as e:
        wait_for_shards(str(tmp_path), "x", 3, "jsonl", part, log=_quiet)
    assert time.monotonic() - t0 >= 0.6
    msg = str(e.value)
    assert "\n" not in msg and "rank 0 of 2: waited 1 s with no progress" in msg
    assert "x-00001-of-00003.jsonl (rank 1); x-00002-of-00003.jsonl (rank 0)" in msg
    assert "run the same command again: finished parts are kept" in msg

    # a new part restarts the clock: 3 parts 0.4 s apart finish a wait of 0.6 s
    made = []

    def arrive():
        for i in (1, 2):
            time.sleep(0.4)
            (tmp_path / f"x-0000{i}-of-00003.jsonl").write_text("")
            made.append(i)
    t = threading.Thread(target=arrive)
    t.start()
    wait_for_shards(str(tmp_path), "x", 3, "jsonl", part, log=_quiet)
    t.join()
    assert made == [1, 2]
    # only rank 0 of a launched job waits
    for other in (Part(1, 2, "launcher", wait_timeout=0.1), Part(0, 2, "--shard", wait_timeout=0.1), SINGLE):
        wait_for_shards(str(tmp_path / "none"), "x", 3, "jsonl", other)


def test_other_ranks_wait_for_rank_0s_layout(tmp_path):
    rank1 = Part(1, 2, "launcher", wait_timeout=0.5)
    with pytest.raises(PartError, match=r"job\.layout\.json \(written by rank 0\)"):
        check_layout(str(tmp_path), "job", {"a": 1}, part=rank1, log=_quiet)
    assert not os.path.exists(tmp_path / "job.layout.json")  # rank 1 never writes it
    check_layout(str(tmp_path), "job", {"a": 1}, part=Part(0, 2, "launcher"))
    check_layout(str(tmp_path), "job", {"a": 1}, part=rank1, log=_quiet)
    # another job's layout: an error at once without --force ...
    with pytest.raises(JobError, match="different 'job' job"):
        check_layout(str(tmp_path), "job", {"a": 2}, part=rank1, log=_quiet)
    # ... and with --force rank 1 waits for rank 0 to replace it (removing the old shards)
    (tmp_path / "job-00000-of-00002.jsonl").write_text("old")
    done = threading.Event()

    def rank1_run():
        check_layout(str(tmp_path), "job", {"a": 2}, force=True, part=Part(1, 2, "launcher", wait_timeout=5),
                     log=_quiet)
        done.set()
    t = threading.Thread(target=rank1_run)
    t.start()
    time.sleep(0.3)
    assert not done.is_set() and (tmp_path / "job-00000-of-00002.jsonl").exists()
    check_layout(str(tmp_path), "job", {"a": 2}, force=True, part=Part(0, 2, "launcher"))
    t.join(5)
    assert done.is_set() and not (tmp_path / "job-00000-of-00002.jsonl").exists()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_tiny_corpus(os.path.join(str(tmp_path_factory.mktemp("parts")), "demo"))


def _same_tree(a, b, skip=()):
    names = sorted(os.path.relpath(os.path.join(d, f), a) for d, _, fs in os.walk(a) for f in fs)
    assert names == sorted(os.path.relpath(os.path.join(d, f), b) for d, _, fs in os.walk(b) for f in fs)
    for n in names:
        if os.path.basename(n) not in skip:
            assert filecmp.cmp(os.path.join(a, n), os.path.join(b, n), shallow=False), n
    return names


def test_parts_in_threads_write_what_one_process_writes(corpus, tmp_path):
    manifest = os.path.join(corpus, "pairs_train.jsonl")
    ref = convert(manifest, "pairs", str(tmp_path / "one"), shard_size=5, log=_quiet)
    out, results = str(tmp_path / "two"), {}

    def rank(r):
        results[r] = convert(manifest, "pairs", out, shard_size=5, log=_quiet,
                             part=Part(r, 2, "launcher", wait_timeout=30))
    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results[1] is None  # rank 1 writes its shards only
    def same(summary):
        return {k: v for k, v in summary.items() if k not in ("this_run", "corpus")}
    assert same(results[0]) == same(ref)
    assert results[0]["corpus"]["path"] == ref["corpus"]["path"].replace(str(tmp_path / "one"), out)
    assert results[0]["this_run"]["shards_run"] == 5  # rank 0's 5 of the 10
    names = _same_tree(str(tmp_path / "one"), out, skip=("shards.json",))
    assert sum(n.endswith(".tar") for n in names) == 10


def _make_shards_cli(args, rank=None, world=None, **env):
    if rank is not None:
        env.update(_env(rank, world))
    return subprocess.run([sys.executable, "-m", "data_prep.make_shards", *args], cwd=ROOT, env=tool_env(**env),
                          capture_output=True, text=True, timeout=120)


def test_rank_0_waits_for_the_others_and_names_missing_parts(corpus, tmp_path):
    manifest = os.path.join(corpus, "pairs_train.jsonl")
    args = ["--manifest", manifest, "--out", str(tmp_path / "out"), "--shard-size", "10"]
    # rank 0 alone: writes shards 0, 2, 4, then gives up on rank 1's, in one line
    alone = _make_shards_cli(args + ["--wait-timeout", "1"], 0, 2)
    assert alone.returncode == 2, alone.stderr
    err = alone.stderr.strip().splitlines()
    assert err[-1].startswith("error: rank 0 of 2: waited 1 s") and "Traceback" not in alone.stderr
    assert "shards-00001-of-00005.tar (rank 1); shards-00003-of-00005.tar (rank 1)" in err[-1]
    assert sorted(f for f in os.listdir(tmp_path / "out") if f.endswith(".tar")) == [
        f"shards-0000{i}-of-00005.tar" for i in (0, 2, 4)]
    # rank 0 again, waiting, and rank 1 started while it waits: rank 0 skips its shards and finishes
    waiting = subprocess.Popen([sys.executable, "-m", "data_prep.make_shards", *args, "--wait-timeout", "60"],
                               cwd=ROOT, env=tool_env(**_env(0, 2)), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not os.path.exists(tmp_path / "out" / "shards.layout.json") and time.time() < deadline:
        time.sleep(0.1)
    one = _make_shards_cli(args, 1, 2)
    assert one.returncode == 0, one.stderr
    assert "rank 1 of 2: 2 shards written now" in one.stdout and "rank 0 writes shards.json" in one.stdout
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert "rank 0 of 2: 3 of 5 shards (index % 2 == 0), 3 already done" in out
    ref = convert(manifest, "pairs", str(tmp_path / "ref"), shard_size=10, log=_quiet)
    _same_tree(str(tmp_path / "ref"), str(tmp_path / "out"), skip=("shards.json",))
    summary = json.loads((tmp_path / "out" / "shards.json").read_text())
    assert (summary["shards"], summary["records"]) == (ref["shards"], ref["records"]) == (5, 48)
    assert summary["this_run"]["shards_run"] == 0


def test_shard_tasks_then_the_finishing_run(corpus, tmp_path):
    """Slurm-array style: the tasks in any order, none waits; the command
    without --shard then only writes the summary."""
    manifest = os.path.join(corpus, "images_train.jsonl")
    args = ["--manifest", manifest, "--kind", "labelled", "--out", str(tmp_path / "out"), "--shard-size", "4"]
    from data_prep.make_shards import main
    for i in (2, 0, 1):
        assert main(args + ["--shard", f"{i}/3"]) == 0
        assert not os.path.exists(tmp_path / "out" / "shards.json")
    assert main(args + ["--shard", "3/3"]) == 2  # a bad part is one line, exit 2
    summary = convert(manifest, "labelled", str(tmp_path / "out"), shard_size=4, log=_quiet)
    assert summary["this_run"]["shards_run"] == 0 and summary["shards"] == 6
    convert(manifest, "labelled", str(tmp_path / "ref"), shard_size=4, log=_quiet)
    _same_tree(str(tmp_path / "ref"), str(tmp_path / "out"), skip=("shards.json",))


def test_kill_hook_takes_only_the_named_rank(corpus, tmp_path):
    manifest = os.path.join(corpus, "pairs_train.jsonl")
    args = ["--manifest", manifest, "--out", str(tmp_path / "out"), "--shard-size", "5"]
    killed = _make_shards_cli(args, 0, 2, DATA_PREP_KILL_AFTER_SHARDS=1, DATA_PREP_KILL_RANK=0)
    assert killed.returncode == -9
    spared = _make_shards_cli(args, 1, 2, DATA_PREP_KILL_AFTER_SHARDS=1, DATA_PREP_KILL_RANK=0)
    assert spared.returncode == 0, spared.stderr
    assert len([f for f in os.listdir(tmp_path / "out") if f.endswith(".tar")]) == 5 + 1


def test_wait_until_reports_progress_once(tmp_path):
    lines = []
    wait_until(lambda: [], Part(0, 2, "launcher"), "nothing", log=lines.append)
    assert lines == []  # nothing missing: no wait, no message


def test_back_translation_in_shard_tasks_equals_one_run(tmp_path):
    from data_prep.rewrite import backtranslate

    from rewrite_fixtures import shard_files, write_pairs
    records = write_pairs(tmp_path / "pairs.jsonl", 10, per_image=2, seed=3)
    tsv = tmp_path / "rt.tsv"
    with open(tsv, "w") as f:
        for r in records:
            for c in r["captions"]:
                f.write(f"{c}\t{c.replace('a ', 'one ', 1)}\n{c}\t{c.upper()}!\n")
    args = ["--pairs", str(tmp_path / "pairs.jsonl"), "--backward", f"file:{tsv}", "--pivots", "1",
            "--nbest", "2", "--shard-size", "4"]
    assert backtranslate.main(args + ["--out", str(tmp_path / "one")]) == 0
    for i in (1, 0, 2):
        assert backtranslate.main(args + ["--out", str(tmp_path / "parts"), "--shard", f"{i}/3"]) == 0
    ref = shard_files(tmp_path / "one", "bt")
    assert len(ref) == 5
    assert [os.path.basename(f) for f in ref] == [os.path.basename(f) for f in shard_files(tmp_path / "parts", "bt")]
    for f in ref:
        assert filecmp.cmp(f, tmp_path / "parts" / os.path.basename(f), shallow=False)
