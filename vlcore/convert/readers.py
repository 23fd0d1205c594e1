"""Reading other frameworks' checkpoints: official static-graph directories
(one file per persistable variable, read with ``paddle.static.load_vars``,
in a child process when the current one runs PIR) and ``.pdparams`` files."""
import os
import pickle
import struct
import subprocess
import sys
import tempfile
from typing import Dict, Sequence

import numpy as np

from vlcore.convert.mapping import NOT_A_VARIABLE, ConversionError, _match, names_list
from vlcore.formats import safe_pickle, weights_file

# ------------------------------------------------------------------ reading


def _legacy_static_active():
    if "paddle" in sys.modules:
        import paddle
        return not paddle.get_flags(["FLAGS_enable_pir_api"])["FLAGS_enable_pir_api"]
    return os.environ.get("FLAGS_enable_pir_api", "").lower() in ("0", "false")


# One variable file (paddle.static.save_vars writes one per variable), as
# Paddle writes it (PaddlePaddle/Paddle paddle/phi/core/framework/
# dense_tensor_serialize.cc SerializeToStream, dense_tensor_tostream.cc
# TensorToStream; little-endian): uint32 version (0); uint64 lod_level, then
# per level a uint64 byte size and that many bytes; uint32 version (0);
# int32 size of the TensorDesc protobuf and the message; the raw data.
# Paddle's reader (TensorFromStream) does not check that all the data was
# there: a truncated file loads, with garbage at the end. So each file is
# read by Paddle and its size then checked against header + array bytes.
def _header_bytes(path):
    """Bytes before the tensor data of a variable file (layout above), or
    None if the file is too short to hold its header."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12:
            return None
        (lod_level,) = struct.unpack("<Q", head[4:12])
        pos = 12
        for _ in range(lod_level):
            f.seek(pos)
            raw = f.read(8)
            if len(raw) < 8:
                return None
            pos += 8 + struct.unpack("<Q", raw)[0]
        f.seek(pos)
        raw = f.read(8)
        if len(raw) < 8:
            return None
        return pos + 8 + struct.unpack("<i", raw[4:])[0]


def _read_variable_file(exe, directory, name):
    """The array of ``directory/name``, read by Paddle's own loader
    (``paddle.static.load_vars``, legacy static graph); raises otherwise."""
    import paddle
    prog, scope = paddle.static.Program(), paddle.static.Scope()
    var = prog.global_block().create_var(name=name, persistable=True)
    with paddle.static.scope_guard(scope):
        paddle.static.load_vars(exe, directory, main_program=prog, vars=[var])
    return np.array(scope.find_var(name).get_tensor())


def _load_static_here(path):
    """``(arrays, skipped, damaged)`` of the files directly in ``path``, each
    read as the variable it is named after, one by one -- not with
    ``paddle.static.load_program_state(path)``, which reads
    ``path + ".pdparams"`` instead whenever that file exists (it takes the
    path for a file prefix: python/paddle/static/io.py), e.g. a conversion
    written beside the directory. A file Paddle cannot read is skipped (the
    configs, vocabularies and READMEs a release ships); one it reads but
    whose size does not match is damaged."""
    import paddle
    was_dynamic = paddle.in_dynamic_mode()
    paddle.enable_static()
    try:
        exe = paddle.static.Executor(paddle.CPUPlace())
        arrays, skipped, damaged = {}, [], []
        for name in sorted(os.listdir(path)):
            file = os.path.join(path, name)
            if not os.path.isfile(file):
                skipped.append((name, "a directory"))
                continue
            try:
                value = _read_variable_file(exe, path, name)
            except Exception:  # Paddle raises assorted types for files that are not variables
                skipped.append((name, NOT_A_VARIABLE))
                continue
            head, have = _header_bytes(file), os.path.getsize(file)
            need = None if head is None else head + value.nbytes
            if need != have:
                damaged.append((name, f"{have} bytes where a {value.dtype} {list(value.shape)} variable "
                                      f"takes {need if need is not None else 'more'}"))
                continue
            arrays[name] = value
        return arrays, skipped, damaged
    finally:
        if was_dynamic:
            paddle.disable_static()


def _load_static_in_child(path):
    """:func:`_load_static_here` in a child process with the legacy static
    graph (this process already runs Paddle with PIR)."""
    env = dict(os.environ, FLAGS_enable_pir_api="0", GLOG_minloglevel="2")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "state.pkl")
        r = subprocess.run([sys.executable, "-m", "vlcore.convert.readers", path, out], env=env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise ConversionError(f"{path}: reading failed: {r.stderr[-500:]}")
        return safe_pickle.load(out)  # our child's output: arrays and names only


class VariableFiles(dict):
    """``{variable name: array}`` read from a static checkpoint directory;
    ``skipped``: ``[(file, why)]`` of the files in it that are not variables."""

    def __init__(self, arrays, skipped=()):
        super().__init__(arrays)
        self.skipped = list(skipped)


def read_static_checkpoint(path, ignore: Sequence[str] = ()) -> VariableFiles:
    """The variables of a Paddle 1.x/2.x static checkpoint directory (one
    file per variable, named after it). Files that are not variables are
    skipped and listed in ``skipped`` (unless they match ``ignore``); a
    variable file whose size does not match its header is an error."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: not a directory (a static-graph checkpoint is a directory "
                                "with one file per variable)")
    if not os.listdir(path):
        raise ConversionError(f"{path}: empty directory, no variables to read")
    if _legacy_static_active():
        arrays, skipped, damaged = _load_static_here(path)
    else:
        arrays, skipped, damaged = _load_static_in_child(path)
    if damaged:
        raise ConversionError(f"{path}: {len(damaged)} variable files are damaged (truncated?): "
                              f"{names_list([f'{n} ({why})' for n, why in damaged], 4)}")
    if not arrays:
        raise ConversionError(f"{path}: none of its files is a Paddle variable file "
                              f"({names_list(n for n, _ in skipped)})")
    return VariableFiles(arrays, [(n, why) for n, why in skipped if not _match(n, ignore)])


def read_state_file(path) -> Dict[str, np.ndarray]:
    """A ``.pdparams`` (or ``.safetensors``) state dict as numpy arrays, read
    without running code from the file (:mod:`vlcore.formats.weights_file`)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        state = weights_file.load(path)
    except weights_file.WeightsFileError as e:
        raise ConversionError(str(e)) from None
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise ConversionError(f"{path}: expected a flat state dict of tensors")
    return state



def _main(argv):
    """Child-process reader: ``python -m vlcore.convert.readers DIR OUT.pkl``
    (started with FLAGS_enable_pir_api=0)."""
    src, out = argv
    result = _load_static_here(src)  # (arrays, skipped, damaged)
    with open(out, "wb") as f:
        pickle.dump(result, f, protocol=4)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
