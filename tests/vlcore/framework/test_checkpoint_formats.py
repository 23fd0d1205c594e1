"""The toolkit's checkpoints are safetensors (nothing in them can run), and
the pickle-based checkpoints of earlier versions still load and resume."""
import json
import logging
import os

import numpy as np
import paddle
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file
from test_checkpoint_faults import _fit

from vlcore.formats import weights_file
from vlcore.framework import checkpoint as ckpt

from ckpt_helpers import build, load_cfg, tiny_arch_config


def test_a_checkpoint_is_plain_safetensors_and_json(tmp_path):
    """Readable by any safetensors reader: the model's tensors as trained,
    the optimizer's moments, and the scheduler's numbers in the metadata."""
    out = tmp_path / "run"
    final = _fit(out, 3)
    step = out / "step_3"
    assert sorted(os.listdir(step)) == sorted([ckpt.MODEL_FILE, ckpt.OPTIMIZER_FILE, ckpt.STATE_FILE, ckpt.MANIFEST])
    model = load_file(str(step / ckpt.MODEL_FILE))
    assert set(model) == set(final)
    for k in final:
        np.testing.assert_array_equal(model[k], final[k], err_msg=k)
    with safe_open(str(step / ckpt.OPTIMIZER_FILE), framework="np") as f:
        tree = json.loads(f.metadata()[weights_file.TREE_KEY])
        moments = [k for k in f.keys() if "moment1" in k]
    assert tree["LR_Scheduler"]["last_epoch"] == 3 and len(moments) == len(final)
    for name in os.listdir(step):  # no pickle anywhere (a pickle starts with PROTO 0x80)
        assert (step / name).read_bytes()[:1] != b"\x80", name


@pytest.mark.parametrize("manifest", ["with checksums", "without checksums"])
def test_a_pickle_checkpoint_of_an_earlier_version_resumes_exactly(tmp_path, monkeypatch, manifest):
    """step_2 written by the writer of earlier versions (paddle.save into
    model.pdparams / optimizer.pdopt); resume=auto from it ends on exactly
    the parameters of an uninterrupted run, and writes safetensors from then on."""
    reference = _fit(tmp_path / "ref", 4)
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(ckpt, "MODEL_FILE", "model.pdparams")
        m.setattr(ckpt, "OPTIMIZER_FILE", "optimizer.pdopt")
        m.setattr(weights_file, "save", lambda path, state: paddle.save(state, path))
        _fit(out, 2)
    old = out / "step_2"
    assert sorted(os.listdir(old)) == sorted(["model.pdparams", "optimizer.pdopt", ckpt.STATE_FILE, ckpt.MANIFEST])
    if manifest == "without checksums":
        os.remove(old / ckpt.MANIFEST)
    assert ckpt.is_complete(str(old)) and ckpt.find_latest(str(out)) == str(old)
    resumed = _fit(out, 4, resume="auto")
    for k in reference:
        np.testing.assert_array_equal(resumed[k], reference[k], err_msg=k)
    assert ckpt.checkpoint_file(str(out / "step_4"), ckpt.MODEL_FILE).endswith(".safetensors")
    assert ckpt.checkpoint_file(str(old), ckpt.OPTIMIZER_FILE).endswith("optimizer.pdopt")


def test_safetensors_and_pickle_of_the_same_weights_give_identical_models(tmp_path):
    """A tiny UNIMO-2 moved off its initialisation, saved both ways; each
    file loaded (load_weights, as init_from / eval / export do) into a fresh
    model gives the same tensors, bit for bit."""
    cfg = load_cfg(tiny_arch_config(tmp_path))
    source = build(cfg)
    rng = np.random.default_rng(3)
    source.set_state_dict({k: v.numpy() + rng.normal(0, 0.1, v.shape).astype(v.numpy().dtype)
                           for k, v in source.state_dict().items()})
    weights_file.save(str(tmp_path / "w.safetensors"), source.state_dict())
    paddle.save(source.state_dict(), str(tmp_path / "w.pdparams"))
    models = []
    for name in ("w.safetensors", "w.pdparams"):
        with paddle.utils.unique_name.guard():
            model = build(cfg)
        ckpt.set_weights(model, ckpt.load_weights(str(tmp_path / name)), name)
        models.append(model.state_dict())
    want = source.state_dict()
    for k, v in want.items():
        for got in models:
            assert got[k].dtype == v.dtype
            np.testing.assert_array_equal(got[k].numpy(), v.numpy(), err_msg=k)


def test_a_state_tree_round_trips_exactly(tmp_path):
    """What an optimizer's state holds, and the dtypes a model may have
    (bfloat16 comes back widened to float32, exactly)."""
    bf16 = paddle.to_tensor([1.0, -2.5, 3.140625, 1e-3], dtype="bfloat16")
    state = {
        "w_moment1_0": paddle.to_tensor(np.arange(6, dtype="float32").reshape(2, 3)),
        "half": np.array([0.5, 65504.0], np.float16), "ids": np.array([[1, 2]], np.int64),
        "mask": np.array([True, False]), "empty": np.zeros((0, 3), np.float32), "scalar": np.array(2.5),
        "bf16": bf16,
        "LR_Scheduler": {"last_epoch": 7, "last_lr": 0.1 + 0.2, "np_lr": np.float64(1 / 3), "done": False,
                         "name": "cosine", "none": None, "milestones": [1, 2.5, "x"],
                         "inner": {"last_lr": 1e-310, "t": np.ones(2, np.float32)}},
    }
    path = tmp_path / "o.safetensors"
    weights_file.save(str(path), state)
    back = weights_file.load(str(path))
    assert set(back) == set(state)
    for k in ("half", "ids", "mask", "empty", "scalar"):
        assert back[k].dtype == state[k].dtype and back[k].shape == state[k].shape
        np.testing.assert_array_equal(back[k], state[k])
    np.testing.assert_array_equal(back["w_moment1_0"], state["w_moment1_0"].numpy())
    assert back["bf16"].dtype == np.float32
    np.testing.assert_array_equal(back["bf16"], bf16.astype("float32").numpy())
    sched = back["LR_Scheduler"]
    assert sched["last_lr"] == 0.1 + 0.2 and sched["np_lr"] == 1 / 3 and sched["inner"]["last_lr"] == 1e-310
    assert {k: sched[k] for k in ("last_epoch", "done", "name", "none", "milestones")} == \
        {"last_epoch": 7, "done": False, "name": "cosine", "none": None, "milestones": [1, 2.5, "x"]}
    np.testing.assert_array_equal(sched["inner"]["t"], np.ones(2, np.float32))
    # a flat dict of tensors is a plain file: no tree in its metadata
    weights_file.save(str(tmp_path / "m.safetensors"), {"a": np.ones(2, np.float32)})
    with safe_open(str(tmp_path / "m.safetensors"), framework="np") as f:
        assert f.metadata() == {"format": "paddle"}


@pytest.mark.parametrize("state, message", [
    ({"opt": {"fn": logging.getLogger}}, "opt/fn: function cannot be stored"),
    ({"t": {3: np.ones(1)}}, "t: key 3 is not a string"),
    ({"a/b": np.ones(1), "a": {"b": np.ones(1)}}, "a/b: two entries of the state map to this tensor name"),
    ({"c": np.array(["x"])}, "c: dtype <U1 cannot be stored"),
], ids=["object", "int-key", "name-clash", "strings"])
def test_what_a_weights_file_cannot_hold_is_refused_by_name(tmp_path, state, message):
    with pytest.raises((TypeError, ValueError), match=message):
        weights_file.save(str(tmp_path / "x.safetensors"), state)
