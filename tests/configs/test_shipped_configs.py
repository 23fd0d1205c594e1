"""The shipped configs: every one validates, and the architecture is written
once -- in configs/*/arch/ -- and inherited (a copied block drifts: the
UNIMO-2 base Arch used to be repeated in four files). Loading only: no model
is built."""
import collections
import glob
import os

import pytest
import yaml

from helpers import ROOT

CONFIGS = os.path.join(ROOT, "configs")
# fragments listed in other configs' _base_ (architecture, losses, initialisation): no Arch.name of their own
FRAGMENT_DIRS = ("arch", "loss", "init")


def _rel(path):
    return os.path.relpath(path, CONFIGS)


def _all_yaml():
    return sorted(glob.glob(os.path.join(CONFIGS, "**", "*.yaml"), recursive=True))


def _is_fragment(path):
    return any(part in FRAGMENT_DIRS for part in _rel(path).split(os.sep)[:-1])


SHIPPED = [_rel(p) for p in _all_yaml() if not _is_fragment(p)]


@pytest.fixture(scope="module")
def loaded():
    import unimo  # noqa: F401  (registers the Arch / Loss / data sections)
    import unimo2  # noqa: F401
    from vlcore.framework.config import load_config
    from vlcore.framework.schema import TrainConfig
    return {rel: load_config(TrainConfig, os.path.join(CONFIGS, rel), []) for rel in SHIPPED}


def test_every_shipped_config_validates_with_its_own_output_dir(loaded):
    by_dir = collections.defaultdict(list)
    for rel, cfg in loaded.items():
        by_dir[cfg.Global.output_dir].append(rel)
    assert {d: r for d, r in by_dir.items() if len(r) > 1} == {}


def test_only_arch_fragments_spell_out_an_architecture():
    """A model's sizes (hidden_size) and a full encoder block belong to
    configs/*/arch/*.yaml; configs override single keys (vit.image_size)."""
    offenders = []
    for path in _all_yaml():
        if _is_fragment(path):
            continue
        with open(path, encoding="utf-8") as f:
            arch = (yaml.safe_load(f) or {}).get("Arch") or {}
        if "hidden_size" in arch or any(isinstance(arch.get(k), dict) and len(arch[k]) > 2
                                        for k in ("vit", "text", "fusion")):
            offenders.append(_rel(path))
    assert offenders == []


def test_large_configs_have_the_large_sizes(loaded):
    """24 layers, 1024-d, 16 heads everywhere (unimo_large_en.json,
    grounded_large_en.json of the official releases)."""
    large = {rel: cfg.Arch for rel, cfg in loaded.items() if "large" in os.path.basename(rel)}
    assert len(large) >= 15
    for rel, a in large.items():
        stacks = [a.vit, a.text, a.fusion] if hasattr(a, "vit") else [a]
        assert a.hidden_size == 1024, rel
        assert all((s.num_layers, s.num_heads) == (24, 16) for s in stacks), rel
