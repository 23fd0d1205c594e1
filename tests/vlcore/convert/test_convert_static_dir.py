"""Reading an official static-graph checkpoint directory: every file is read
explicitly as the variable it is named after, so a DIR.pdparams beside DIR
(what earlier versions of the conversion wrote there) changes nothing;
files of the release that are not variables are listed as skipped; a
truncated variable file is an error naming it and its byte counts."""
import os
import shutil

import numpy as np
import paddle
import pytest

from vlcore.convert import ConversionError, read_static_checkpoint
from vlcore.formats import weights_file

from ckpt_helpers import official_unimo_variables, tiny_unimo_arch_config, write_static_checkpoint
from helpers import run_tool

pytestmark = pytest.mark.slow

D, VOCAB, NPOS, FEAT, LAYERS = 16, 40, 20, 12, 2
EXTRAS = {"unimo_base_en.json": '{"hidden_size": 16}\n', "vocab.txt": "[PAD]\n[CLS]\n", "README": "UNIMO base\n",
          "MANIFEST.md5": "d41d8cd98f00b204e9800998ecf8427e  README\n"}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("static_dir")
    ckpt = os.path.join(str(tmp), "ckpt", "unimo_base_en")
    values, _ = write_static_checkpoint(ckpt, official_unimo_variables(D, VOCAB, NPOS, FEAT, LAYERS), seed=7)
    return {"tmp": tmp, "dir": ckpt, "values": values, "cfg": tiny_unimo_arch_config(tmp)}


def _convert(release, src, dst):
    return run_tool(["tools/convert_checkpoint.py", "--from", "unimo-official", "--src", src, "--dst", dst,
                     "-c", release["cfg"]])


def test_converting_twice_beside_a_dir_pdparams(release, tmp_path):
    """unimo_base_en.pdparams next to --src unimo_base_en/ (the output of an
    earlier version of the conversion): Paddle's load_program_state(DIR)
    would read that file instead of the directory."""
    src = str(tmp_path / "unimo_base_en")
    shutil.copytree(release["dir"], src)
    dst = src + ".safetensors"
    first = _convert(release, src, dst)
    assert first.returncode == 0, first.stderr[-2000:]
    a = weights_file.load(dst)
    paddle.save({k: paddle.to_tensor(v * 0) for k, v in a.items()}, src + ".pdparams")
    second = _convert(release, src, dst)
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout == first.stdout and ": 51 variables -> 52 model tensors" in second.stdout
    b = weights_file.load(dst)
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    np.testing.assert_array_equal(b["model.encoder.layers.1.ffn.fc2.weight"],
                                  release["values"]["encoder_layer_1_ffn_fc_1.w_0"])


def test_non_variable_files_are_listed_and_skipped(release, tmp_path):
    src = str(tmp_path / "release")
    shutil.copytree(release["dir"], src)
    for name, text in EXTRAS.items():
        with open(os.path.join(src, name), "w") as f:
            f.write(text)
    os.mkdir(os.path.join(src, "dict"))
    r = _convert(release, src, str(tmp_path / "out.safetensors"))
    assert r.returncode == 0, r.stderr[-2000:]
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("skipped ")]
    assert len(line) == 1 and line[0].startswith("skipped 5 files that are not variables: "), r.stdout
    for name in list(EXTRAS) + ["dict (a directory)"]:
        assert name in line[0], line[0]
    # the reader called from a process running Paddle with PIR (a child reads); --ignore unlists
    state = read_static_checkpoint(src, ignore=["*.md5", "README"])
    assert sorted(state) == sorted(release["values"])
    assert sorted(state.skipped) == [("dict", "a directory"), ("unimo_base_en.json", "not a Paddle variable file"),
                                     ("vocab.txt", "not a Paddle variable file")]


def test_truncated_variable_file_is_one_line(release, tmp_path):
    """Paddle's reader loads a truncated variable file without a word (the
    missing tail is garbage); the size check names it."""
    src = str(tmp_path / "cut")
    shutil.copytree(release["dir"], src)
    name = "encoder_layer_0_ffn_fc_0.w_0"                # [16, 64] float32: 4096 data bytes
    path = os.path.join(src, name)
    full = os.path.getsize(path)
    os.truncate(path, full - 1000)
    r = _convert(release, src, str(tmp_path / "cut.safetensors"))
    assert r.returncode == 2, r.stderr[-2000:]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert errors == [f"error: {src}: 1 variable files are damaged (truncated?): {name} ({full - 1000} bytes "
                      f"where a float32 [16, 64] variable takes {full})"], r.stderr[-2000:]
    assert "Traceback" not in r.stderr and not os.path.exists(str(tmp_path / "cut.safetensors"))


def test_needed_variable_paddle_cannot_read_is_named(release, tmp_path):
    """A variable file cut inside its header is not readable at all: it is
    skipped, and the mapping that needs it says so rather than 'missing'."""
    src = str(tmp_path / "head")
    shutil.copytree(release["dir"], src)
    os.truncate(os.path.join(src, "pos_embedding"), 6)
    with pytest.raises(ConversionError, match=r"1 variables the mapping needs are files Paddle cannot read "
                                              r"\(damaged\?\): pos_embedding"):
        from unimo.convert import convert

        from ckpt_helpers import build, load_unimo_cfg
        cfg = load_unimo_cfg(release["cfg"])
        convert("unimo-official", src, build(cfg), cfg.Arch)


def test_directory_without_variables(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "README").write_text("nothing here\n")
    with pytest.raises(ConversionError, match=r"none of its files is a Paddle variable file \(README\)"):
        read_static_checkpoint(str(tmp_path / "d"))
