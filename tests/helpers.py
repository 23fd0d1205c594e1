"""Shared pieces of the end-to-end tests: a tiny real corpus, a tiny config
that inherits the demo config, and running the command-line tools."""
import os
import subprocess
import sys

import yaml

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)


def make_tiny_corpus(path):
    """A small synthetic corpus in the real on-disk formats (a few seconds)."""
    from data_prep.make_demo_corpus import build_demo_corpus
    if not os.path.isfile(os.path.join(path, "meta.json")):
        build_demo_corpus(path, seed=1, num_pairs=48, num_images=24, num_texts=48, num_test=6,
                          image_size=32, vocab_size=300, quiet=True)
    return path


def tiny_config(tmp_path, data_dir, out_dir, name="tiny.yaml", **sections):
    """Write a config inheriting configs/unimo2_demo.yaml with a model small
    enough for a step to take milliseconds; ``sections`` are merged on top."""
    cfg = {
        "_base_": os.path.join(ROOT, "configs", "unimo2_demo.yaml"),
        "Global": {"output_dir": str(out_dir), "tokenizer_dir": os.path.join(data_dir, "vocab"),
                   "max_steps": 6, "log_interval": 1, "save_interval": 2, "keep_last": 0,
                   "progress_bar": False, "visualdl": False, "plot_curves": False, "seed": 3},
        "Arch": {"hidden_size": 32,
                 "vit": {"image_size": 16, "patch_size": 8, "num_layers": 1, "num_heads": 2},
                 "text": {"num_layers": 1, "num_heads": 2},
                 "grounding": {"dict_size": 16, "top_k": 4},
                 "fusion": {"num_layers": 1, "num_heads": 2}, "proj_dim": 16},
        "DataLoader": {
            "Train": {"batch_size": 4, "num_workers": 0, "demo": {"build_if_missing": False},
                      "corpora": [
                          {"name": "pairs", "kind": "pairs", "path": os.path.join(data_dir, "pairs_train.jsonl")},
                          {"name": "labelled", "kind": "labelled", "path": os.path.join(data_dir, "images_train.jsonl")},
                          {"name": "images", "kind": "images", "path": os.path.join(data_dir, "images_train.jsonl")},
                          {"name": "text", "kind": "text", "path": os.path.join(data_dir, "text_train.txt")}],
                      "curriculum": [{"ratios": {"pairs": 1}, "until_step": 2},
                                     {"ratios": {"pairs": 1, "labelled": 1, "images": 1, "text": 1}}]},
            "Eval": {"path": os.path.join(data_dir, "pairs_test.jsonl"), "score": "itm", "batch_size": 16}},
    }
    _merge(cfg, sections)
    path = os.path.join(str(tmp_path), name)
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return path


def _merge(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (for a launcher's --master)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool_env(**extra):
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("VLCORE_TEST_KILL_AT_STEP", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_tool(args, cwd=None, timeout=600, **env):
    """Run a tools/ script (or ``-m module``) with this interpreter."""
    cmd = [sys.executable] + [os.path.join(ROOT, a) if a.startswith("tools/") else a for a in args]
    return subprocess.run(cmd, cwd=cwd or ROOT, env=tool_env(**env), capture_output=True, text=True,
                          timeout=timeout)


def make_tiny_regions(corpus_dir):
    """The UNIMO demo's derived region store and rewrites for a tiny corpus."""
    from data_prep.make_demo_regions import build
    if not os.path.isdir(os.path.join(corpus_dir, "regions")):
        build(corpus_dir, dim=16, seed=1, quiet=True)
    return corpus_dir


def tiny_unimo_config(tmp_path, data_dir, out_dir, name="tiny_unimo.yaml", base="unimo_demo.yaml", **sections):
    """A config inheriting configs/<base> with a tiny UNIMO."""
    cfg = {
        "_base_": os.path.join(ROOT, "configs", base),
        "Global": {"output_dir": str(out_dir), "tokenizer_dir": os.path.join(data_dir, "vocab"),
                   "max_steps": 6, "log_interval": 1, "save_interval": 2, "keep_last": 0,
                   "progress_bar": False, "visualdl": False, "plot_curves": False, "seed": 3},
        "Arch": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "feature_dim": 16, "cmcl_dim": 16},
        "Loss": {"cmcl": {"num_negatives": 2}},
        "DataLoader": {
            "Train": {"batch_size": 4, "num_workers": 0, "demo": {"build_if_missing": False}}},
    }
    train = cfg["DataLoader"]["Train"]
    regions, rewrites = os.path.join(data_dir, "regions"), os.path.join(data_dir, "rewrites_train.jsonl")
    if base == "unimo_demo.yaml":
        train["corpora"] = [
            {"name": "pairs", "kind": "pairs", "path": os.path.join(data_dir, "pairs_train.jsonl"),
             "features": regions, "rewrites": [rewrites]},
            {"name": "images", "kind": "images", "path": os.path.join(data_dir, "images_train.jsonl"),
             "features": regions},
            {"name": "text", "kind": "text", "path": os.path.join(data_dir, "text_train.txt")}]
        train["curriculum"] = [{"ratios": {"pairs": 1}, "until_step": 2},
                               {"ratios": {"pairs": 1, "images": 1, "text": 1}}]
    else:
        train["corpora"] = [{"name": "pairs", "kind": "pairs", "path": os.path.join(data_dir, "pairs_train.jsonl"),
                             "features": regions}]
    cfg["DataLoader"]["Eval"] = {"path": os.path.join(data_dir, "pairs_test.jsonl"), "features": regions,
                                 "batch_size": 16}
    _merge(cfg, sections)
    path = os.path.join(str(tmp_path), name)
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return path


def train_on_two_ranks(tmp_path, conf, timeout=600):
    """``tools/train.py -c conf`` on 2 CPU processes (``paddle.distributed.launch``,
    logs in ``tmp_path/log``); asserts success and identical parameters."""
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--log_dir", str(tmp_path / "log"),
           "--nproc_per_node", "2", os.path.join(ROOT, "tools", "train.py"), "-c", conf]
    proc = subprocess.run(cmd, cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=timeout)
    logs = "\n".join(open(tmp_path / "log" / n).read() for n in os.listdir(tmp_path / "log")
                     if n.startswith("workerlog"))
    assert proc.returncode == 0, logs[-3000:]
    assert "world size 2" in logs and "parameters identical on all 2 ranks" in logs, logs[-3000:]



def tiny_unimo2_weights(tmp_path, cfg_path, name="model.safetensors"):
    """A weights file for the tiny config, every weight moved off its
    initialisation (so no score is trivially equal); its path and the model."""
    import numpy as np

    import unimo2.builders  # noqa: F401  (registers UNIMO-2)
    from vlcore.formats import weights_file
    from vlcore.framework.config import load_config
    from vlcore.framework.run import build_model
    from vlcore.framework.schema import TrainConfig
    model = build_model(load_config(TrainConfig, cfg_path))
    rng = np.random.default_rng(0)
    model.set_state_dict({k: v.numpy() + rng.normal(0, 0.05, v.shape).astype("float32")
                          for k, v in model.state_dict().items()})
    path = os.path.join(str(tmp_path), name)
    weights_file.save(path, model.state_dict())
    model.eval()
    return path, model
