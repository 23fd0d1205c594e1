"""Atomic, verifiable checkpoints: ``<output_dir>/step_N/`` plus a ``latest``
pointer.

A checkpoint directory holds ``model.safetensors`` (the model's state dict),
``optimizer.safetensors`` (the optimizer's tensors, with its and the
learning-rate scheduler's numbers as JSON in the file's metadata; see
:mod:`vlcore.formats.weights_file`), ``trainer_state.json`` (step, data
position, counters) and ``checksums.json`` (size and SHA-256 of each of the
others). None of them can carry code. Checkpoints written before the
safetensors switch hold ``model.pdparams`` / ``optimizer.pdopt`` (Paddle
pickles) instead; they still load, through the restricted unpickler.

Saving writes everything under ``.step_N.tmp-<pid>``, fsyncs every
file and the directory, renames it to ``step_N``, fsyncs the run directory
and only then replaces ``latest`` (itself written atomically). A run killed
at any moment leaves the previous checkpoint or the new one, never half of
one; a full disk (:class:`vlcore.framework.rundir.DiskFullError`) leaves the previous
one and no temporary files.

Reading: :func:`is_complete` is cheap (files present, sizes as recorded);
:func:`verify` recomputes the checksums. Checkpoints written before
``checksums.json`` existed are loaded unverified. A damaged file is a
:class:`CheckpointError` naming it, never a deserialiser's traceback.
"""
import hashlib
import json
import os
import re
import shutil
import warnings

from vlcore.formats import weights_file
from vlcore.formats.sharded import atomic_open
from vlcore.framework import rundir

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
# what checkpoints of earlier versions hold instead (Paddle pickles)
LEGACY_NAMES = {MODEL_FILE: "model.pdparams", OPTIMIZER_FILE: "optimizer.pdopt"}
STATE_FILE = "trainer_state.json"
MANIFEST = "checksums.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")
_CHUNK = 1 << 20


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged or unreadable; names the file."""


def checkpoint_file(path, name):
    """The path of file ``name`` (:data:`MODEL_FILE`, :data:`OPTIMIZER_FILE`)
    in checkpoint dir ``path``, or of its pickle-based equivalent in a
    checkpoint of an earlier version; None if neither is there."""
    for candidate in (name, LEGACY_NAMES.get(name)):
        if candidate and os.path.isfile(os.path.join(path, candidate)):
            return os.path.join(path, candidate)
    return None


# ------------------------------------------------------------------ writing
def _write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _digest(path, sync=False):
    """(size, sha256) of a file; with ``sync`` also fsync it (fsync on a
    read-only descriptor flushes the file's data on Linux)."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
        if sync:
            os.fsync(f.fileno())
    return size, h.hexdigest()


def _manifest(directory):
    files = {}
    for name in sorted(os.listdir(directory)):
        if name != MANIFEST:
            size, sha = _digest(os.path.join(directory, name), sync=True)
            files[name] = {"size": size, "sha256": sha}
    return {"algorithm": "sha256", "files": files}


def _save_file(write, tmp, final, name):
    """``write(path)`` into the temporary dir; a full disk names the file's
    final path."""
    with rundir.writing(os.path.join(final, name)):
        write(os.path.join(tmp, name))


def _replace_dir(tmp, final, aside):
    """Rename ``tmp`` to ``final``; an existing ``final`` (the same step saved
    again after a resume, e.g. over a damaged one) is moved aside first."""
    if os.path.exists(final):
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(final, aside)
        os.replace(tmp, final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(tmp, final)


def _write_pointer(output_dir, name):
    pointer = os.path.join(output_dir, "latest")
    with rundir.writing(pointer):
        with atomic_open(pointer) as f:
            f.write(name + "\n")
        rundir.fsync_dir(output_dir)


def save_checkpoint(output_dir, step, model, optimizer, state):
    """Write ``step_<step>`` and point ``latest`` at it (rank 0 only;
    parameters are identical on all ranks). Returns its path."""
    final = os.path.join(output_dir, f"step_{step}")
    tmp = os.path.join(output_dir, f".step_{step}.tmp-{os.getpid()}")
    try:
        with rundir.writing(final):
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
        _save_file(lambda p: weights_file.save(p, model.state_dict()), tmp, final, MODEL_FILE)
        if optimizer is not None:
            _save_file(lambda p: weights_file.save(p, optimizer.state_dict()), tmp, final, OPTIMIZER_FILE)
        _save_file(lambda p: _write_text(p, json.dumps(dict(state, step=step), indent=1)), tmp, final, STATE_FILE)
        _save_file(lambda p: _write_text(p, json.dumps(_manifest(tmp), indent=1)), tmp, final, MANIFEST)
        with rundir.writing(final):
            rundir.fsync_dir(tmp)
            _replace_dir(tmp, final, os.path.join(output_dir, f".step_{step}.old-{os.getpid()}"))
            rundir.fsync_dir(output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _write_pointer(output_dir, f"step_{step}")
    return final


def remove_old_checkpoints(output_dir, keep_last, step):
    """Keep ``keep_last`` checkpoints counting ``step_<step>`` just saved
    (0: keep all): delete older ``step_N`` dirs (damaged ones too). Dirs of
    later steps (left by an earlier, longer run) are not counted; they are
    replaced when training reaches them. Returns the deleted paths."""
    if keep_last <= 0:
        return []
    older = sorted((s, p) for s, p in _step_dirs(output_dir) if s < step)
    doomed = older[:max(0, len(older) - (keep_last - 1))]
    for s, path in doomed:
        aside = os.path.join(output_dir, f".step_{s}.old-{os.getpid()}")
        os.replace(path, aside)  # gone at once: a kill mid-delete leaves only a temp dir
        shutil.rmtree(aside, ignore_errors=True)
    return [p for _, p in doomed]


# ------------------------------------------------------------------ reading
def _step_dirs(output_dir):
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        m = _STEP_DIR.match(name)
        path = os.path.join(output_dir, name)
        if m and os.path.isdir(path):
            found.append((int(m.group(1)), path))
    return found


def _read_manifest(path):
    """The recorded files of a checkpoint, or None if it has no manifest."""
    manifest = os.path.join(path, MANIFEST)
    if not os.path.isfile(manifest):
        return None
    try:
        with open(manifest, encoding="utf-8") as f:
            files = json.load(f)["files"]
        if not isinstance(files, dict):
            raise ValueError("'files' is not a mapping")
        return files
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise CheckpointError(f"{manifest}: unreadable ({e})") from None


def _file_problem(path, name, entry, deep=True):
    """What is wrong with file ``name`` of checkpoint ``path`` compared with
    its manifest ``entry`` (None: nothing); ``deep`` also hashes it."""
    file = os.path.join(path, name)
    if not os.path.isfile(file):
        return f"{file}: missing (listed in {MANIFEST})"
    size = os.path.getsize(file)
    if size != entry.get("size"):
        return f"{file}: size {size} bytes, {MANIFEST} records {entry.get('size')} (truncated or overwritten)"
    if deep and _digest(file)[1] != entry.get("sha256"):
        return f"{file}: SHA-256 differs from {MANIFEST} (the file changed or was corrupted after saving)"
    return None


def is_complete(path):
    """The checkpoint's files are all there, with the sizes it recorded
    (cheap; :func:`verify` also compares the checksums)."""
    if not (os.path.isfile(os.path.join(path, STATE_FILE)) and checkpoint_file(path, MODEL_FILE)):
        return False
    try:
        files = _read_manifest(path)
    except CheckpointError:
        return False
    return files is None or not any(_file_problem(path, n, e, deep=False) for n, e in files.items())


def verify(path):
    """Check every file of a checkpoint against ``checksums.json``. Returns
    True if verified, False for a checkpoint without a manifest (written by
    an earlier version); raises :class:`CheckpointError` naming the first
    damaged file."""
    if not checkpoint_file(path, MODEL_FILE):
        raise CheckpointError(f"{os.path.join(path, MODEL_FILE)}: missing; {path} is not a complete checkpoint")
    if not os.path.isfile(os.path.join(path, STATE_FILE)):
        raise CheckpointError(f"{os.path.join(path, STATE_FILE)}: missing; {path} is not a complete checkpoint")
    files = _read_manifest(path)
    if files is None:
        return False
    for name, entry in sorted(files.items()):
        problem = _file_problem(path, name, entry)
        if problem:
            raise CheckpointError(problem)
    return True


def _check_file(file):
    """One file of a checkpoint dir against the manifest beside it (if any)."""
    directory, name = os.path.split(os.path.abspath(file))
    entry = (_read_manifest(directory) or {}).get(name)
    problem = entry and _file_problem(directory, name, entry)
    if problem:
        raise CheckpointError(problem)


def _read_pointer(output_dir):
    pointer = os.path.join(output_dir, "latest")
    try:
        with open(pointer, encoding="utf-8") as f:
            return os.path.join(output_dir, f.read().strip())
    except (OSError, UnicodeDecodeError):
        return None


def checkpoint_dirs(output_dir):
    """The ``step_N`` dirs of a run to try, newest first, complete or not:
    the one ``latest`` names and those before it (``latest`` is written
    last, so later dirs are leftovers); all of them if ``latest`` is
    missing or names no step dir."""
    found = [p for _, p in sorted(_step_dirs(output_dir), reverse=True)]
    pointed = _read_pointer(output_dir)
    return found[found.index(pointed):] if pointed in found else found


def list_checkpoints(output_dir):
    """Complete checkpoints as (step, path), oldest first."""
    return sorted((s, p) for s, p in _step_dirs(output_dir) if is_complete(p))


def find_latest(output_dir):
    """The newest complete checkpoint of a run (see :func:`checkpoint_dirs`), or None."""
    return next((p for p in checkpoint_dirs(output_dir) if is_complete(p)), None)


def read_state_dict(path):
    """:func:`vlcore.formats.weights_file.load` (safetensors, or a Paddle
    pickle read without running code from it), a damaged file reported as
    one :class:`CheckpointError` naming it."""
    try:
        return weights_file.load(path)
    except weights_file.WeightsFileError as e:
        raise CheckpointError(str(e)) from None


def load_weights(path):
    """A state dict from a weights file (``.safetensors``, or a ``.pdparams``
    of Paddle or of an earlier version), a checkpoint dir or a run dir (its
    latest checkpoint), checked against the checkpoint's ``checksums.json``
    when there is one. A damaged latest checkpoint of a run is an error
    naming the file, not a silent fall-back to an older one (unlike
    resume=auto): the user asked for the latest weights."""
    if os.path.isdir(path):
        if not checkpoint_file(path, MODEL_FILE):  # a run directory
            latest = next(iter(checkpoint_dirs(path)), None)
            if latest is None:
                raise FileNotFoundError(f"{path}: no {MODEL_FILE} and no step_N checkpoint")
            path = latest
        path = checkpoint_file(path, MODEL_FILE) or os.path.join(path, MODEL_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    _check_file(path)
    return read_state_dict(path)


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


def load_checkpoint(path, model, optimizer=None, check=True):
    """Restore model (+ optimizer) from a checkpoint dir; return its state.
    With ``check`` the files are first verified against the manifest; every
    file is read before anything is applied, so a damaged checkpoint leaves
    the model and optimizer untouched."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such checkpoint directory")
    if check:
        verify(path)
    elif not is_complete(path):
        raise CheckpointError(f"{path}: not a complete checkpoint (needs {MODEL_FILE} and {STATE_FILE})")
    state_file = os.path.join(path, STATE_FILE)
    try:
        with open(state_file, encoding="utf-8") as f:
            state = json.load(f)
        int(state["step"])
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{state_file}: unreadable ({type(e).__name__}: {e})") from None
    weights = read_state_dict(checkpoint_file(path, MODEL_FILE))
    opt_path = checkpoint_file(path, OPTIMIZER_FILE)
    opt_state = read_state_dict(opt_path) if optimizer is not None and opt_path else None
    set_weights(model, weights, path)
    if opt_state is not None:
        optimizer.set_state_dict(opt_state)
    return state
