"""Converting other people's checkpoints into a model's state dict.

A converter is a :class:`Mapping`: rules that build each model key from
named source variables (with a transform), plus the source names that are
dropped on purpose (with the reason) and the model keys the source does not
provide. :func:`apply_mapping` is strict by construction: a source variable
that no rule uses and no declared drop covers is an error that lists it (the
official UNIMO loaders skip such variables silently, which is how a model
ends up half-initialised without anyone noticing), and so is a model key
nobody fills that the mapping did not declare, or any shape mismatch. The
user may drop variables explicitly with ``ignore`` patterns.

Sources are read with the frameworks' own utilities: official static-graph
checkpoints (a directory with one file per persistable variable, written by
Paddle 1.x/2.x ``save_vars``/``save_persistables``) file by file with
``paddle.static.load_vars`` (files that are not variables -- configs,
vocabularies -- are skipped and listed in the report), ``.pdparams`` files
with ``paddle.load``. In Paddle 3 the static reader only works with the legacy
static graph, i.e. ``FLAGS_enable_pir_api=0`` in the environment *before*
Paddle is imported; when the current process already runs Paddle with PIR,
the checkpoint is read in a child process.

``Global.init_from`` accepts ``KIND:PATH[,KIND:PATH...]`` where KIND is a
converter registered by a model package (:func:`register_source`).
"""
import fnmatch
import os
import pickle
import re
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Names Paddle's optimizers and AMP give their persistable state; checkpoints
# saved with save_persistables carry them next to the weights.
OPTIMIZER_STATE = ("*_moment1_0", "*_moment2_0", "*_beta1_pow_acc_0", "*_beta2_pow_acc_0",
                   "*_velocity_0", "learning_rate_*", "@LR_DECAY_COUNTER@", "loss_scaling_*",
                   "num_bad_steps_*", "num_good_steps_*", "*.master")


class ConversionError(ValueError):
    """A checkpoint that does not fit the model; always one line."""

    def __init__(self, msg):
        super().__init__(" ".join(str(msg).splitlines()))


def names_list(names, limit=12):
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" ... and {len(names) - limit} more" if len(names) > limit else "")


# ------------------------------------------------------------------ reading
NOT_A_VARIABLE = "not a Paddle variable file"


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
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "state.pkl")
        r = subprocess.run([sys.executable, "-m", "vlcore.convert_utils", path, out], env=env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise ConversionError(f"{path}: reading failed: {r.stderr[-500:]}")
        with open(out, "rb") as f:
            return pickle.load(f)


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


def read_pdparams(path) -> Dict[str, np.ndarray]:
    """A ``.pdparams`` state dict as numpy arrays."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    import paddle
    try:
        state = paddle.load(path, return_numpy=True)
    except Exception as e:
        raise ConversionError(f"{path}: cannot read as a .pdparams file ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise ConversionError(f"{path}: expected a flat state dict of tensors")
    return state


# ------------------------------------------------------------------ mapping
def take(x):
    return x


def split(index, parts, axis):
    """Transform: piece ``index`` of ``parts`` equal pieces along ``axis``
    (a fused qkv projection into q, k, v)."""
    def fn(x):
        if x.shape[axis] % parts:
            raise ConversionError(f"cannot split axis {axis} of shape {list(x.shape)} into {parts}")
        return np.split(x, parts, axis=axis)[index]
    fn.__name__ = f"split({index}/{parts}, axis={axis})"
    return fn


def constant(array):
    """Transform without sources: a fixed value (e.g. LayerNorm identity)."""
    value = np.asarray(array, dtype=np.float32)
    return lambda: value


@dataclass(frozen=True)
class Rule:
    target: str                          # model state-dict key
    sources: Tuple[str, ...]             # source variable names (may be empty: constant)
    fn: Callable[..., np.ndarray] = take  # arrays of the sources -> target array


@dataclass
class Mapping:
    rules: List[Rule]
    dropped: Dict[str, str] = field(default_factory=dict)      # source pattern -> why it has no place
    unsupported: Dict[str, str] = field(default_factory=dict)  # source pattern -> what the model lacks
    may_keep_init: List[str] = field(default_factory=list)     # model-key patterns the source lacks
    notes: List[str] = field(default_factory=list)


@dataclass
class Report:
    source: str
    mapped: Dict[str, Tuple[str, ...]]
    dropped: Dict[str, str]
    ignored: List[str]
    kept_init: List[str]
    notes: List[str]
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # files of the source that are not variables

    def lines(self):
        n_src = len({s for srcs in self.mapped.values() for s in srcs})
        out = [f"{self.source}: {n_src} variables -> {len(self.mapped)} model tensors"]
        if self.skipped:
            out.append(f"skipped {len(self.skipped)} files that are not variables: "
                       f"{names_list([f'{n} ({why})' if why != NOT_A_VARIABLE else n for n, why in self.skipped], 8)}")
        reasons = {}
        for name, why in self.dropped.items():
            reasons.setdefault(why, []).append(name)
        out += [f"dropped {names_list(v, 4)}: {why}" for why, v in reasons.items()]
        if self.ignored:
            out.append(f"ignored on request: {names_list(self.ignored, 6)}")
        if self.kept_init:
            out.append(f"not in the source, left to the model's initialisation ({len(self.kept_init)}): "
                       f"{names_list(_prefixes(self.kept_init), 8)}")
        return out + self.notes


def _prefixes(keys):
    """``model.vit.encoder.layers.0.attn...`` -> ``model.vit.*`` for a short summary."""
    seen = []
    for k in keys:
        parts = k.split(".")
        p = ".".join(parts[:2]) + ".*" if len(parts) > 2 else k
        if p not in seen:
            seen.append(p)
    return seen


def _match(name, patterns):
    return next((p for p in patterns if fnmatch.fnmatchcase(name, p)), None)


def apply_mapping(source: Dict[str, np.ndarray], mapping: Mapping, model_state, where: str,
                  ignore: Sequence[str] = (), adapt: Optional[Callable] = None):
    """Build the model tensors of ``mapping`` from ``source``.

    ``model_state``: the model's state dict (shapes, dtypes); ``adapt``: the
    model's own loader adjustments (e.g. the ViT position grid resized to the
    configured image size), applied before shapes are compared. Returns
    ``(state, report)``; ``state`` holds only the keys the source provides.
    """
    ignored = sorted(n for n in source if _match(n, ignore))
    available = {k: v for k, v in source.items() if k not in ignored}
    state, mapped, missing, problems = {}, {}, [], []
    for rule in mapping.rules:
        absent = [s for s in rule.sources if s not in available]
        if absent:
            missing += [s for s in absent if s not in missing]
            continue
        if rule.target not in model_state:
            raise RuntimeError(f"mapping targets {rule.target!r}, which the model does not have")
        try:
            value = np.asarray(rule.fn(*(available[s] for s in rule.sources)))
        except ConversionError as e:
            problems.append(f"{rule.target} from {', '.join(rule.sources)}: {e}")
            continue
        state[rule.target] = value
        mapped[rule.target] = rule.sources
    if adapt is not None and state:
        state = {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in adapt(dict(state)).items()}
    for key, value in state.items():
        own = model_state[key]
        if list(value.shape) != list(own.shape):
            problems.append(f"{key} {list(value.shape)} (from {', '.join(mapped[key]) or 'constant'}) "
                            f"vs model {list(own.shape)}")
        else:
            state[key] = value.astype(_np_dtype(own), copy=False)
    used = {s for srcs in mapped.values() for s in srcs}
    dropped, unsupported, unknown = {}, [], []
    for name in sorted(set(available) - used):
        if _match(name, mapping.dropped):
            dropped[name] = mapping.dropped[_match(name, mapping.dropped)]
        elif _match(name, mapping.unsupported):
            unsupported.append(name)
        else:
            unknown.append(name)
    uncovered = sorted(set(model_state) - set(state))
    kept = [k for k in uncovered if _match(k, mapping.may_keep_init)]
    lacking = [k for k in uncovered if k not in kept]
    parts = []
    skipped = {n: why for n, why in getattr(source, "skipped", [])}
    unreadable = [m for m in missing if m in skipped]
    if unreadable:
        parts.append(f"{len(unreadable)} variables the mapping needs are files Paddle cannot read (damaged?): "
                     f"{names_list(unreadable)}")
    missing = [m for m in missing if m not in skipped]
    if missing:
        parts.append(f"{len(missing)} variables the mapping needs are missing: {names_list(missing)}")
    if problems:
        parts.append(f"{len(problems)} shape problems: {names_list(problems, 4)}")
    if unknown:
        parts.append(f"{len(unknown)} variables have no place in the model: {names_list(unknown)}"
                     + _optimizer_hint(unknown))
    if unsupported:
        reasons = sorted({mapping.unsupported[_match(n, mapping.unsupported)] for n in unsupported})
        parts.append(f"{len(unsupported)} variables this model cannot represent: {names_list(unsupported)} "
                     f"({'; '.join(reasons)})")
    if lacking and not (missing or unreadable):
        parts.append(f"{len(lacking)} model tensors would stay uninitialised: {names_list(lacking)}")
    if parts:
        hint = " -- drop variables on purpose with --ignore PATTERN" if (unknown or unsupported) else ""
        raise ConversionError(f"{where}: cannot convert: {'; '.join(parts)}{hint}")
    return state, Report(where, mapped, dropped, ignored, kept, list(mapping.notes), list(skipped.items()))


def _optimizer_hint(names):
    patterns = sorted({p for n in names for p in OPTIMIZER_STATE if fnmatch.fnmatchcase(n, p)})
    if not patterns:
        return ""
    return " (optimizer state among them: " + " ".join(f"--ignore '{p}'" for p in patterns) + ")"


def _np_dtype(tensor):
    return np.dtype(str(tensor.dtype).replace("paddle.", ""))


def complete_state(state, model_state):
    """``state`` plus the model's own values for every key it lacks (a file
    that loads strictly; the report names what was filled)."""
    full = {}
    for key, own in model_state.items():
        full[key] = state[key] if key in state else np.asarray(own.numpy())
    return full


# ------------------------------------------------------------ rule builders
# Shared by the model packages' converters: the naming of Paddle's static
# transformer_encoder (official UNIMO and UNIMO-2 alike) and of paddlenlp's
# BERT-family models, onto vlcore.layers.TransformerLayer.
def linear_rules(src_w, src_b, dst):
    """A Paddle fc / nn.Linear (weight [in, out], like ours) onto ``dst``."""
    return [Rule(f"{dst}.weight", (src_w,)), Rule(f"{dst}.bias", (src_b,))]


def layer_norm_rules(src_scale, src_bias, dst):
    return [Rule(f"{dst}.weight", (src_scale,)), Rule(f"{dst}.bias", (src_bias,))]


def identity_layer_norm_rules(dst, dim):
    """A LayerNorm the source has no counterpart for, set to the identity."""
    return [Rule(f"{dst}.weight", (), constant(np.ones(dim))), Rule(f"{dst}.bias", (), constant(np.zeros(dim)))]


def layer_ids(names, pattern):
    """Sorted layer numbers: group 1 of ``pattern`` over ``names``."""
    return sorted({int(m.group(1)) for n in names for m in [re.match(pattern, n)] if m})


def official_layer_rules(src, dst, pre_norm):
    """One layer of the official static ``transformer_encoder``
    (``{src}_multi_head_att_query_fc.w_0`` ...) onto our ``TransformerLayer``.
    Pre-LN ("n"/"da") names its norms pre_att/pre_ffn, post-LN ("dan")
    post_att/post_ffn; both sit where our norm1/norm2 sit."""
    n1, n2 = ("pre_att", "pre_ffn") if pre_norm else ("post_att", "post_ffn")
    rules = []
    for ours, theirs in (("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value"), ("out_proj", "output")):
        rules += linear_rules(f"{src}_multi_head_att_{theirs}_fc.w_0", f"{src}_multi_head_att_{theirs}_fc.b_0",
                              f"{dst}.attn.{ours}")
    rules += linear_rules(f"{src}_ffn_fc_0.w_0", f"{src}_ffn_fc_0.b_0", f"{dst}.ffn.fc1")
    rules += linear_rules(f"{src}_ffn_fc_1.w_0", f"{src}_ffn_fc_1.b_0", f"{dst}.ffn.fc2")
    rules += layer_norm_rules(f"{src}_{n1}_layer_norm_scale", f"{src}_{n1}_layer_norm_bias", f"{dst}.norm1")
    rules += layer_norm_rules(f"{src}_{n2}_layer_norm_scale", f"{src}_{n2}_layer_norm_bias", f"{dst}.norm2")
    return rules


def official_encoder_rules(names, src_prefix, dst, n_cfg, cfg_key, where, pre_norm=False):
    """Every ``{src_prefix}{i}_*`` layer of an official checkpoint, in order,
    onto ``{dst}.layers.{j}``; the count must equal the configured one."""
    ids = layer_ids(names, re.escape(src_prefix) + r"(\d+)_")
    if len(ids) != n_cfg:
        raise ConversionError(f"{where}: {len(ids)} {src_prefix}* layers in the checkpoint {ids} but "
                              f"{cfg_key}={n_cfg}")
    rules = []
    for ours, theirs in enumerate(ids):
        rules += official_layer_rules(f"{src_prefix}{theirs}", f"{dst}.layers.{ours}", pre_norm)
    return rules


def paddlenlp_layer_rules(src, dst):
    """One ``nn.TransformerEncoderLayer`` (paddlenlp BERT/RoBERTa,
    ``{src}self_attn.q_proj.weight`` ...) onto our post-LN ``TransformerLayer``."""
    rules = []
    for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
        rules += linear_rules(f"{src}self_attn.{proj}.weight", f"{src}self_attn.{proj}.bias", f"{dst}.attn.{proj}")
    rules += linear_rules(f"{src}linear1.weight", f"{src}linear1.bias", f"{dst}.ffn.fc1")
    rules += linear_rules(f"{src}linear2.weight", f"{src}linear2.bias", f"{dst}.ffn.fc2")
    rules += layer_norm_rules(f"{src}norm1.weight", f"{src}norm1.bias", f"{dst}.norm1")
    rules += layer_norm_rules(f"{src}norm2.weight", f"{src}norm2.bias", f"{dst}.norm2")
    return rules


def paddlenlp_prefix(names, base):
    """``roberta.`` (``base``) when saved from a task model (RobertaForMaskedLM,
    ...), nothing when saved from the bare model itself."""
    return f"{base}." if any(n.startswith(f"{base}.embeddings.") for n in names) else ""


def paddlenlp_lm_head_rules(source, word_key, dst, where):
    """paddlenlp RoBERTa's ``lm_head.*`` onto an :class:`MLMHead` at ``dst``
    (decoder tied to the word embeddings). Returns ``(rules, dropped,
    unsupported)``; no ``lm_head`` gives no rules."""
    names = set(source)
    rules, dropped, unsupported = [], {}, {}
    if not any(n.startswith("lm_head.") for n in names):
        return rules, dropped, unsupported
    rules += linear_rules("lm_head.dense.weight", "lm_head.dense.bias", f"{dst}.transform")
    rules += layer_norm_rules("lm_head.layer_norm.weight", "lm_head.layer_norm.bias", f"{dst}.norm")
    biases = [b for b in ("lm_head.bias", "lm_head.decoder.bias", "lm_head.decoder_bias") if b in names]
    if len(biases) > 1 and not all(np.array_equal(source[b], source[biases[0]]) for b in biases):
        raise ConversionError(f"{where}: {' and '.join(biases)} differ; which is the LM bias is ambiguous")
    if biases:
        rules.append(Rule(f"{dst}.bias", (biases[0],)))
        dropped.update({b: f"the same values as {biases[0]}" for b in biases[1:]})
    word = source.get(word_key)
    for w in ("lm_head.decoder.weight", "lm_head.decoder_weight"):
        if w in names:
            if word is not None and same_matrix(source[w], word):
                dropped[w] = "tied to the word embeddings (checked equal)"
            else:
                unsupported[w] = "an LM decoder not tied to the word embeddings; ours is tied"
    return rules, dropped, unsupported


def paddlenlp_embedding_rules(source, emb, word_dsts, pos_dst, norm_dst, src_start, dst_start,
                              type_dst=None, n_types=0):
    """paddlenlp BERT/RoBERTa embeddings (``{emb}word_embeddings.weight`` ...).
    Word rows go to every key of ``word_dsts`` (an embedding and its tied
    decoder); position rows move so that source position ``src_start + i``
    is our ``dst_start + i``. Token types: without ``type_dst`` row 0 is
    added to every position row -- exact, since every token gets one position
    row and type 0; with ``type_dst`` (``n_types`` rows) the source rows are
    copied and rows the source lacks start at zero. Returns ``(rules, notes)``."""
    names = set(source)
    word, pos = f"{emb}word_embeddings.weight", f"{emb}position_embeddings.weight"
    tt = f"{emb}token_type_embeddings.weight"
    roll = shift_positions(src_start, dst_start)
    rules, notes = [Rule(k, (word,)) for k in word_dsts], []
    if src_start != dst_start:
        notes.append(f"{pos} rolled by {dst_start - src_start} rows: source position {src_start} + i "
                     f"is our {dst_start} + i")
    n_src = source[tt].shape[0] if tt in names else 0
    if type_dst is None:
        rules.append(Rule(pos_dst, (pos, tt), lambda p_, t_: roll(p_) + t_[0][None, :]) if tt in names
                     else Rule(pos_dst, (pos,), roll))
        if n_src > 1:
            notes.append(f"{tt}: rows 1.. ({n_src - 1}) unused, the model has one segment type")
    else:
        def types(t):
            out = np.zeros((n_types, t.shape[1]), dtype=t.dtype)
            out[:min(n_types, len(t))] = t[:n_types]
            return out
        rules += [Rule(pos_dst, (pos,), roll), Rule(type_dst, (tt,), types)]
        if n_src < n_types:
            notes.append(f"{type_dst}: rows {n_src}..{n_types - 1} (segments the source lacks) start at zero")
        elif n_src > n_types:
            notes.append(f"{tt}: rows {n_types}.. ({n_src - n_types}) unused")
    rules += layer_norm_rules(f"{emb}layer_norm.weight", f"{emb}layer_norm.bias", norm_dst)
    return rules, notes


def same_matrix(w, word):
    """``w`` equals ``word`` (or its transpose)."""
    if w.shape == word.shape:
        return np.allclose(w, word)
    return w.shape == word.shape[::-1] and np.allclose(w.T, word)


def shift_positions(src_start, dst_start):
    """Transform of a position table: our row ``dst_start + i`` holds the
    source's row ``src_start + i`` (rows wrap around; the ones that do are
    never looked up)."""
    shift = dst_start - src_start
    fn = (lambda x: np.roll(x, shift, axis=0)) if shift else (lambda x: x)
    fn.__name__ = f"roll({shift})"
    return fn


def optimizer_state_dropped():
    """``Mapping.dropped`` entries for optimizer and learning-rate state
    (saved by ``save_persistables`` next to the weights): not weights."""
    return {p: "optimizer / learning-rate state, not weights" for p in OPTIMIZER_STATE}


# --------------------------------------------------------------- init_from
_SOURCES: Dict[str, Dict[str, Callable]] = {}   # kind -> {Arch name: converter}
_KIND = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)+$")


def register_source(kind, arch):
    """``converter(path, model, arch_cfg, ignore=(), position_start=None) ->
    (state, report)`` for ``KIND:PATH`` in ``Global.init_from`` (and
    tools/convert_checkpoint.py) with ``Arch.name == arch``;
    ``position_start`` None means the source kind's own convention."""
    def deco(fn):
        _SOURCES.setdefault(kind, {})[arch] = fn
        return fn
    return deco


def source_kinds():
    return sorted(_SOURCES)


def source_converter(kind, arch_name, what="Global.init_from"):
    """The converter registered for ``kind`` and ``Arch.name``."""
    if kind not in _SOURCES:
        raise ValueError(f"{what}: unknown source kind {kind!r} (known: {', '.join(source_kinds())})")
    conv = _SOURCES[kind].get(arch_name)
    if conv is None:
        raise ValueError(f"{what}: {kind} has no converter for Arch {arch_name!r} "
                         f"(it converts into: {', '.join(sorted(_SOURCES[kind]))})")
    return conv


def parse_init_from(text) -> List[Tuple[Optional[str], str]]:
    """``"vit-paddleclas:a.pdparams,roberta-paddlenlp:b.pdparams"`` ->
    ``[("vit-paddleclas", "a.pdparams"), ...]``; an item without a known
    ``KIND:`` prefix is a toolkit checkpoint (kind None)."""
    items = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            raise ValueError(f"Global.init_from: empty item in {text!r}")
        kind, sep, path = item.partition(":")
        if sep and kind in _SOURCES:
            if not path.strip():
                raise ValueError(f"Global.init_from: {kind}: needs a path after the colon")
            items.append((kind, path.strip()))
        elif sep and _KIND.match(kind) and not os.path.exists(item):
            raise ValueError(f"Global.init_from: unknown source kind {kind!r} "
                             f"(known: {', '.join(source_kinds()) or 'none registered'})")
        else:
            items.append((None, item))
    return items


def load_init_from(text, arch_name, model, arch_cfg):
    """The union of the states named by ``Global.init_from`` and one report
    per source; two sources setting the same tensor is an error."""
    from .checkpoint import load_weights
    state, owner, reports = {}, {}, []
    for kind, path in parse_init_from(text):
        if kind is None:
            part = {k: v for k, v in load_weights(path).items()}
            reports.append(None)
        else:
            part, report = source_converter(kind, arch_name)(path, model, arch_cfg)
            reports.append(report)
        clash = sorted(set(part) & set(state))
        if clash:
            raise ValueError(f"Global.init_from: {path} and {owner[clash[0]]} both set {names_list(clash, 4)}")
        state.update(part)
        owner.update({k: path for k in part})
    return state, reports


def _main(argv):
    """Child-process reader: ``python -m vlcore.convert_utils DIR OUT.pkl``
    (started with FLAGS_enable_pir_api=0)."""
    src, out = argv
    result = _load_static_here(src)  # (arrays, skipped, damaged)
    with open(out, "wb") as f:
        pickle.dump(result, f, protocol=4)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
