"""The layering rule of docs/design.md, checked on the code's own imports.

Every ``import`` and ``from ... import`` in the packages counts, also the ones
inside functions (a lazy import is still a dependency), so the rule cannot be
dodged by moving an import into a function.
"""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("vlcore", "unimo", "unimo2", "data_prep")

# What each part may import from the toolkit (besides itself). A part is a
# subpackage of vlcore or a top-level package; "vlcore.framework.env" names
# one module where only that module is allowed.
VLCORE_BASE = {"vlcore.formats", "vlcore.layers", "vlcore.text", "vlcore.viz"}
ALLOWED = {
    "vlcore.formats": set(),
    "vlcore.layers": set(),
    "vlcore.text": set(),
    "vlcore.viz": {"vlcore.formats"},  # atomic file writes
    "vlcore.framework": VLCORE_BASE,
    "vlcore.data": VLCORE_BASE | {"vlcore.framework"},
    "vlcore.convert": VLCORE_BASE | {"vlcore.framework"},
    "vlcore.tasks": VLCORE_BASE | {"vlcore.framework", "vlcore.data"},
    # data preparation shares formats, readers and the tokenizer, never the
    # training engine: of the framework only the process setup and dist glue
    "data_prep": VLCORE_BASE | {"vlcore.data", "vlcore.framework.env", "vlcore.framework.dist"},
    "unimo": VLCORE_BASE | {"vlcore.framework", "vlcore.data", "vlcore.convert", "vlcore.tasks", "data_prep"},
    "unimo2": VLCORE_BASE | {"vlcore.framework", "vlcore.data", "vlcore.convert", "vlcore.tasks", "data_prep"},
}


def _modules():
    for pkg in PACKAGES:
        for d, _, files in os.walk(os.path.join(ROOT, pkg)):
            for f in sorted(files):
                if f.endswith(".py"):
                    path = os.path.join(d, f)
                    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    yield (rel[: -len(".__init__")] if rel.endswith(".__init__") else rel), path


def _imports(module, path):
    """Toolkit modules imported by ``module`` (absolute names), anywhere in it."""
    is_pkg = path.endswith("__init__.py")
    out = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: len(module.split(".")) - node.level + (1 if is_pkg else 0)]
                base = ".".join(parts + ([base] if base else []))
            # "from pkg import module" imports the module; "from mod import name", mod
            out |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULE_NAMES else base for a in node.names}
    return {m for m in out if m.split(".")[0] in PACKAGES}


MODULES = dict(_modules())
MODULE_NAMES = set(MODULES)
# A package's __init__ importing its own modules (to register them, or to
# re-export its API) is not a dependency between peers: those edges are left out.
GRAPH = {m: {t for t in _imports(m, p) if t in MODULES and t != m and not t.startswith(m + ".")}
         for m, p in MODULES.items()}


def _part(module):
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "vlcore" and len(parts) > 1 else parts[0]


def _allowed(src, dst):
    a, b = _part(src), _part(dst)
    if a == b or dst == "vlcore":
        return True
    rules = ALLOWED.get(a)
    if rules is None:
        return False       # vlcore's own top-level modules: there are none besides the package
    return b in rules or any(dst == r or dst.startswith(r + ".") for r in rules)


def test_every_part_has_a_rule():
    assert {_part(m) for m in MODULES} - {"vlcore"} == set(ALLOWED)


def test_imports_follow_the_layers():
    bad = sorted(f"{src} imports {dst}" for src, dsts in GRAPH.items() for dst in dsts if not _allowed(src, dst))
    assert not bad, "\n".join(bad)


def _circles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


def test_no_import_circles():
    """No circle of modules importing each other (lazy imports count)."""
    assert not _circles(GRAPH)


def test_circles_are_found():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("rule", [("vlcore.framework.run", "unimo2.model"), ("data_prep.demo", "vlcore.framework.run"),
                                  ("vlcore.formats.records", "vlcore.data.images"), ("unimo.model", "unimo2.vit")])
def test_the_rule_catches_a_wrong_import(rule):
    """The check itself: imports that must be refused are refused."""
    assert not _allowed(*rule)
