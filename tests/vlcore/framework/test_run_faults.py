"""tools/train.py under faults: bad ranges in the config, two runs on one
output directory, SIGKILL during training and at chosen points of a
checkpoint save, a full disk (injected, and a real small tmpfs when the test
may mount one). Every failure is one line and exit code 2; every
interrupted run resumes with resume=auto into the same result as an
uninterrupted one, each step logged once."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from vlcore.framework import checkpoint as ckpt
from vlcore.framework.runlog import read_metrics

from helpers import ROOT, make_tiny_corpus, run_tool, tiny_config, tool_env

STEPS = 6
RUNNER = os.path.join(ROOT, "tests", "ckpt_scripts", "train_with_faults.py")
# the same as test_resume: a checkpoint every 2 steps, no evaluation
COMMON = {"Global": {"max_steps": STEPS, "save_interval": 2}, "DataLoader": {"Eval": None}}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_tiny_corpus(os.path.join(str(tmp_path_factory.mktemp("corpus")), "demo"))


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, corpus):
    """The uninterrupted run's output dir (tests copy, never change it)."""
    tmp = tmp_path_factory.mktemp("ref")
    r = run_tool(["tools/train.py", "-c", tiny_config(tmp, corpus, tmp / "out", **COMMON)])
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp / "out"


@pytest.fixture(scope="module")
def reference(reference_run):
    """metrics.jsonl of the uninterrupted run."""
    return _records(reference_run)


def _records(out):
    """Per-step records without the wall-clock fields."""
    return [{k: v for k, v in r.items() if k not in ("time", "samples_per_s")}
            for r in read_metrics(os.path.join(out, "metrics.jsonl"))]


def _one_line_error(result):
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return errors[0]


def _leftovers(out):
    return sorted(n for n in os.listdir(out) if ".tmp" in n or ".old-" in n)


def _with_faults(plan, cfg, *args):
    return run_tool([RUNNER, json.dumps(plan), os.path.join(ROOT, "tools", "train.py"), "-c", cfg, *args],
                    VLCORE_NO_REEXEC=1)


def _resume_and_check(cfg, out, reference):
    """resume=auto finishes the run: every step logged once, equal to the
    uninterrupted run; every checkpoint verifies; nothing temporary left."""
    r = run_tool(["tools/train.py", "-c", cfg, "-o", "Global.resume=auto"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert _records(out) == reference
    for _, path in ckpt.list_checkpoints(str(out)):
        assert ckpt.verify(path), path
    assert (out / "latest").read_text().strip() == f"step_{STEPS}" and _leftovers(out) == []
    return r


# ------------------------------------------------------------------ config
@pytest.mark.parametrize("sections, key, problem", [
    ({"Global": {"save_interval": 0}}, "Global.save_interval", "must be >= 1, got 0"),
    ({"DataLoader": {"Train": {"batch_size": 0}}}, "DataLoader.Train.batch_size", "must be >= 1, got 0"),
    ({"Global": {"output_dir": "A_FILE"}}, "Global.output_dir", "exists and is not a directory"),
], ids=["save_interval", "batch_size", "output_dir_is_a_file"])
def test_bad_ranges_fail_before_any_work_naming_key_and_file(tmp_path, corpus, sections, key, problem):
    """Were: ZeroDivisionError after step 1; "max() arg is an empty
    sequence"; FileExistsError -- tracebacks."""
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    if sections.get("Global", {}).get("output_dir") == "A_FILE":
        sections = {"Global": {"output_dir": str(a_file)}}
    cfg = tiny_config(tmp_path, corpus, tmp_path / "out", **sections)
    line = _one_line_error(run_tool(["tools/train.py", "-c", cfg]))
    assert line.startswith(f"error: {cfg}: {key}: ") and problem in line, line
    assert not (tmp_path / "out").exists()


def test_every_batch_size_in_both_model_packages_is_checked():
    import unimo.builders  # noqa: F401,E401
    import unimo.finetune_cls
    import unimo.seq2seq  # noqa: F401,E401
    from vlcore.framework.config import ConfigError, build
    from vlcore.framework.registry import EVALUATOR, TRAIN_DATA
    from vlcore.framework.schema import TrainConfig
    checked = []
    for section, reg in (("Train", TRAIN_DATA), ("Eval", EVALUATOR)):
        for name in reg.names():
            cls = reg.config_class(name)
            if "batch_size" not in cls.__dataclass_fields__:
                continue
            with pytest.raises(ConfigError, match=rf"^cfg.yaml: DataLoader\.{section}\.batch_size: must be >= 1"):
                build(TrainConfig, {"DataLoader": {section: {"name": name, "batch_size": 0}}}, {"": "cfg.yaml"})
            checked.append(name)
    assert len(checked) >= 6, checked  # UNIMO, UNIMO-2, Finetune, retrieval, generation, classification


@pytest.mark.parametrize("key, value, problem", [
    ("Global.max_steps", 0, "must be >= 1, got 0"),
    ("Global.accum_steps", 0, "must be >= 1, got 0"),
    ("Global.log_interval", 0, "must be >= 1, got 0"),
    ("Global.save_interval", -5, "must be >= 1, got -5"),
    ("Global.eval_interval", -1, "must be >= 0, got -1"),
    ("Global.keep_last", -1, "must be >= 0, got -1"),
    ("DataLoader.Train.num_workers", -1, "must be >= 0, got -1"),
])
def test_global_ranges_name_the_key_and_the_override(key, value, problem):
    import unimo2.builders  # noqa: F401  (DataLoader.Train: UNIMO2Corpora)
    from vlcore.framework.config import ConfigError, apply_overrides, build
    from vlcore.framework.schema import TrainConfig
    cfg, prov = {"DataLoader": {"Train": {"name": "UNIMO2Corpora"}}}, {"": "cfg.yaml"}
    apply_overrides(cfg, prov, [f"{key}={value}"])
    with pytest.raises(ConfigError) as e:
        build(TrainConfig, cfg, prov)
    assert str(e.value) == f"-o override: {key}: {problem}"
    build(TrainConfig, {"Global": {key.split(".")[-1]: 1}} if key.startswith("Global") else {}, {})  # 1 is fine


# -------------------------------------------------------------------- lock
@pytest.mark.slow
def test_second_run_on_the_same_output_dir_stops_at_once_naming_the_holder(tmp_path, corpus):
    out = tmp_path / "out"
    cfg = tiny_config(tmp_path, corpus, out, Global={"max_steps": 100000, "save_interval": 100000},
                      DataLoader={"Eval": None})
    first = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", cfg], cwd=ROOT,
                             env=tool_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (out / "metrics.jsonl").exists():  # the first run is training
            assert first.poll() is None and time.time() < deadline, "first run did not start"
            time.sleep(0.2)
        holder = json.loads((out / ".lock").read_text())
        assert holder["pid"] == first.pid
        log_size = (out / "train.log").stat().st_size
        t0 = time.time()
        second = run_tool(["tools/train.py", "-c", cfg])
        line = _one_line_error(second)
        assert f"pid {first.pid} on host {holder['host']}, started {holder['started']}" in line, line
        assert str(out) in line and time.time() - t0 < 60
        assert first.poll() is None  # the holder runs on, its log untouched by the second run
        assert b"train: world size" not in (out / "train.log").read_bytes()[log_size:]
    finally:
        first.kill()
        first.wait()


# ------------------------------------------------------------- SIGKILL
@pytest.mark.slow
def test_killed_run_leaves_lock_taken_over_and_metrics_without_repeats(tmp_path, corpus, reference):
    out = tmp_path / "out"
    cfg = tiny_config(tmp_path, corpus, out, **COMMON)
    killed = run_tool(["tools/train.py", "-c", cfg], VLCORE_TEST_KILL_AT_STEP=5)
    assert killed.returncode == -signal.SIGKILL
    dead = json.loads((out / ".lock").read_text())["pid"]
    assert [r["step"] for r in _records(out)] == [1, 2, 3, 4, 5]
    r = _resume_and_check(cfg, out, reference)
    assert f"took over the lock file {out / '.lock'} left by a process that is no longer running (pid {dead}" in r.stdout
    assert "dropped 1 records of steps after 4" in r.stdout
    assert (out / ".lock").read_text() == ""  # a clean exit leaves no holder


@pytest.mark.slow
@pytest.mark.parametrize("point, plan, resumed_from", [
    # killed half-way through model.safetensors of step_4
    ("mid-file", {"match": "model.safetensors", "nth": 2, "after": 1000, "action": "kill"}, 2),
    # all data files of step_4 written, killed before its checksums
    ("before-manifest", {"match": "checksums.json", "nth": 2, "after": 0, "action": "kill"}, 2),
    # step_4 renamed into place, killed before `latest` names it: latest still says step_2
    ("before-pointer", {"match": "latest.tmp-*", "nth": 2, "after": 0, "action": "kill"}, 2),
    # keep_last=1: killed while deleting step_2 after step_4 was saved
    ("mid-rotation", {"kill_rmtree": ".step_*.old-*"}, 4),
], ids=["mid-file", "before-manifest", "before-pointer", "mid-rotation"])
def test_sigkill_during_checkpoint_save_then_resume(tmp_path, corpus, reference, point, plan, resumed_from):
    out = tmp_path / "out"
    keep = {"keep_last": 1} if point == "mid-rotation" else {}
    cfg = tiny_config(tmp_path, corpus, out, **dict(COMMON, Global=dict(COMMON["Global"], **keep)))
    killed = _with_faults(dict(plan, root=str(out)), cfg)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert ckpt.find_latest(str(out)) == str(out / f"step_{resumed_from}")
    assert ckpt.verify(str(out / f"step_{resumed_from}"))
    left = _leftovers(out)
    r = _resume_and_check(cfg, out, reference)
    assert f"resumed from {out / f'step_{resumed_from}'} (step {resumed_from})" in r.stdout
    if left:
        assert "removed leftovers of interrupted writers" in r.stdout and all(n in r.stdout for n in left)
    if point == "mid-rotation":
        assert left and left[0].startswith(".step_2.old-") and not (out / "step_2").exists()


# ----------------------------------------------------------- disk full
@pytest.mark.slow
@pytest.mark.parametrize("target, plan", [
    ("step_4/model.safetensors", {"match": "model.safetensors", "nth": 2, "after": 1000}),
    ("step_2/optimizer.safetensors", {"match": "optimizer.safetensors", "nth": 1, "after": 0}),
    ("metrics.jsonl", {"match": "metrics.jsonl", "nth": 1, "after": 450}),
    ("train.log", {"match": "train.log", "nth": 1, "after": 1500}),
    ("config.yaml", {"match": "config.yaml.tmp", "nth": 1, "after": 100}),
], ids=["model", "optimizer", "metrics", "train_log", "config"])
def test_disk_full_is_one_line_nothing_half_written_and_resume_works(tmp_path, corpus, reference, target, plan):
    out = tmp_path / "out"
    cfg = tiny_config(tmp_path, corpus, out, **COMMON)
    line = _one_line_error(_with_faults(dict(plan, root=str(out), action="enospc"), cfg))
    assert line == f"error: no space left on device while writing {out / target}"
    assert _leftovers(out) == []
    if (out / "metrics.jsonl").exists():  # whole lines only
        text = (out / "metrics.jsonl").read_text()
        assert text == "" or text.endswith("\n")
        read_metrics(str(out / "metrics.jsonl"))
    if (out / "train.log").exists():
        assert (out / "train.log").read_text().endswith("\n")
    latest = ckpt.find_latest(str(out))
    assert latest is None or (ckpt.verify(latest) and int(latest.rsplit("_", 1)[1]) < STEPS)
    if target.startswith("step_"):
        assert not (out / target).parent.exists()
    _resume_and_check(cfg, out, reference)


@pytest.mark.slow
def test_disk_full_writing_eval_metrics(tmp_path, corpus):
    out = tmp_path / "out"
    cfg = tiny_config(tmp_path, corpus, out, Global={"max_steps": 2})
    plan = {"root": str(out), "match": "eval_metrics.json.tmp-*", "nth": 1, "after": 5, "action": "enospc"}
    line = _one_line_error(_with_faults(plan, cfg))
    assert line == f"error: no space left on device while writing {out / 'eval_metrics.json'}"
    assert _leftovers(out) == [] and not (out / "eval_metrics.json").exists()
    assert ckpt.find_latest(str(out)) == str(out / "step_2")


def _mount_tmpfs(path, size):
    if os.geteuid() != 0:
        return False
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


@pytest.mark.slow
def test_disk_full_on_a_real_small_tmpfs(tmp_path, corpus, reference):
    """Needs root and permission to mount (skipped otherwise): a tmpfs with
    room for the run's logs and about 1.5 checkpoints."""
    probe = tmp_path / "probe"
    r = run_tool(["tools/train.py", "-c", tiny_config(tmp_path, corpus, probe, "probe.yaml",
                                                      **dict(COMMON, Global=dict(COMMON["Global"], max_steps=2)))])
    assert r.returncode == 0, r.stderr[-2000:]
    page = 4096
    pages = lambda p: -(-os.path.getsize(p) // page) * page  # tmpfs charges whole pages
    one_ckpt = sum(pages(probe / "step_2" / n) for n in os.listdir(probe / "step_2"))
    size = 64 * 1024 + one_ckpt * 3 // 2  # 64 KiB for config, logs, pointer
    mnt = tmp_path / "mnt"
    if not _mount_tmpfs(mnt, size):
        pytest.skip("needs root and permission to mount a tmpfs")
    try:
        out = mnt / "out"
        cfg = tiny_config(tmp_path, corpus, out, **COMMON)
        line = _one_line_error(run_tool(["tools/train.py", "-c", cfg]))
        assert line.startswith(f"error: no space left on device while writing {out}/"), line
        assert _leftovers(out) == []
        assert ckpt.find_latest(str(out)) == str(out / "step_2") and ckpt.verify(str(out / "step_2"))
        # make room and resume
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        _resume_and_check(cfg, out, reference)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["zero", "truncate"])
def test_eval_of_a_damaged_checkpoint_is_one_line_naming_the_file(tmp_path, corpus, reference_run, damage):
    """Were: EOFError / UnpicklingError tracebacks. tools/eval.py takes no
    lock (it only reads checkpoints and writes eval_metrics.json atomically)."""
    run = tmp_path / "run"
    shutil.copytree(reference_run / f"step_{STEPS}", run / f"step_{STEPS}")
    model_file = run / f"step_{STEPS}" / ckpt.MODEL_FILE
    model_file.write_bytes(b"" if damage == "zero" else model_file.read_bytes()[:5000])
    cfg = tiny_config(tmp_path, corpus, tmp_path / "eval_out")
    line = _one_line_error(run_tool(["tools/eval.py", "-c", cfg, "-o", f"Global.checkpoint={run}"]))
    assert line.startswith(f"error: {model_file}: size ") and "checksums.json records" in line, line
    os.remove(run / f"step_{STEPS}" / ckpt.MANIFEST)  # a checkpoint of an earlier version: no checksums
    line = _one_line_error(run_tool(["tools/eval.py", "-c", cfg, "-o", f"Global.checkpoint={model_file}"]))
    assert line.startswith(f"error: {model_file}: ") and ("empty file" in line or "truncated" in line), line
