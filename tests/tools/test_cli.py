"""The command lines: bad input fails early with one line naming the culprit;
a corrupt image is skipped and counted (or stops a strict run)."""
import json
import os
import shutil

import pytest

from vlcore.framework.runlog import read_metrics

from helpers import make_tiny_corpus, run_tool, tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_tiny_corpus(os.path.join(str(tmp_path_factory.mktemp("corpus")), "demo"))


def _one_line_error(result):
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return errors[0]


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("Global:\n  seed: 1\n  output_dir: [unclosed\n")
    line = _one_line_error(run_tool(["tools/train.py", "-c", str(bad)]))
    assert str(bad) in line and (":3:" in line or ":4:" in line), line


def test_unknown_key_in_file_and_in_override(tmp_path, corpus):
    cfg = tiny_config(tmp_path, corpus, tmp_path / "out", Optimizer={"learning_rate": 0.1})
    line = _one_line_error(run_tool(["tools/train.py", "-c", cfg]))
    assert cfg in line and "Optimizer.learning_rate" in line and "lr" in line, line
    cfg = tiny_config(tmp_path, corpus, tmp_path / "out", name="ok.yaml")
    line = _one_line_error(run_tool(["tools/train.py", "-c", cfg, "-o", "Arch.grounding.topk=3"]))
    assert "-o" in line and "Arch.grounding.topk" in line and "top_k" in line, line


def test_wrong_type_and_missing_config(tmp_path, corpus):
    cfg = tiny_config(tmp_path, corpus, tmp_path / "out")
    line = _one_line_error(run_tool(["tools/train.py", "-c", cfg, "-o", "Global.max_steps=many"]))
    assert "Global.max_steps" in line and "int" in line, line
    line = _one_line_error(run_tool(["tools/train.py", "-c", str(tmp_path / "nope.yaml")]))
    assert "nope.yaml" in line, line


def test_missing_data_and_tokenizer(tmp_path, corpus):
    cfg = tiny_config(tmp_path, corpus, tmp_path / "out")
    missing = str(tmp_path / "absent" / "pairs.jsonl")
    line = _one_line_error(run_tool(["tools/train.py", "-c", cfg, "-o",
                                     f"DataLoader.Train.corpora=[{{name: p, kind: pairs, path: {missing}}}]",
                                     "DataLoader.Train.curriculum=[]"]))
    assert missing in line, line
    line = _one_line_error(run_tool(["tools/train.py", "-c", cfg, "-o", f"Global.tokenizer_dir={tmp_path}/novocab"]))
    assert "novocab" in line, line
    assert not (tmp_path / "out" / "step_2").exists()


def _corrupt_copy(corpus, dest):
    shutil.copytree(corpus, dest)
    with open(os.path.join(dest, "pairs_train.jsonl")) as f:
        first = json.loads(f.readline())
    victim = os.path.join(dest, first["image"])
    with open(victim, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n not really a png")
    return str(dest), victim


def test_corrupt_image_is_skipped_and_counted(tmp_path, corpus):
    data, victim = _corrupt_copy(corpus, tmp_path / "data")
    out = tmp_path / "out"
    # batch 48 = the whole pairs corpus: the corrupt image is read (and
    # skipped) once in each of the two steps.
    cfg = tiny_config(tmp_path, data, out, Global={"max_steps": 2},
                      DataLoader={"Train": {"batch_size": 48, "curriculum": [{"ratios": {"pairs": 1}}]},
                                  "Eval": None})
    r = run_tool(["tools/train.py", "-c", cfg])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "skipped bad record" in r.stdout and victim in r.stdout
    last = [m for m in read_metrics(str(out / "metrics.jsonl"))][-1]
    assert last["skipped"] == 2

    strict = run_tool(["tools/train.py", "-c", cfg, "-o", "Global.strict_data=true",
                       f"Global.output_dir={tmp_path / 'strict'}"])
    line = _one_line_error(strict)
    assert victim in line and "cannot decode" in line, line


def test_eval_writes_metrics_json(tmp_path, corpus):
    out = tmp_path / "out"
    cfg = tiny_config(tmp_path, corpus, out, Global={"max_steps": 2})
    assert run_tool(["tools/train.py", "-c", cfg]).returncode == 0
    dest = tmp_path / "metrics.json"
    r = run_tool(["tools/eval.py", "-c", cfg, "-o", f"Global.checkpoint={out}", "--output", str(dest)])
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads(dest.read_text())
    for key in ("tr_r1", "tr_r5", "tr_r10", "ir_r1", "ir_r5", "ir_r10"):
        assert 0.0 <= metrics[key] <= 100.0
    assert metrics["images"] == 6 and metrics["captions"] == 30
    assert metrics["checkpoint"] == str(out)
    # A checkpoint of another architecture is refused by name.
    r = run_tool(["tools/eval.py", "-c", cfg, "-o", f"Global.checkpoint={out}", "Arch.hidden_size=48",
                  "--output", str(dest)])
    assert r.returncode == 2 and "do not match" in r.stderr


def test_amp_on_cpu_says_it_is_off_and_visualdl_logs(tmp_path, corpus):
    out = tmp_path / "out"
    cfg = tiny_config(tmp_path, corpus, out, Global={"max_steps": 2, "amp": "bf16", "visualdl": True},
                      DataLoader={"Eval": None})
    r = run_tool(["tools/train.py", "-c", cfg])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "AMP needs a GPU" in r.stdout and "fp32" in r.stdout
    vdl = out / "vdl"
    assert vdl.is_dir() and any(p.stat().st_size > 0 for p in vdl.iterdir())
    resolved = (out / "config.yaml").read_text()
    assert "amp: bf16" in resolved and "vocab_size: 0" not in resolved  # vocab 0 resolved to the tokenizer's
