#!/usr/bin/env python
"""The configuration reference, docs/config_reference.md, from the schema.

    python tools/config_reference.py            # regenerate the page
    python tools/config_reference.py --check    # change nothing; exit 1 if the page is stale

Imports unimo and unimo2 (each registers its Arch, Loss, DataLoader and task
entries), then walks ``vlcore.framework.schema.TrainConfig`` and every config
dataclass registered in the tables of ``vlcore.framework.registry``: each key
with its type, its default and what the source says about it -- the ``#``
comment block directly above the field and the comment after it (a blank
line detaches a comment from the field below), or the docstring of a nested
section's class. The page is a pure function of the code: no dates, no
machine, sorted names, so ``--check`` can run in the tests.
"""
import argparse
import ast
import dataclasses
import functools
import inspect
import io
import json
import os
import sys
import textwrap
import tokenize
import typing

import unimo  # noqa: F401  (registers UNIMO and Unicoder-VL)
import unimo2  # noqa: F401  (registers UNIMO-2)
from vlcore.formats.sharded import atomic_open
from vlcore.framework import registry
from vlcore.framework.config import field_check, to_dict
from vlcore.framework.registry import Registry
from vlcore.framework.schema import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, "docs", "config_reference.md")
# The registries a config file chooses from, in page order, with where the name goes.
TABLES = (("Arch", registry.ARCH), ("Loss", registry.LOSS), ("DataLoader.Train", registry.TRAIN_DATA),
          ("DataLoader.Eval", registry.EVALUATOR), ("DataLoader.Train.task", registry.TASK))
_LAYOUT = {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER, tokenize.COMMENT}


# ------------------------------------------------------------ the source's words
@functools.lru_cache(maxsize=None)
def _own_notes(cls):
    """``({field: comment}, docstring)`` of the fields ``cls``'s own source
    defines (inherited fields are looked up in their class)."""
    try:
        src = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}, ""
    node = ast.parse(src).body[0]
    comments, code = {}, set()
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in _LAYOUT:
            code.update(range(tok.start[0], tok.end[0] + 1))
    notes = {}
    for stmt in node.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        above, line = [], stmt.lineno - 1
        while line in comments and line not in code:  # comment-only lines right above
            above.insert(0, comments[line])
            line -= 1
        after = [comments[n] for n in range(stmt.lineno, stmt.end_lineno + 1) if n in comments]
        notes[stmt.target.id] = _join(above + after)
    return notes, _one_line(ast.get_docstring(node) or "")


def _join(parts):
    """Comment blocks as one text: a block that does not end a sentence or
    a clause gets a semicolon before the next."""
    text = ""
    for p in (" ".join(p.split()) for p in parts if p.strip()):
        text += ("" if not text else " " if text[-1] in ".:;," else "; ") + p
    return text


def _one_line(text):
    return " ".join(text.split())


def field_note(cls, name):
    """What the source says about field ``name`` of ``cls`` (the nearest
    class in its MRO that comments it)."""
    for c in cls.__mro__:
        if dataclasses.is_dataclass(c) and name in c.__dict__.get("__annotations__", {}):
            note = _own_notes(c)[0].get(name)
            if note:
                return note
    return ""


def class_doc(cls, inherited=True):
    """The docstring of ``cls`` (or, ``inherited``, of its nearest documented base)."""
    for c in cls.__mro__ if inherited else (cls,):
        if dataclasses.is_dataclass(c):
            doc = _own_notes(c)[1]
            if doc:
                return doc
    return ""


# ------------------------------------------------------------ types and defaults
def _registry_of(tp, f=None):
    if f is not None and isinstance(f.metadata.get("registry"), Registry):
        return f.metadata["registry"]
    if isinstance(tp, Registry):
        return tp
    if typing.get_origin(tp) is typing.Union:
        found = [a for a in typing.get_args(tp) if isinstance(a, Registry)]
        return found[0] if found else None
    return None


def _section_class(tp):
    """The dataclass of a nested section, or of the items of a list of sections."""
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (list, tuple):
        args = typing.get_args(tp)
        if args and dataclasses.is_dataclass(args[0]):
            return args[0]
    return None


def type_name(tp):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if isinstance(tp, Registry):
        return f"{tp.kind} section"
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin is typing.Union:
        options = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(options) + (" or null" if type(None) in args else "")
    if origin in (list, tuple):
        item = args[0] if args else typing.Any
        return "list of sections" if dataclasses.is_dataclass(item) else f"list of {type_name(item)}"
    if origin is dict:
        return f"mapping {type_name(args[0])} -> {type_name(args[1])}" if args else "mapping"
    if dataclasses.is_dataclass(tp):
        return "section"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def default_text(f):
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if dataclasses.is_dataclass(value):
        return ""  # a section: its keys follow
    if isinstance(value, float):
        return repr(value)
    return json.dumps(to_dict(value))


# ------------------------------------------------------------ tables
def rows(cls, prefix=""):
    """``(key, type, default, meaning)`` for every key of ``cls``, nested
    sections flattened to dotted keys (``vit.image_size``, ``corpora[].path``)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp, key, note = hints.get(f.name, typing.Any), prefix + f.name, field_note(cls, f.name)
        rule = field_check(f).get("doc")
        if rule:  # the validator's range check, in words
            note = f"({rule}) {note}".strip()
        reg, sub = _registry_of(tp, f), _section_class(tp)
        if reg is not None:
            section = _kind_section(reg)
            out.append((key, f"a `{section}` section" + (" or null" if "null" in type_name(tp) else ""),
                        default_text(f), _sentence(note) + f"Entries: [{section}](#{_slug(section)})."))
        elif sub is not None:
            out.append((key, type_name(tp), default_text(f), note or class_doc(sub)))
            out.extend(rows(sub, key + ("[]." if sub is not tp else ".")))
        else:
            out.append((key, type_name(tp), default_text(f), note))
    return out


def _sentence(note):
    """``note`` ended as a sentence, to append another one."""
    return "" if not note else note + (" " if note.endswith(".") else ". ")


def _kind_section(reg):
    for section, table in TABLES:
        if table is reg:
            return section
    raise KeyError(f"registry {reg.kind!r} is not in config_reference.TABLES")


def _slug(text):
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _cell(text):
    return text.replace("|", "\\|").replace("\n", " ")


def _table(row_list, names=None):
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for key, tp, default, note in row_list:
        if key == "name" and names is not None:
            tp, default, note = "str", "required", "picks the entry: " + ", ".join(f"`{n}`" for n in names)
        default = f"`{default}`" if default and default != "required" else default
        lines.append(f"| `{key}` | {_cell(tp)} | {_cell(default)} | {_cell(note)} |")
    return lines


def _qualname(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _toolkit_names(table):
    """The names the toolkit's packages registered: a test (or a user's
    plugin) registering its own entries in the same process is not part of
    the reference."""
    return [n for n in table.names()
            if table.config_class(n).__module__.split(".")[0] in ("vlcore", "unimo", "unimo2", "data_prep")]


def _plain_sections():
    """TrainConfig's sections that are plain dataclasses (Global, Optimizer,
    LRScheduler), and a check that the registries it reaches are TABLES."""
    hints = typing.get_type_hints(TrainConfig)
    plain, reached, todo, seen = [], set(), [TrainConfig], set()
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        for f in dataclasses.fields(cls):
            tp = typing.get_type_hints(cls).get(f.name)
            reg = _registry_of(tp, f)
            if reg is not None:
                reached.add(reg.kind)
                todo.extend(reg.config_class(n) for n in _toolkit_names(reg))
            elif _section_class(tp) is not None:
                todo.append(_section_class(tp))
    for f in dataclasses.fields(TrainConfig):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and any(_registry_of(h) is None for h in typing.get_type_hints(tp).values()):
            plain.append((f.name, tp))
    missing = reached - {t.kind for _, t in TABLES}
    if missing:
        raise KeyError(f"registries {sorted(missing)} are in the schema but not in config_reference.TABLES")
    return plain


def render():
    out = ["# Configuration reference", "",
           "<!-- generated by python tools/config_reference.py from the schema; do not edit by hand -->", "",
           "Every key a config file may set: its type, its default (what a key left out gets) and what the "
           "source says about it. Generated by `python tools/config_reference.py` from "
           "`vlcore/framework/schema.py` and the config dataclasses registered by `unimo` and `unimo2` "
           "(`vlcore/framework/registry.py`); the tests fail when this page is stale. How config files are "
           "written, inherited and overridden: [configuration.md](configuration.md).", "",
           "Sections with a `name` (`Arch`, `Loss`, `DataLoader.Train`, `DataLoader.Eval` and a fine-tuning "
           "task) take the keys of the entry that name picks. Nested sections are flattened to dotted keys "
           "(`vit.image_size` is `Arch: {vit: {image_size: ...}}`); `corpora[].path` is the `path` of each "
           "item of the list `corpora`. Types: `float` also accepts an integer, `a | b` is one of those "
           "values; `(>= 1)` is a range the validator checks before any work starts.", "",
           "## Sections", "", "| section | chosen by | entries |", "| --- | --- | --- |"]
    plain = _plain_sections()
    for name, _ in plain:
        out.append(f"| [{name}](#{_slug(name)}) | | |")
    for section, table in TABLES:
        links = ", ".join(f"[{n}](#{_slug(section + '-' + n)})" for n in _toolkit_names(table))
        out.append(f"| [{section}](#{_slug(section)}) | `{section}.name` | {links} |")
    for name, cls in plain:
        doc = class_doc(cls, inherited=False)
        out += ["", f"## {name}", "", f"`{_qualname(cls)}`" + (f": {doc}" if doc else ""), ""]
        out += _table(rows(cls))
    for section, table in TABLES:
        out += ["", f'<a id="{_slug(section)}"></a>', "", f"## {section}", "",
                f"`{section}: {{name: ...}}` picks one of these entries (registry `{table.kind}` in "
                "`vlcore/framework/registry.py`). Entries sharing a config class share its keys."]
        groups = {}
        for n in _toolkit_names(table):
            groups.setdefault(table.config_class(n), []).append(n)
        for cls, names in groups.items():
            own = rows(cls)
            out += ["", f"### {section}: {', '.join(names)}", ""]
            out += [f'<a id="{_slug(section + "-" + n)}"></a>' for n in names]
            doc = class_doc(cls, inherited=False)
            out += ["", f"`{_qualname(cls)}`" + (f": {doc}" if doc else ""), ""]
            base = next((b for b in cls.__mro__[1:] if b in groups), None)
            if base is not None:
                inherited = set(rows(base))
                own = [r for r in own if r not in inherited or r[0] == "name"]
                out += [f"Every key of [{groups[base][0]}](#{_slug(section + '-' + groups[base][0])}), and:", ""]
            out += _table(own, names)
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/config_reference.md is stale")
    args = ap.parse_args(argv)
    text = render()
    try:
        with open(PAGE, encoding="utf-8") as f:
            current = f.read()
    except FileNotFoundError:
        current = None
    if args.check:
        if current != text:
            print("error: docs/config_reference.md is stale (run python tools/config_reference.py)",
                  file=sys.stderr)
            return 1
        return 0
    if current != text:
        with atomic_open(PAGE) as f:
            f.write(text)
        print(f"[config_reference] wrote {os.path.relpath(PAGE, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
