"""Convert the detectron2 pickle of the bottom-up-attention weights into a
``.safetensors`` for :mod:`data_prep.detector`.

    python -m data_prep.convert_detectron2_weights --src faster_rcnn_from_caffe_attr.pkl \\
        --dst detector.safetensors [--detector-config cfg.yaml]

The pickle is detectron2's model-zoo layout (``{"model": {name: ndarray},
"__author__": ...}``, or a bare ``{name: ndarray}``) as published by
airsplay/py-bottom-up-attention (``faster_rcnn_from_caffe_attr.pkl`` with the
attribute head, ``faster_rcnn_from_caffe.pkl`` without). Names map one to
one (see ``data_prep/detector/weights.py``); PyTorch linear weights are
transposed. The depth, widths, class and attribute counts are read from the
weights; anything in the file the detector does not have, anything the
detector needs that is not in the file, and any shape disagreement is an
error that lists the names. The output is written atomically and loaded back
into the detector as a check.
"""
import argparse
import os
import pickle
import sys

import numpy as np

from vlcore.formats import safe_pickle, weights_file
from vlcore.formats.sharded import atomic_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Config values, not weights, that some detectron2 checkpoints carry
_CONFIG_ENTRIES = ("pixel_mean", "pixel_std")


def read_detectron2_pickle(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        data = safe_pickle.load(path, encoding="latin1")  # no code from the file
    except safe_pickle.UnsafePickleError as e:
        # a global outside NumPy is refused before its module is imported
        if "torch" not in str(e):
            raise
        raise ValueError(f"{e}; a PyTorch checkpoint: re-save it with NumPy arrays "
                         f"(e.g. {{k: v.numpy() for k, v in state.items()}})") from None
    except (pickle.UnpicklingError, EOFError, AttributeError) as e:
        raise ValueError(f"{path}: not a readable pickle ({e})") from None
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a dict of name -> array (or {{'model': ...}})")
    bad = [k for k, v in data.items() if not isinstance(k, str) or not hasattr(v, "shape")]
    if bad:
        raise ValueError(f"{path}: entries that are not arrays: {', '.join(map(str, bad[:8]))}")
    return data


def convert(src, dst, cfg=None, log=print):
    import paddle
    weights_file.check_suffix(dst)

    from data_prep.detector.config import DetectorConfig, WeightsError
    from data_prep.detector.model import BottomUpAttention
    from data_prep.detector.weights import build_detector, convert_detectron2_state, infer_config

    d2 = read_detectron2_pickle(src)
    base = cfg or DetectorConfig()
    for name in _CONFIG_ENTRIES:
        if name in d2:
            value = np.asarray(d2.pop(name), np.float64).ravel()
            want = np.asarray(base.pixel_mean_bgr if name == "pixel_mean" else (1.0, 1.0, 1.0))
            if value.shape != want.shape or not np.allclose(value, want, atol=1e-3):
                raise WeightsError(f"{src}: {name} {value.tolist()} differs from the detector's {want.tolist()}")
    cfg = infer_config(d2, base)
    with paddle.LazyGuard():  # names and shapes only: no 65M random numbers
        shapes = BottomUpAttention(cfg, fuse=False)
    state, notes = convert_detectron2_state(d2, shapes, where=src)
    with atomic_path(dst) as tmp:
        weights_file.save(tmp, state)
    build_detector(dst, cfg)  # the file loads strictly into the detector
    n = sum(int(np.prod(v.shape)) for v in state.values())
    log(f"{dst}: {len(state)} tensors, {n / 1e6:.1f}M values; {len(cfg.trunk_blocks)}-stage trunk "
        f"{list(cfg.trunk_blocks)} + res5 x{cfg.res5_blocks}, {cfg.num_classes} classes, {cfg.num_attrs} attributes")
    if notes:
        log(f"{len(notes)} frozen-BN statistics not in the file were set to the identity "
            f"(weight/bias-only FrozenBN), e.g. {notes[0]}")
    return state, notes, cfg


def main(argv=None):
    if argv is None:
        from vlcore.framework.env import apply_cpu_defaults
        apply_cpu_defaults()
    p = argparse.ArgumentParser(prog="python -m data_prep.convert_detectron2_weights",
                                description=__doc__.split("\n")[0])
    p.add_argument("--src", required=True, help="detectron2 .pkl")
    p.add_argument("--dst", required=True, help="output .safetensors")
    p.add_argument("--detector-config",
                   help="JSON/YAML detector settings (test-time ones; the structure is read from the weights)")
    args = p.parse_args(argv)
    from data_prep.detector.config import DetectorConfig, WeightsError
    try:
        cfg = DetectorConfig.load(args.detector_config) if args.detector_config else None
        convert(args.src, args.dst, cfg)
    except (WeightsError, ValueError, FileNotFoundError) as e:
        if os.environ.get("VLCORE_DEBUG") == "1":
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
