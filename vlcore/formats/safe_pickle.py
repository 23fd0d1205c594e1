"""Reading pickle-based weight files without running code from them.

``.pdparams`` / ``.pdopt`` files (``paddle.save``), detectron2 ``.pkl``
weights and the toolkit's own temporary pickles are Python pickles, and an
unrestricted unpickler (``pickle.load``, ``paddle.load``) calls whatever
global the file names -- ``os.system`` included -- while reading it. A state
dict needs only arrays, their dtypes, dicts, lists, tuples, numbers and
strings, so :func:`load` admits exactly the globals that rebuild those and
refuses any other with one line naming the file and the global, when the
unpickler looks the global up: before anything of it can run.

The admitted globals are what NumPy's ``ndarray.__reduce__`` and
``dtype.__reduce__`` name (``numpy._core.multiarray._reconstruct`` --
``numpy.core.multiarray`` before NumPy 2 --, ``numpy.ndarray``,
``numpy.dtype``, ``numpy._core.multiarray.scalar`` for NumPy scalars) and
``collections.OrderedDict`` (state dicts), and ``_codecs.encode`` (bytes in
protocol-2 pickles). Python's documentation describes
this technique: https://docs.python.org/3/library/pickle.html#restricting-globals
"""
import io
import pickle

import numpy as np

_NUMPY_CORE = ("numpy._core.multiarray", "numpy.core.multiarray")
ALLOWED = {(m, n) for m in _NUMPY_CORE for n in ("_reconstruct", "scalar")} | {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
    # pickle protocols < 3 (Python 2 pickles such as detectron2's) store an
    # array's bytes as a latin-1 string re-encoded by _codecs.encode; a codec
    # is looked up by name among the registered ones, no code comes with it
    ("_codecs", "encode")}


class UnsafePickleError(ValueError):
    """A pickle names a global that a weights file has no reason to hold."""


class _StateUnpickler(pickle.Unpickler):
    def __init__(self, f, where, **kwargs):
        super().__init__(f, **kwargs)
        self.where = where

    def find_class(self, module, name):
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self.where}: refused to load: the pickle names {module}.{name}, which a weights file has no "
            f"reason to hold (only arrays, numbers, strings, lists and dicts are read; loading it could run code)")

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.where}: refused to load: the pickle uses persistent ids ({pid!r:.40})")


def loads(data, where, encoding="ASCII"):
    """The object pickled in the bytes ``data`` (from the file ``where``),
    admitting only state-dict globals (``encoding="latin1"`` for pickles
    written by Python 2, e.g. detectron2's)."""
    try:
        return _StateUnpickler(io.BytesIO(data), str(where), encoding=encoding).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, ValueError) as e:
        first = (str(e).splitlines() or [""])[0][:200]
        raise pickle.UnpicklingError(f"{where}: not a readable pickle ({type(e).__name__}: {first})") from None


def load(path, encoding="ASCII"):
    """:func:`loads` of the file ``path``."""
    with open(path, "rb") as f:
        return loads(f.read(), path, encoding)


def is_state_value(x):
    """True for what :func:`load` can return: containers of arrays, numbers
    and strings (the check the tests use on real checkpoints)."""
    if isinstance(x, dict):
        return all(isinstance(k, (str, int)) and is_state_value(v) for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return all(is_state_value(v) for v in x)
    return x is None or isinstance(x, (np.ndarray, np.generic, str, bytes, int, float, bool))
