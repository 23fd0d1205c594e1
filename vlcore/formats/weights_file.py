"""Weight and state files that cannot carry code: safetensors.

The toolkit writes every file of weights -- a checkpoint's model and
optimizer state, converted weights, the detector, the translation model --
as safetensors, and reads those plus the pickle-based ``.pdparams`` /
``.pdopt`` of Paddle (earlier checkpoints of the toolkit, PaddleNLP and
PaddleClas weights) through the restricted unpickler of
:mod:`vlcore.formats.safe_pickle`.

safetensors (https://huggingface.co/docs/safetensors, "Format"; the package
0.8.0 installed with Paddle reads and writes it): 8 bytes of little-endian
header length N, N bytes of JSON (per tensor ``dtype``, ``shape``,
``data_offsets``; an optional ``__metadata__`` of string to string), then
the raw little-endian bytes. Reading parses JSON and copies bytes; nothing
in the file names code, so nothing of it can run.

Two kinds of content, one reader:

- a flat state dict (name -> tensor, a model's ``state_dict()``): a plain
  safetensors file that any safetensors reader loads (metadata
  ``format: paddle``, as Hugging Face writes ``format: pt``);
- a nested state (an optimizer's ``state_dict()``: tensors plus the
  learning-rate scheduler's numbers in sub-dicts): the tensors under their
  path in the tree joined by ``/``, the tree itself as JSON in the metadata
  key ``vlcore.tree`` with each tensor replaced by ``{"__tensor__": name}``.
  JSON writes Python floats with ``repr``, so numbers read back exactly.

Tensors come back as NumPy arrays (``paddle``'s ``set_state_dict`` and the
optimizer's take them). NumPy has no bfloat16: a ``BF16`` tensor is widened
to float32 on reading, which is exact; on writing, a Paddle bfloat16 tensor
(its ``.numpy()`` gives the uint16 bit patterns) is stored as ``BF16``.
Nothing here imports Paddle: a Paddle tensor is anything with ``.numpy()``.
"""
import json
import os
import pickle

import numpy as np

from vlcore.formats import safe_pickle

SUFFIX = ".safetensors"
_CHUNK = 64 << 20
TREE_KEY = "vlcore.tree"
_TENSOR = "__tensor__"
# safetensors dtype codes (the header's spelling) <-> NumPy
_FROM_CODE = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
              "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}
_NUMPY_KINDS = {"f", "i", "u", "b"}
# paddle.save adds this entry (structured name -> parameter name) to a state
# dict; paddle.load drops it, and so does load
_PADDLE_NAME_TABLE = "StructuredToParameterName@@"


class WeightsFileError(ValueError):
    """A weights file is damaged, truncated or not in a format the toolkit
    reads; the message starts with its path."""


# ------------------------------------------------------------------ writing
def _as_array(value, name):
    """``(contiguous little-endian array, safetensors dtype name)``."""
    if isinstance(value, np.ndarray) or np.isscalar(value):
        arr = np.asarray(value)
        dtype = arr.dtype.name
    elif hasattr(value, "numpy"):  # a Paddle tensor
        arr = value.numpy()
        dtype = "bfloat16" if "bfloat16" in str(value.dtype) else arr.dtype.name
    else:
        raise TypeError(f"{name}: {type(value).__name__} is not a tensor")
    if arr.dtype.kind not in _NUMPY_KINDS:
        raise TypeError(f"{name}: dtype {arr.dtype} cannot be stored in safetensors")
    # (not ascontiguousarray: it turns a 0-d array into 1-d)
    return np.require(arr, arr.dtype.newbyteorder("<"), "C"), dtype


def _is_tensor(value):
    return isinstance(value, np.ndarray) or (hasattr(value, "numpy") and hasattr(value, "shape"))


def _encode_tree(node, path, tensors):
    """The JSON-able tree with each tensor replaced by a reference, filling
    ``tensors`` (name -> tensor)."""
    where = "/".join(path) or "<root>"
    if _is_tensor(node):
        name = "/".join(path)
        if name in tensors:
            raise ValueError(f"{name}: two entries of the state map to this tensor name (a key holds '/')")
        tensors[name] = node
        return {_TENSOR: name}
    if isinstance(node, dict):
        if _TENSOR in node:
            raise ValueError(f"{where}: the key {_TENSOR!r} is reserved")
        bad = [k for k in node if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{where}: key {bad[0]!r} is not a string")
        return {k: _encode_tree(v, path + [k], tensors) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_encode_tree(v, path + [str(i)], tensors) for i, v in enumerate(node)]
    if isinstance(node, np.generic):
        return node.item()
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    raise TypeError(f"{where}: {type(node).__name__} cannot be stored in a weights file")


def save(path, state):
    """Write ``state`` to ``path`` (a ``.safetensors`` file) as it stands
    (the caller makes the write atomic): a flat name -> tensor dict as a
    plain safetensors file, anything else (nested dicts, numbers, strings)
    with its tree in the metadata."""
    from safetensors import TensorSpec, serialize
    if not isinstance(state, dict):
        raise TypeError(f"{path}: a state must be a dict, got {type(state).__name__}")
    if all(isinstance(k, str) and _is_tensor(v) for k, v in state.items()):
        tensors, metadata = dict(state), {"format": "paddle"}
    else:
        tensors = {}
        tree = _encode_tree(state, [], tensors)
        metadata = {"format": "paddle", TREE_KEY: json.dumps(tree)}
    arrays = {k: _as_array(v, k) for k, v in tensors.items()}  # alive until written: the specs point into them
    specs = {k: TensorSpec(dtype=d, shape=list(a.shape), data_ptr=a.ctypes.data, data_len=a.nbytes)
             for k, (a, d) in arrays.items()}
    data = memoryview(serialize(specs, metadata=metadata))
    del arrays, specs
    # written through Python's open (not serialize_file, which writes from
    # Rust): a full disk is an OSError naming the file like any other write
    with open(path, "wb") as f:
        for start in range(0, len(data), _CHUNK):
            f.write(data[start:start + _CHUNK])


# ------------------------------------------------------------------ reading
def _to_numpy(name, info, path):
    code, shape, data = info["dtype"], info["shape"], info["data"]
    if code == "BF16":  # the upper half of a float32: widen exactly
        bits = np.frombuffer(data, "<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    if code not in _FROM_CODE:
        raise WeightsFileError(f"{path}: tensor {name} has dtype {code}, which the toolkit does not read")
    return np.frombuffer(data, _FROM_CODE[code]).reshape(shape)  # a view of the bytearray, writable


def _decode_tree(node, tensors, path):
    if isinstance(node, dict):
        if set(node) == {_TENSOR}:
            name = node[_TENSOR]
            if name not in tensors:
                raise WeightsFileError(f"{path}: its tree names tensor {name!r}, which the file does not hold")
            return tensors[name]
        return {k: _decode_tree(v, tensors, path) for k, v in node.items()}
    if isinstance(node, list):
        return [_decode_tree(v, tensors, path) for v in node]
    return node


def _read_safetensors(path, data):
    from safetensors import SafetensorError, deserialize
    try:
        entries = deserialize(data)
        metadata = _read_metadata(data)
    except (SafetensorError, ValueError, KeyError, OverflowError) as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise WeightsFileError(f"{path}: damaged, truncated or not a safetensors file ({first})") from None
    tensors = {name: _to_numpy(name, info, path) for name, info in entries}
    if TREE_KEY not in metadata:
        return tensors
    try:
        tree = json.loads(metadata[TREE_KEY])
    except ValueError as e:
        raise WeightsFileError(f"{path}: its {TREE_KEY} metadata is not JSON ({e})") from None
    return _decode_tree(tree, tensors, path)


def _read_metadata(data):
    """The header's ``__metadata__`` (``deserialize`` returns only tensors);
    the header was validated by ``deserialize`` already."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]).get("__metadata__") or {}


def _read_pickle(path, data):
    # paddle.save writes pickle protocols 2-4 (paddle/framework/io.py), which
    # start with PROTO (0x80) and end with STOP '.' (CPython Lib/pickle.py):
    # a truncated or zeroed file is named here, not by an EOFError.
    if data[:1] != b"\x80" or data[-1:] != b".":
        raise WeightsFileError(f"{path}: truncated or not a Paddle parameter file "
                               f"({len(data)} bytes, not a complete pickle)")
    try:
        state = safe_pickle.loads(data, path)
    except safe_pickle.UnsafePickleError:
        raise
    except pickle.UnpicklingError as e:  # its message names the path
        raise WeightsFileError(f"{e}; damaged or truncated") from None
    if isinstance(state, dict):
        state.pop(_PADDLE_NAME_TABLE, None)
    return state


def load(path):
    """The state in ``path``: a ``.safetensors`` file, or a pickle-based
    Paddle file (``.pdparams``, ``.pdopt``; read without running code from
    it). Tensors as NumPy arrays. A damaged file is a
    :class:`WeightsFileError` naming it; a pickle naming anything but
    arrays, numbers, strings, lists and dicts is refused
    (:class:`vlcore.formats.safe_pickle.UnsafePickleError`) before any of it
    runs."""
    with open(path, "rb") as f:  # FileNotFoundError names the path
        data = f.read()
    if not data:
        raise WeightsFileError(f"{path}: empty file (0 bytes); its write was cut short")
    state = _read_safetensors(path, data) if str(path).endswith(SUFFIX) else _read_pickle(path, data)
    if not isinstance(state, dict):
        raise WeightsFileError(f"{path}: not a state dict (got {type(state).__name__}); damaged or truncated")
    return state


def check_suffix(path, what="--dst"):
    """Refuse an output name that promises another format: the toolkit
    writes weights only as safetensors."""
    if not str(path).endswith(SUFFIX):
        stem = os.path.splitext(str(path))[0]
        raise ValueError(f"{what} {path}: the toolkit writes weights as safetensors, which cannot carry code; "
                         f"name the file {stem}{SUFFIX}")
