"""``Global.init_from``: toolkit checkpoints and converted sources (``KIND:PATH``
items), with the converter each model package registers per ``KIND`` and
``Arch.name`` (:data:`vlcore.framework.registry.INIT_SOURCE`; the converters
themselves are built with :mod:`vlcore.convert`)."""
import os
import re
from typing import List, Optional, Tuple

from vlcore.framework.config import names_list
from vlcore.framework.registry import INIT_SOURCE

# --------------------------------------------------------------- init_from
_KIND = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)+$")


def register_source(kind, arch):
    """``converter(path, model, arch_cfg, ignore=(), position_start=None) ->
    (state, report)`` for ``KIND:PATH`` in ``Global.init_from`` (and
    tools/convert_checkpoint.py) with ``Arch.name == arch``;
    ``position_start`` None means the source kind's own convention."""
    return INIT_SOURCE.register((kind, arch))


def _archs(kind):
    return sorted(a for k, a in INIT_SOURCE.names() if k == kind)


def source_kinds():
    return sorted({k for k, _ in INIT_SOURCE.names()})


def source_converter(kind, arch_name, what="Global.init_from"):
    """The converter registered for ``kind`` and ``Arch.name``."""
    if kind not in source_kinds():
        raise ValueError(f"{what}: unknown source kind {kind!r} (known: {', '.join(source_kinds())})")
    if (kind, arch_name) not in INIT_SOURCE:
        raise ValueError(f"{what}: {kind} has no converter for Arch {arch_name!r} "
                         f"(it converts into: {', '.join(_archs(kind))})")
    return INIT_SOURCE.get((kind, arch_name))


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
        if sep and kind in source_kinds():
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
    from vlcore.framework.checkpoint import load_weights
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
