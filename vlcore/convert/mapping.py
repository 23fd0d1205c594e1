"""Strict checkpoint mapping: rules that build each model key from named
source variables, declared drops, and :func:`apply_mapping`, which refuses
anything unplaced, unfilled or mis-shaped."""
import fnmatch
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from vlcore.framework.config import names_list

NOT_A_VARIABLE = "not a Paddle variable file"

# Names Paddle's optimizers and AMP give their persistable state; checkpoints
# saved with save_persistables carry them next to the weights.
OPTIMIZER_STATE = ("*_moment1_0", "*_moment2_0", "*_beta1_pow_acc_0", "*_beta2_pow_acc_0",
                   "*_velocity_0", "learning_rate_*", "@LR_DECAY_COUNTER@", "loss_scaling_*",
                   "num_bad_steps_*", "num_good_steps_*", "*.master")


class ConversionError(ValueError):
    """A checkpoint that does not fit the model; always one line."""

    def __init__(self, msg):
        super().__init__(" ".join(str(msg).splitlines()))



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
