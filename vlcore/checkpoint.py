"""Atomic checkpoints: ``<output_dir>/step_N/`` plus a ``latest`` pointer.

A checkpoint directory holds ``model.pdparams``, ``optimizer.pdopt`` (with the
learning-rate scheduler's state) and ``trainer_state.json`` (step, data
position, counters). It is written under a temporary name and renamed into
place, then ``latest`` is replaced atomically: a run killed at any moment
leaves either the previous checkpoint or the new one, never half of one.
"""
import json
import os
import re
import shutil
import warnings

import paddle

STATE_FILE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def _atomic_write_text(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def is_complete(path):
    return os.path.isfile(os.path.join(path, STATE_FILE)) and os.path.isfile(os.path.join(path, "model.pdparams"))


def list_checkpoints(output_dir):
    """Complete checkpoints as (step, path), oldest first."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        m = _STEP_DIR.match(name)
        path = os.path.join(output_dir, name)
        if m and is_complete(path):
            found.append((int(m.group(1)), path))
    return sorted(found)


def find_latest(output_dir):
    """The newest complete checkpoint of a run, or None."""
    pointer = os.path.join(output_dir, "latest")
    if os.path.isfile(pointer):
        with open(pointer, encoding="utf-8") as f:
            path = os.path.join(output_dir, f.read().strip())
        if is_complete(path):
            return path
    found = list_checkpoints(output_dir)  # pointer missing or stale: scan
    return found[-1][1] if found else None


def save_checkpoint(output_dir, step, model, optimizer, state, keep_last=0):
    """Write ``step_<step>`` (rank 0 only; parameters are identical on all
    ranks). Returns its path."""
    final = os.path.join(output_dir, f"step_{step}")
    tmp = os.path.join(output_dir, f".step_{step}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    paddle.save(model.state_dict(), os.path.join(tmp, "model.pdparams"))
    if optimizer is not None:
        paddle.save(optimizer.state_dict(), os.path.join(tmp, "optimizer.pdopt"))
    _atomic_write_text(os.path.join(tmp, STATE_FILE), json.dumps(dict(state, step=step), indent=1))
    if os.path.exists(final):  # re-saving the same step (e.g. after a resume)
        shutil.rmtree(final)
    os.replace(tmp, final)
    _atomic_write_text(os.path.join(output_dir, "latest"), f"step_{step}\n")
    if keep_last > 0:
        for _, old in list_checkpoints(output_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_weights(path):
    """A state dict from ``model.pdparams``, a checkpoint dir or a run dir."""
    if os.path.isdir(path):
        if not is_complete(path):
            latest = find_latest(path)
            if latest is None:
                raise FileNotFoundError(f"{path}: no model.pdparams and no complete step_N checkpoint")
            path = latest
        path = os.path.join(path, "model.pdparams")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    return paddle.load(path)


def set_weights(model, state, source, strict=True):
    """Load ``state`` into ``model``, refusing (by name) any shape mismatch and,
    when ``strict``, any missing or unexpected key. Paddle's own
    ``set_state_dict`` only warns about mismatches and loads the rest.
    Returns (missing, unexpected)."""
    own = model.state_dict()
    if hasattr(model, "adapt_state_dict"):  # e.g. ViT positions for another image size
        state = model.adapt_state_dict(dict(state))
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [f"{k} {list(state[k].shape)} vs model {list(own[k].shape)}"
                  for k in sorted(set(own) & set(state)) if list(state[k].shape) != list(own[k].shape)]
    if mismatched or (strict and (missing or unexpected)):
        parts = [f"{len(v)} {what}: {', '.join(v[:4])}{' ...' if len(v) > 4 else ''}"
                 for what, v in (("shape mismatches", mismatched), ("missing", missing if strict else []),
                                 ("unexpected", unexpected if strict else [])) if v]
        raise ValueError(f"{source}: weights do not match the model ({'; '.join(parts)})")
    with warnings.catch_warnings():  # missing keys were reported above (or allowed)
        warnings.simplefilter("ignore")
        model.set_state_dict({k: v for k, v in state.items() if k in own})
    return missing, unexpected


def load_checkpoint(path, model, optimizer=None):
    """Restore model (+ optimizer) from a checkpoint dir; return its state."""
    if not is_complete(path):
        raise FileNotFoundError(f"{path}: not a complete checkpoint (needs model.pdparams and {STATE_FILE})")
    set_weights(model, paddle.load(os.path.join(path, "model.pdparams")), path)
    opt_path = os.path.join(path, "optimizer.pdopt")
    if optimizer is not None and os.path.isfile(opt_path):
        optimizer.set_state_dict(paddle.load(opt_path))
    with open(os.path.join(path, STATE_FILE), encoding="utf-8") as f:
        return json.load(f)
