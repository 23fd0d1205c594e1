"""What a newcomer sees: tools/infer.py --help lists every subcommand (they
depend on the config) even without -c; predict.py --help documents the pairs
file; a missing fine-tuning demo manifest says how to make it; the ITM
scoring of retrieval evaluation announces itself and shows a bar on a
terminal; skip reasons in the tests are self-contained."""
import io
import logging
import os
import re
import subprocess
import sys
import time

import numpy as np
import paddle

from vlcore.tasks import retrieval_eval

from helpers import ROOT, TESTS, run_tool

SUBCOMMANDS = ("answer", "caption", "generate", "rank")


def _help(*args):
    r = run_tool(["tools/" + args[0], *args[1:]], VLCORE_NO_REEXEC="1")
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_infer_help_without_config_lists_every_subcommand():
    out = _help("infer.py", "--help")
    assert "depends on the Arch.name of the config given with -c" in out
    for name in SUBCOMMANDS:
        assert re.search(rf"^  {name} +\S", out, re.M), (name, out)
    assert "Arch: UNIMO, UNIMO2, UNIMO2ForRetrieval, UNIMOForRetrieval" in out  # rank's


def test_infer_subcommand_help_without_config():
    out = _help("infer.py", "rank", "--help")
    assert "--image IMAGE" in out and "--captions" in out and "Arch.name UNIMO or UNIMO2" in out


def test_infer_without_config_still_needs_it():
    r = run_tool(["tools/infer.py", "rank", "--image", "x.png"], VLCORE_NO_REEXEC="1")
    assert r.returncode == 2 and "the following arguments are required: -c/--config" in r.stderr


def test_predict_help_documents_the_pairs_format():
    out = _help("predict.py", "--help")
    for text in ('{"image": "imgs/dog.jpg", "caption": "a dog on a beach"}', '"captions": [',
                 "imgs/dog.jpg<TAB>a dog on a beach", "relative to the pairs file's directory",
                 "itm_prob", "itc_cosine"):
        assert text in out, (text, out)


def test_missing_demo_task_manifest_says_how_to_make_it(tmp_path):
    from vlcore.data.demo import no_such_file
    e = no_such_file("DataLoader.Train.path", "data/demo/tasks/vqa_train.jsonl")
    assert isinstance(e, FileNotFoundError)
    assert str(e) == ("DataLoader.Train.path: 'data/demo/tasks/vqa_train.jsonl': no such file -- a demo task "
                      "manifest: make it with `python -m data_prep.make_demo_tasks data/demo`")
    e = no_such_file("DataLoader.Eval.path", "elsewhere/snli_ve_test.jsonl")
    assert str(e).endswith("`python -m data_prep.make_demo_tasks DEMO_CORPUS_DIR --out elsewhere`")
    assert str(no_such_file("DataLoader.Train.path", "my/vqa.jsonl")) == \
        "DataLoader.Train.path: 'my/vqa.jsonl': no such file"


def test_demo_task_file_names_are_the_ones_built(tmp_path):
    from vlcore.data.demo import task_file_names

    from cls_helpers import tiny_tasks
    _, tasks = tiny_tasks(tmp_path)
    assert set(os.listdir(tasks)) == task_file_names()


def test_vqa_demo_training_without_tasks_prints_the_command(tmp_path):
    """The shipped demo config, run where data/demo/tasks does not exist."""
    r = run_tool(["tools/train.py", "-c", os.path.join(ROOT, "configs", "unimo2", "vqa_demo.yaml")],
                 cwd=str(tmp_path), VLCORE_NO_REEXEC="1")
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == (
        "error: DataLoader.Train.path: 'data/demo/tasks/vqa_train.jsonl': no such file -- a demo task manifest: "
        "make it with `python -m data_prep.make_demo_tasks data/demo`")


def test_make_demo_tasks_without_corpus_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "data_prep.make_demo_tasks", str(tmp_path / "demo")], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'demo'}: not a demo corpus (no pairs_train.jsonl, pairs_test.jsonl, images_train.jsonl);"
        f" build it first with `python -m data_prep.make_demo_corpus --out {tmp_path / 'demo'}`"]


class _Model:
    def __init__(self):
        self.calls = []

    def logits(self, i, c):
        self.calls.append(len(i))
        time.sleep(0.11)  # a slow cross-encoder: tqdm redraws at most every 0.1 s
        return paddle.to_tensor(np.stack([np.asarray(c, "float32"), 2.0 * np.asarray(i, "float32")], 1))


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _scored(monkeypatch, stderr):
    model = _Model()
    scorer = retrieval_eval.batched_pair_scorer(model, "itm", "UNIMO2", 4, None, model.logits)
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    log = logging.getLogger("vlcore")
    log.addHandler(handler)
    old_level = log.level
    log.setLevel(logging.INFO)
    monkeypatch.setattr(sys, "stderr", stderr)
    try:
        needed = np.zeros([3, 5], bool)
        needed[:, 1:] = True
        out = retrieval_eval.score_pairs(needed, scorer)
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
    return out, lines, model.calls


def test_itm_scoring_is_announced_and_shows_a_bar_on_a_terminal(monkeypatch):
    out, lines, calls = _scored(monkeypatch, _Terminal())
    rows, cols = np.nonzero(out == out)
    np.testing.assert_allclose(out[rows, cols], 2.0 * rows - cols)   # margin logit[1] - logit[0]
    assert np.isnan(out[:, 0]).all() and calls == [4, 4, 4]          # the scorer's own batches
    assert lines == ["scoring 12 image-text pairs with the UNIMO2 cross-encoder (itm margin)"]
    bar = sys.stderr.getvalue() if isinstance(sys.stderr, _Terminal) else ""
    assert "scoring pairs" in bar and "12/12" in bar, repr(bar)


def test_no_bar_when_stderr_is_not_a_terminal(monkeypatch):
    stderr = io.StringIO()
    out, lines, _ = _scored(monkeypatch, stderr)
    assert stderr.getvalue() == "" and len(lines) == 1


def test_skip_reasons_do_not_point_at_files_the_repository_lacks():
    """Every skip reason in tests/ says what is missing and how to get it,
    not 'see STACK.md' (that file is not in the repository)."""
    offenders = []
    for folder, _, names in os.walk(TESTS):
        for name in sorted(names):
            path = os.path.join(folder, name)
            if name.endswith(".py") and path != os.path.abspath(__file__):
                with open(path, encoding="utf-8") as f:
                    if "STACK.md" in f.read():
                        offenders.append(os.path.relpath(path, ROOT))
    assert not offenders and not os.path.exists(os.path.join(ROOT, "STACK.md")), offenders


def test_setup_env_reports_each_package_and_keeps_pips_errors(tmp_path):
    """tools/setup_env.sh's pip_install: one numbered line per package pip
    collects, its errors kept, its exit status returned (a fake pip here:
    the real one would need the network or a wheel cache)."""
    import subprocess
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\n"
                    "echo 'Collecting numpy==2.4.6'\n"
                    "echo '  Downloading numpy-2.4.6.whl (16 MB)'\n"
                    "echo 'Requirement already satisfied: pip in ./venv'\n"
                    "echo 'Collecting tqdm==4.67.1'\n"
                    "echo 'ERROR: Could not find a version that satisfies the requirement nope' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    script = os.path.join(ROOT, "tools", "setup_env.sh")
    body = subprocess.run(["sed", "-n", "/^pip_install() {/,/^}/p", script], capture_output=True, text=True).stdout
    assert body.strip(), "pip_install() not found in tools/setup_env.sh"
    r = subprocess.run(["bash", "-c", body + "\npip_install -r requirements.txt"], capture_output=True, text=True,
                       env=dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}"))
    lines = r.stdout.splitlines()
    assert lines[:2] == ["[setup]   1 numpy==2.4.6", "[setup]   2 tqdm==4.67.1"], r.stdout
    assert any("Could not find a version" in ln for ln in lines) and r.returncode == 1
    assert not any("already satisfied" in ln or "Downloading" in ln for ln in lines)
