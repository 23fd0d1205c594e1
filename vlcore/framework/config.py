"""Config loading, overriding and validation for the UNIMO toolkit.

Configs are PaddleClas-style YAML files with top-level sections (Global, Arch,
Optimizer, ...).  Experiments differ from each other by a handful of keys, so
files inherit via ``_base_`` and the command line patches them via ``-o``.
The result is validated against dataclass schemas *before* any data is read or
any model is built, so a typo costs a second instead of a crashed job; every
error is a single line naming the file (or ``-o override``) that caused it.

Provenance maps every dotted leaf path ("Arch.grounding.top_k") to the file
that last set it; the extra key ``""`` names the top-level config file.
"""
import copy
import dataclasses
import difflib
import functools
import os
import re
import types
import typing
from typing import Any, Literal, Union

import yaml

from vlcore.framework.errors import ConfigError, UnknownNameError
from vlcore.framework.registry import Registry

__all__ = ["ConfigError", "UnknownNameError", "load_yaml_with_bases", "names_list",
           "apply_overrides", "build", "to_dict", "dump_yaml", "load_config", "at_least", "not_a_file",
           "field_check"]

OVERRIDE = "-o"  # provenance value of keys set on the command line


# ---------------------------------------------------------------- YAML dialect
# PyYAML implements YAML 1.1, whose float regex requires a dot, so ``5e-5``
# would silently become the string '5e-5'.  The dumper shares the corrected
# resolver so that such *strings* get quoted and survive a round trip.
_FLOAT_RE = re.compile(r"""^(?:
     [-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)
_FLOAT_TAG = "tag:yaml.org,2002:float"
# YAML 1.1 also reads yes/no/on/off as booleans (`amp: off` would be False);
# like YAML 1.2, only true/false are booleans here.
_BOOL_TAG = "tag:yaml.org,2002:bool"
_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_RESOLVERS = {ch: [r for r in rs if r[0] not in (_FLOAT_TAG, _BOOL_TAG)]
              for ch, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _ch in "-+0123456789.":
    _RESOLVERS.setdefault(_ch, []).append((_FLOAT_TAG, _FLOAT_RE))
for _ch in "tTfF":
    _RESOLVERS.setdefault(_ch, []).append((_BOOL_TAG, _BOOL_RE))


class _Loader(yaml.SafeLoader):
    yaml_implicit_resolvers = _RESOLVERS

    def construct_mapping(self, node, deep=False):
        # PyYAML silently keeps the last of two equal keys; two `Optimizer:`
        # blocks in one file are always a mistake.  (`<<` merges are exempt.)
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


class _Dumper(yaml.SafeDumper):
    yaml_implicit_resolvers = _RESOLVERS

    def ignore_aliases(self, data):  # no &id001 anchors in human-read dumps
        return True


def _parse_yaml(src, where, override=False):
    try:
        return yaml.load(src, Loader=_Loader)
    except yaml.YAMLError as e:
        mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None) or str(e)
        if override:
            raise ConfigError(f"{where}: cannot parse value: {problem} (quote it to pass "
                              "a string)") from None
        loc = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark else where
        raise ConfigError(f"{loc}: YAML syntax error: {problem}") from None


# ------------------------------------------------------ provenance-aware merge
def _join(prefix, key):
    return f"{prefix}.{key}" if prefix else str(key)


def _set_prov(prov, path, value, origin):
    """Drops the replaced subtree's entries and appends the new leaves at the
    end: the dict stays ordered by recency, which _where relies on."""
    for k in [k for k in prov if k == path or k.startswith(path + ".")]:
        del prov[k]
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _set_prov(prov, _join(path, k), v, origin)
    else:
        prov[path] = origin(path)


def _merge(dst, src, prov, origin, prefix=""):
    for k, v in src.items():
        path = _join(prefix, k)
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            if v:
                prov.pop(path, None)  # an empty-dict leaf stops being a leaf
            _merge(dst[k], v, prov, origin, path)
        else:
            dst[k] = copy.deepcopy(v)
            _set_prov(prov, path, v, origin)


def _resolve(path, stack):
    real = os.path.realpath(path)
    if real in [r for r, _ in stack]:
        chain = " -> ".join([p for _, p in stack] + [path])
        raise ConfigError(f"cyclic _base_ chain: {chain}")
    try:
        with open(path, encoding="utf-8") as f:
            raw = _parse_yaml(f, path)
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(f"config file not found: {path}") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    bases = raw.pop("_base_", [])
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: _base_ must be a path or a list of paths")
    cfg, prov = {}, {}
    for base in bases:
        base_path = os.path.normpath(os.path.join(os.path.dirname(path), base))
        if not os.path.isfile(base_path):
            raise ConfigError(f"{path}: _base_ file not found: {base_path}")
        bcfg, bprov = _resolve(base_path, stack + [(real, path)])
        _merge(cfg, bcfg, prov, lambda p, bp=bprov, f=base_path: bp.get(p, f))
    _merge(cfg, raw, prov, lambda p: path)
    return cfg, prov


def load_yaml_with_bases(path):
    """Bases are resolved independently and then merged, so a base's own
    ``_base_`` chain cannot leak into its siblings."""
    path = os.fspath(path)
    cfg, prov = _resolve(path, [])
    prov[""] = path
    return cfg, prov


def apply_overrides(cfg, provenance, overrides):
    """Overrides may create keys (validation rejects unknown ones later); a
    value, even a mapping, replaces what was there instead of merging."""
    for ov in [overrides] if isinstance(overrides, str) else overrides or ():
        key, sep, text = ov.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(p.strip() for p in parts):
            raise ConfigError(f"malformed override {ov!r}: expected Dotted.key.path=value")
        parts = [p.strip() for p in parts]
        text = text.strip()
        value = _parse_yaml(text, f"override {ov!r}", override=True) if text else ""
        node = cfg
        for i, part in enumerate(parts[:-1]):
            if node.get(part) is None:  # a section left empty in YAML is null
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"override {ov!r}: '{'.'.join(parts[:i + 1])}' is not a section")
            provenance.pop(".".join(parts[:i + 1]), None)
        node[parts[-1]] = value
        _set_prov(provenance, ".".join(parts), value, lambda p: OVERRIDE)
    return cfg


# ------------------------------------------------------------------ registry
def names_list(names, limit=12):
    """``a, b, c ... and N more``: a long list of names in a one-line message."""
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" ... and {len(names) - limit} more" if len(names) > limit else "")


# ---------------------------------------------------------------- validation
def _where(prov, path):
    """The file to blame for `path`: itself, else its most recently set
    descendant (sections), else its parent (missing keys, list items)."""
    while path not in prov:
        under = [v for k, v in prov.items() if k and (k.startswith(path + ".") or not path)]
        if under or not path:
            return _show(under[-1] if under else "<config>")
        parent = re.sub(r"(\[\d+\]|\.[^.\[]*|^[^.\[]*)$", "", path, count=1)
        path = "" if parent == path else parent
    return _show(prov[path])


def _show(src):
    return "-o override" if src == OVERRIDE else src


def _fail(prov, path, msg):
    raise ConfigError(f"{_where(prov, path)}: {msg}")


def _short(v):
    if v is None:
        return "null"
    r = repr(v)
    return f"{type(v).__name__} {r if len(r) <= 60 else r[:57] + '...'}"


def _tname(tp):
    if isinstance(tp, Registry):
        return f"{tp.kind} section"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _init_fields(cls):
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


@functools.lru_cache(maxsize=None)
def _hints(cls):
    return typing.get_type_hints(cls)


def _convert(tp, v, path, prov):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    bad = lambda: _fail(prov, path, f"{path}: expected {_tname(tp)}, got {_short(v)}")
    if tp is Any or tp is object:
        return v
    if isinstance(tp, Registry):
        return _convert_registry(tp, v, path, prov)
    if origin in (Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _convert(options[0], v, path, prov)
        for a in options:
            try:
                return _convert(a, v, path, prov)
            except ConfigError:
                pass
        bad()
    if origin is Literal:
        if any(v == a and type(v) is type(a) for a in args):
            return v
        _fail(prov, path, f"{path}: expected one of {', '.join(map(repr, args))}, got {_short(v)}")
    if dataclasses.is_dataclass(tp):  # `Global:` with every key commented out is null
        return _build_dc(tp, {} if v is None else v, path, prov)
    if tp in (bool, int, float, str, list, tuple, dict):  # bool is an int: keep it out
        ok = isinstance(v, (int, float) if tp is float else tp) and (tp is bool or type(v) is not bool)
        return (float(v) if tp is float else v) if ok else bad()
    if origin in (list, tuple):
        if not isinstance(v, (list, tuple)):
            bad()
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(v) != len(args):
                _fail(prov, path, f"{path}: expected {len(args)} items, got {len(v)}")
            return tuple(_convert(a, x, f"{path}[{i}]", prov) for i, (a, x) in enumerate(zip(args, v)))
        item = args[0] if args else Any
        out = [_convert(item, x, f"{path}[{i}]", prov) for i, x in enumerate(v)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(v, dict):
            bad()
        kt, vt = args or (Any, Any)
        return {_convert(kt, k, path, prov): _convert(vt, x, _join(path, k), prov) for k, x in v.items()}
    raise TypeError(f"config schema: unsupported type {tp!r} for {path}")


def _convert_registry(reg, v, path, prov):
    if dataclasses.is_dataclass(v) and any(type(v) is c for _, c in reg._entries.values()):
        return v
    if not isinstance(v, dict):
        _fail(prov, path, f"{path}: expected a {reg.kind} section (mapping with 'name'), got {_short(v)}")
    if "name" not in v:
        _fail(prov, path, f"{path}: missing 'name' (registered {reg.kind}s: {', '.join(reg.names())})")
    if not isinstance(v["name"], str) or v["name"] not in reg:
        _fail(prov, _join(path, "name"), f"{_join(path, 'name')}: unknown {reg.kind} {v['name']!r} "
              f"(registered: {', '.join(reg.names())})")
    return _build_dc(reg.config_class(v["name"]), v, path, prov)


# ------------------------------------------------------------ range checks
# A field's ``metadata={"check": fn}`` (see :func:`at_least`, :func:`not_a_file`)
# is applied to its converted value; ``fn`` returns what is wrong, or None.
# The failure names the key and the file that set it, like a type error.
def at_least(low):
    """Field metadata: reject values below ``low`` (e.g. an interval of 0)."""
    return {"check": lambda v: None if v is None or v >= low else f"must be >= {low}, got {v}",
            "doc": f">= {low}"}


def _not_a_file(v):
    if v and os.path.exists(v) and not os.path.isdir(v):
        return f"{v!r} exists and is not a directory"
    return None


def not_a_file():
    """Field metadata for an output directory: it may be missing, but a file
    of that name would fail the run only after its set-up."""
    return {"check": _not_a_file, "doc": "not an existing file"}


# Keys that mean the same in every section that has them: a batch of no
# samples has no mean loss (and used to fail deep in the data pipeline).
_CHECK_BY_NAME = {"batch_size": at_least(1), "num_workers": at_least(0)}


def field_check(f):
    """The range check of dataclass field ``f``: its metadata, else the one
    of its name; ``{"check": fn, "doc": "in words"}`` or ``{}``."""
    return f.metadata if "check" in f.metadata else _CHECK_BY_NAME.get(f.name, {})


def _check_value(f, value, path, prov):
    check = field_check(f).get("check")
    if check is None or isinstance(value, bool) or not isinstance(value, (int, float, str, type(None))):
        return
    problem = check(value)
    if problem:
        _fail(prov, path, f"{path}: {problem}")


def _build_dc(cls, v, path, prov):
    if isinstance(v, cls):
        return v
    if not isinstance(v, dict):
        _fail(prov, path, f"{path or '<top>'}: expected a {cls.__name__} section (mapping), got {_short(v)}")
    fields, hints = _init_fields(cls), _hints(cls)
    for key in v:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(fields)}"
            _fail(prov, _join(path, key), f"unknown key {_join(path, key)!r} ({hint})")
    kwargs = {}
    for name, f in fields.items():
        sub = _join(path, name)
        if name not in v:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                _fail(prov, path, f"missing required key {sub!r}")
            continue
        reg, tp = f.metadata.get("registry"), hints.get(name, Any)
        if reg is not None and (isinstance(v[name], dict) and "name" in v[name]
                                or tp is Any or isinstance(tp, Registry)):
            kwargs[name] = _convert_registry(reg, v[name], sub, prov)
        else:  # without a `name`, a metadata-registry field falls back to its annotation
            kwargs[name] = _convert(tp, v[name], sub, prov)
        _check_value(f, kwargs[name], sub, prov)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as e:
        _fail(prov, path, f"{path or cls.__name__}: {e}")


def build(schema_cls, cfg_dict, provenance=None):
    """Validate everything up front and return the schema instance."""
    return _build_dc(schema_cls, cfg_dict, "", provenance or {})


# ------------------------------------------------------------------- output
def to_dict(obj):
    """Only init fields are kept: they are exactly what build() accepts back."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {n: to_dict(getattr(obj, n)) for n in _init_fields(type(obj))}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(x) for x in obj]
    return obj


def dump_yaml(obj, path):
    """Atomic so that a crash mid-write never leaves a truncated config next
    to a checkpoint."""
    path = os.fspath(path)
    text = yaml.dump(to_dict(obj), Dumper=_Dumper, sort_keys=False,
                     default_flow_style=False, allow_unicode=True)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)
    return path


def load_config(schema_cls, path, overrides=()):
    cfg, prov = load_yaml_with_bases(path)
    apply_overrides(cfg, prov, overrides)
    return build(schema_cls, cfg, prov)
