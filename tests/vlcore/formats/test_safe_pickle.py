"""Weight files are read without running code from them (vlcore.formats.safe_pickle):
a pickle that would run a command is refused on every loading path before
the command runs, and every real checkpoint still loads as before."""
import collections
import os
import pickle
import subprocess
import sys

import numpy as np
import paddle
import pytest

from vlcore.formats import safe_pickle, weights_file

from helpers import ROOT


class _RunsACommand:
    """Unpickling this object calls os.system -- what a hostile .pdparams does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture()
def hostile(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "model.pdparams"
    with open(path, "wb") as f:
        pickle.dump({"w": np.zeros(3, np.float32), "x": _RunsACommand(marker)}, f, protocol=4)
    return path, marker


def _refused(fn, path, marker):
    with pytest.raises(safe_pickle.UnsafePickleError) as e:
        fn(str(path))
    assert not marker.exists(), "the pickle's command ran"
    msg = str(e.value)
    assert str(path) in msg and "system" in msg and "\n" not in msg
    return msg


def test_every_loading_path_refuses_a_pickle_that_runs_code(hostile):
    from data_prep.convert_detectron2_weights import read_detectron2_pickle
    from data_prep.detector.weights import load_weights_file
    from vlcore.convert import read_state_file
    from vlcore.framework.checkpoint import load_weights, read_state_dict
    path, marker = hostile
    for fn in (safe_pickle.load, weights_file.load, read_state_dict, load_weights, read_state_file,
               load_weights_file, read_detectron2_pickle):
        _refused(fn, path, marker)
    # the unrestricted reader would have run it: the test's hostile file is real
    with open(path, "rb") as f:
        pickle.load(f)
    assert marker.exists()


def test_the_command_line_refuses_it_in_one_line(hostile, tmp_path):
    """Global.init_from (tools/train.py): exit 2, one line, nothing ran."""
    path, marker = hostile
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"_base_: {os.path.join(ROOT, 'configs', 'unimo2_demo.yaml')}\n"
                   f"Global: {{output_dir: {tmp_path / 'out'}, init_from: {path}, max_steps: 1}}\n")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", str(cfg)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 2, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(path) in last and "system" in last, last
    assert "Traceback" not in r.stderr and not marker.exists()


def test_real_checkpoints_load_as_paddle_reads_them(tmp_path):
    """A model's and an optimizer's state saved by paddle.save (checkpoints
    of earlier versions, PaddleNLP / PaddleClas weights): the same arrays and
    numbers as paddle.load, through the toolkit's reader."""
    from vlcore.framework.checkpoint import read_state_dict
    paddle.seed(0)
    model = paddle.nn.Sequential(paddle.nn.Linear(4, 3), paddle.nn.LayerNorm(3))
    opt = paddle.optimizer.AdamW(parameters=model.parameters(), learning_rate=0.1)
    model(paddle.randn([2, 4])).sum().backward()
    opt.step()
    for name, state in (("model.pdparams", model.state_dict()), ("optimizer.pdopt", opt.state_dict())):
        path = str(tmp_path / name)
        paddle.save(state, path)
        ours, theirs = weights_file.load(path), paddle.load(path, return_numpy=True)
        assert set(ours) == set(theirs) and safe_pickle.is_state_value(ours)
        for k in ours:
            if isinstance(theirs[k], np.ndarray):
                np.testing.assert_array_equal(ours[k], theirs[k])
                assert ours[k].dtype == theirs[k].dtype
            else:
                assert ours[k] == theirs[k]
        assert set(read_state_dict(path)) == set(theirs)


def test_what_a_state_dict_holds_is_admitted(tmp_path):
    value = collections.OrderedDict(w=np.arange(6, dtype=np.float16).reshape(2, 3), step=np.int64(7),
                                    lr=0.5, names=["a", "b"], nested={"t": (1, 2.0, "x", None, True)})
    path = tmp_path / "s.pkl"
    path.write_bytes(pickle.dumps(value, protocol=2))
    back = safe_pickle.load(str(path))
    np.testing.assert_array_equal(back["w"], value["w"])
    assert back["step"] == 7 and back["nested"] == value["nested"] and back["names"] == ["a", "b"]


def test_a_damaged_pickle_is_one_line(tmp_path):
    path = tmp_path / "cut.pdparams"
    paddle.save({"w": paddle.ones([64, 64])}, str(path))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(pickle.UnpicklingError, match="cut.pdparams: not a readable pickle"):
        safe_pickle.load(str(path))


def test_a_pytorch_pickle_gets_the_re_save_hint(tmp_path):
    """detectron2 weights saved with torch tensors: refused before torch is
    imported, with how to re-save them."""
    from data_prep.convert_detectron2_weights import read_detectron2_pickle
    path = tmp_path / "model_final.pkl"
    path.write_bytes(b"\x80\x02}q\x00X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\nq\x01s.")
    with pytest.raises(ValueError, match=r"torch._utils._rebuild_tensor_v2.*re-save it with NumPy arrays"):
        read_detectron2_pickle(str(path))
