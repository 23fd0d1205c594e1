"""Checkpoints under damage, in-process on the toy model of test_engine:
zeroed / truncated / bit-flipped files, checkpoints of earlier versions
(no checksums.json), a full disk while saving or logging, rotation and the
leftovers of dead writers."""
import json
import logging
import os
import re
import subprocess
import sys

import numpy as np
import paddle
import pytest
from test_engine import Toy, ToyData

from vlcore.formats import weights_file
from vlcore.framework import checkpoint as ckpt
from vlcore.framework import rundir
from vlcore.framework.engine import Trainer
from vlcore.framework.optim import build_optimizer
from vlcore.framework.runlog import MetricsWriter, read_metrics, setup_logger
from vlcore.framework.schema import GlobalConfig, LRSchedulerConfig, OptimizerConfig, TrainConfig

import fault_inject


def _fit(out, steps, resume="", keep_last=0, save_interval=1):
    """Train the toy for ``steps`` optimizer steps in ``out``; returns the
    final parameters. Parameter (and so optimizer-state) names restart in
    every call, as in a new process."""
    with paddle.utils.unique_name.guard():
        return _fit_named(out, steps, resume, keep_last, save_interval)


def _fit_named(out, steps, resume, keep_last, save_interval):
    paddle.seed(0)
    model = Toy()
    cfg = TrainConfig(Global=GlobalConfig(output_dir=str(out), max_steps=steps, log_interval=1,
                                          save_interval=save_interval, keep_last=keep_last, resume=resume,
                                          progress_bar=False, visualdl=False),
                      Optimizer=OptimizerConfig(lr=0.1, grad_clip=0.0), LRScheduler=LRSchedulerConfig(name="constant"))
    opt, sched = build_optimizer(cfg.Optimizer, cfg.LRScheduler, model, steps)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 3)).astype("float32"), rng.normal(size=(64, 2)).astype("float32")
    metrics = MetricsWriter(str(out), visualdl=False)
    try:
        Trainer(cfg, model, opt, sched, ToyData(x, y, 4), str(out), logging.getLogger("vlcore.test"), metrics).fit()
    finally:
        metrics.close()
    return {k: v.numpy() for k, v in model.state_dict().items()}


def _steps(out):
    return [r["step"] for r in read_metrics(os.path.join(out, "metrics.jsonl"))]


def _temps(out):
    return sorted(n for n in os.listdir(out) if ".tmp" in n or ".old-" in n)


@pytest.fixture
def run4(tmp_path):
    """A toy run of 4 steps with a checkpoint after each, and the final
    parameters of the uninterrupted run."""
    out = tmp_path / "run"
    final = _fit(out, 4)
    return out, final


def test_checkpoint_has_checksums_of_every_file(run4):
    out, _ = run4
    manifest = json.loads((out / "step_4" / ckpt.MANIFEST).read_text())
    files = manifest["files"]
    assert sorted(files) == [ckpt.MODEL_FILE, ckpt.OPTIMIZER_FILE, ckpt.STATE_FILE]
    for name, entry in files.items():
        assert entry["size"] == os.path.getsize(out / "step_4" / name) > 0
    assert ckpt.verify(str(out / "step_4")) is True


@pytest.mark.parametrize("damage, reason", [
    ("zero", "size 0 bytes"),
    ("truncate", "truncated or overwritten"),
    ("flip", "SHA-256 differs"),
], ids=["zero", "truncate", "flip"])
def test_resume_auto_falls_back_to_newest_intact_checkpoint(run4, tmp_path, caplog, damage, reason):
    out, final = run4
    model_file = out / "step_4" / ckpt.MODEL_FILE
    data = model_file.read_bytes()
    if damage == "zero":
        model_file.write_bytes(b"")
    elif damage == "truncate":
        model_file.write_bytes(data[: len(data) // 2])
    else:  # same size, one byte changed: only the checksum can tell
        model_file.write_bytes(data[:-20] + bytes([data[-20] ^ 0xFF]) + data[-19:])
    with caplog.at_level(logging.INFO, logger="vlcore.test"):
        resumed = _fit(out, 4, resume="auto")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(out / "step_4") in warnings[0] and reason in warnings[0], warnings
    assert f"resumed from {out / 'step_3'} (step 3)" in caplog.text
    # step 4 was trained again (exactly: the parameters equal the uninterrupted run's) and saved intact
    for k in final:
        np.testing.assert_array_equal(resumed[k], final[k], err_msg=k)
    assert ckpt.verify(str(out / "step_4")) and (out / "latest").read_text().strip() == "step_4"
    assert _steps(out) == [1, 2, 3, 4] and _temps(out) == []


def test_damaged_checkpoint_without_manifest_is_unreadable_not_a_traceback(run4, caplog):
    """Checkpoints of earlier versions have no checksums.json: they load
    unverified, and a truncated one is still recognised when read."""
    out, _ = run4
    for step in (3, 4):
        os.remove(out / f"step_{step}" / ckpt.MANIFEST)
    model_file = out / "step_4" / ckpt.MODEL_FILE
    model_file.write_bytes(model_file.read_bytes()[:100])
    with caplog.at_level(logging.INFO, logger="vlcore.test"):
        _fit(out, 4, resume="auto")
    assert "skipping damaged checkpoint" in caplog.text and "damaged, truncated or not a safetensors file" in caplog.text
    assert f"{out / 'step_3'} has no {ckpt.MANIFEST}" in caplog.text and "unverified" in caplog.text
    assert "resumed from" in caplog.text and "(step 3)" in caplog.text


def test_explicit_resume_of_damaged_checkpoint_is_an_error_naming_the_file(run4):
    out, _ = run4
    (out / "step_4" / ckpt.OPTIMIZER_FILE).write_bytes(b"")
    with pytest.raises(ckpt.CheckpointError, match=re.escape(f"step_4/{ckpt.OPTIMIZER_FILE}: size 0 bytes")):
        _fit(out, 6, resume=str(out / "step_4"))


@pytest.mark.parametrize("suffix", [".safetensors", ".pdparams"])
@pytest.mark.parametrize("content, message", [
    (b"", "empty file (0 bytes)"),
    ("half", "truncated"),
    (b"\0" * 4096, "truncated or not a"),
], ids=["empty", "half", "zeros"])
def test_load_weights_of_a_damaged_file_names_it(tmp_path, content, message, suffix):
    """Both formats: the toolkit's safetensors and Paddle's pickles."""
    good = tmp_path / f"good{suffix}"
    if suffix == ".pdparams":
        paddle.save(Toy().state_dict(), str(good))
    else:
        weights_file.save(str(good), Toy().state_dict())
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(good.read_bytes()[:200] if content == "half" else content)
    with pytest.raises(ckpt.CheckpointError) as e:
        ckpt.load_weights(str(bad))
    assert str(e.value).startswith(str(bad)) and message in str(e.value) and "\n" not in str(e.value)
    assert set(ckpt.load_weights(str(good))) == set(Toy().state_dict())


def test_load_weights_of_a_run_checks_its_latest_checkpoint(run4):
    """tools/eval.py with Global.checkpoint=<run dir>: the damaged latest
    checkpoint is an error naming the file (no silent fall-back for eval)."""
    out, _ = run4
    (out / "step_4" / ckpt.MODEL_FILE).write_bytes(b"\x80" + b"\0" * 50 + b".")
    with pytest.raises(ckpt.CheckpointError, match=re.escape(f"step_4/{ckpt.MODEL_FILE}: size 52 bytes")):
        ckpt.load_weights(str(out))


def test_disk_full_while_saving_leaves_previous_checkpoint_and_no_temp(tmp_path):
    out = tmp_path / "run"
    with fault_inject.inject(out, match=ckpt.MODEL_FILE, nth=3, after=100):
        with pytest.raises(rundir.DiskFullError) as e:
            _fit(out, 4)
    assert str(e.value) == f"no space left on device while writing {out / 'step_3' / ckpt.MODEL_FILE}"
    assert _temps(out) == [] and not (out / "step_3").exists()
    assert (out / "latest").read_text().strip() == "step_2" and ckpt.verify(str(out / "step_2"))
    assert _steps(out) == [1, 2, 3]
    # room again: resume=auto continues from step 2 and logs every step once
    _fit(out, 4, resume="auto")
    assert _steps(out) == [1, 2, 3, 4] and ckpt.verify(str(out / "step_4")) and _temps(out) == []


def test_disk_full_while_logging_metrics_cuts_the_line_back(tmp_path):
    m = MetricsWriter(str(tmp_path), visualdl=False)
    m.write({"step": 1, "loss": 1.0})
    m.close()
    with fault_inject.inject(tmp_path, match="metrics.jsonl", nth=1, after=10):  # 10 bytes fit
        m = MetricsWriter(str(tmp_path), visualdl=False)
        with pytest.raises(rundir.DiskFullError, match="while writing .*metrics.jsonl$"):
            m.write({"step": 2, "loss": 0.5})
        m.close()
    assert [r["step"] for r in read_metrics(str(tmp_path / "metrics.jsonl"))] == [1]
    assert (tmp_path / "metrics.jsonl").read_text().endswith("}\n")


def test_disk_full_while_writing_train_log_stops_the_run(tmp_path):
    logger = setup_logger(str(tmp_path), name="vlcore.test_full_log")
    logger.info("first line")
    with fault_inject.inject(tmp_path, match="train.log", nth=1, after=5):
        logger = setup_logger(str(tmp_path), name="vlcore.test_full_log")  # reopened under the plan
        with pytest.raises(rundir.DiskFullError, match="while writing .*train.log$"):
            logger.info("second line, which does not fit")
        logger.info("third line: console only now")  # no second exception
    for h in logger.handlers:
        h.close()
    assert (tmp_path / "train.log").read_text().splitlines()[-1].endswith("first line")
    assert (tmp_path / "train.log").read_text().endswith("\n")


def test_rotation_logs_what_it_deletes(tmp_path, caplog):
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="vlcore.test"):
        _fit(out, 4, keep_last=2)
    assert [s for s, _ in ckpt.list_checkpoints(str(out))] == [3, 4]
    deleted = [r.getMessage() for r in caplog.records if "keep_last=2: deleted" in r.getMessage()]
    assert deleted == ["keep_last=2: deleted step_1", "keep_last=2: deleted step_2"]
    assert _temps(out) == []


def test_stale_temps_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    live = str(os.getppid())
    for name in (f".step_6.tmp-{dead}", f".step_4.old-{dead}", f".step_8.tmp-{live}"):
        os.makedirs(tmp_path / name)
        (tmp_path / name / ckpt.MODEL_FILE).write_bytes(b"half")
    for name in (f"latest.tmp-{dead}", "config.yaml.tmp", f"eval_metrics.json.tmp-{live}", "metrics.jsonl"):
        (tmp_path / name).write_text("x")
    removed = rundir.remove_stale_temps(str(tmp_path))
    assert removed == sorted([f".step_4.old-{dead}", f".step_6.tmp-{dead}", "config.yaml.tmp",
                              f"latest.tmp-{dead}"])
    assert sorted(os.listdir(tmp_path)) == sorted([f".step_8.tmp-{live}", f"eval_metrics.json.tmp-{live}",
                                                   "metrics.jsonl"])


def test_metrics_rewind_keeps_steps_up_to_resume_point_and_drops_torn_lines(tmp_path):
    m = MetricsWriter(str(tmp_path), visualdl=False)
    for step in (1, 2, 3):
        m.write({"step": step, "loss": 1.0 / step})
    m.write({"step": 2, "split": "eval", "R@1": 0.5})
    m.write({"note": "no step"})
    m._fh.append('{"step": 4, "lo')  # a line a kill cut short
    assert m.rewind(2) == 2
    m.write({"step": 3, "loss": 0.3})
    m.close()
    records = read_metrics(str(tmp_path / "metrics.jsonl"))
    assert [(r.get("step"), r.get("split")) for r in records] == [(1, None), (2, None), (2, "eval"),
                                                                   (None, None), (3, None)]
    assert records[-1]["loss"] == 0.3


def test_run_lock_names_holder_and_takes_over_a_dead_holders_file(tmp_path):
    first = rundir.RunLock(str(tmp_path))
    assert first.acquire() is None
    holder = json.loads((tmp_path / ".lock").read_text())
    assert holder["pid"] == os.getpid() and holder["host"] and holder["started"]
    with pytest.raises(rundir.RunLockedError, match=rf"in use by another training run \(pid {os.getpid()} on host "):
        rundir.RunLock(str(tmp_path)).acquire()  # a second open file description: flock refuses it
    first.release()
    assert (tmp_path / ".lock").read_text() == ""
    # the file a SIGKILLed holder leaves (the kernel dropped its flock)
    (tmp_path / ".lock").write_text(json.dumps({"pid": 4242, "host": "h1", "started": "yesterday"}))
    again = rundir.RunLock(str(tmp_path))
    note = again.acquire()
    assert note == (f"took over the lock file {tmp_path / '.lock'} left by a process that is no longer running "
                    "(pid 4242 on host h1, started yesterday)")
    again.release()


@pytest.mark.parametrize("err", ["ENOSPC", "EDQUOT"])
def test_disk_full_and_quota_errors_become_one_line(err):
    import errno
    with pytest.raises(rundir.DiskFullError, match="^no space left on device while writing /x/y$"):
        with rundir.writing("/x/y"):
            raise OSError(getattr(errno, err), "full")
    with pytest.raises(PermissionError):  # other errors pass unchanged
        with rundir.writing("/x/y"):
            raise PermissionError(13, "denied")


def test_init_from_names_missing_and_unexpected_keys(caplog):
    from vlcore.framework.run import _log_init_keys
    log = logging.getLogger("vlcore.test_init")
    missing = [f"head.w{i}" for i in range(10)]
    with caplog.at_level(logging.DEBUG, logger="vlcore.test_init"):
        _log_init_keys(log, "ckpt.pdparams", missing, ["extra.bias"])
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert info == ["initialised from ckpt.pdparams: 10 missing (head.w0, head.w1, head.w2, head.w3, head.w4, "
                    "head.w5, head.w6, head.w7 ... and 2 more), 1 unexpected (extra.bias) keys"]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert debug == ["init_from ckpt.pdparams: all 10 missing keys: " + ", ".join(missing)]
