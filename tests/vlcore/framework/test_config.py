"""Tests for vlcore.framework.config: inheritance, overrides, validation, registry, dump."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, Optional, Tuple

import pytest
import yaml

from vlcore.framework.config import (
    ConfigError,
    Registry,
    UnknownNameError,
    apply_overrides,
    build,
    dump_yaml,
    load_config,
    load_yaml_with_bases,
    to_dict,
)

# ------------------------------------------------------------------ schemas
ARCH = Registry("arch")


@dataclass
class Grounding:
    top_k: int = 20
    temperature: float = 1.0


@dataclass
class UnimoArch:
    name: str = "UNIMO"
    hidden_size: int = 768
    grounding: Grounding = field(default_factory=Grounding)


@dataclass
class Unimo2Arch:
    name: str = "UNIMO2"
    num_codes: int = 2048
    layers: List[int] = field(default_factory=lambda: [12, 12])


@ARCH.register("UNIMO", config=UnimoArch)
def build_unimo(cfg, vocab=0):
    return ("unimo", cfg.hidden_size, vocab)


@ARCH.register("UNIMO2", config=Unimo2Arch)
class BuildUnimo2:
    def __init__(self, cfg, **kwargs):
        self.cfg, self.kwargs = cfg, kwargs


@dataclass
class GlobalCfg:
    output_dir: str = "output"
    epochs: int = 1
    use_amp: bool = False
    seed: Optional[int] = None
    tags: Dict[str, str] = field(default_factory=dict)


@dataclass
class OptimizerCfg:
    name: Literal["AdamW", "SGD"] = "AdamW"
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: Tuple[float, ...] = (0.9, 0.999)


@dataclass
class LRCfg:
    warmup_steps: int = 0
    total_steps: int = 100

    def __post_init__(self):
        if self.warmup_steps > self.total_steps:
            raise ValueError("warmup_steps must not exceed total_steps")


@dataclass
class DataLoaderCfg:
    batch_size: int  # required
    sizes: List[int] = field(default_factory=list)
    extra: Any = None


@dataclass
class Schema:
    Arch: ARCH
    DataLoader: DataLoaderCfg
    Global: GlobalCfg = field(default_factory=GlobalCfg)
    Optimizer: OptimizerCfg = field(default_factory=OptimizerCfg)
    LRScheduler: LRCfg = field(default_factory=LRCfg)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return str(p)


BASE = """
Global:
  output_dir: out_base
  epochs: 3
Arch:
  name: UNIMO
  grounding: {top_k: 10, temperature: 0.5}
DataLoader:
  batch_size: 8
  sizes: [1, 2, 3]
"""


def exp(tmp_path, extra):
    """A child config inheriting BASE, so it may redefine any section."""
    write(tmp_path, "base.yaml", BASE)
    return write(tmp_path, "exp.yaml", "_base_: base.yaml\n" + extra + "\n")


def load_err(schema, path, overrides=()):
    with pytest.raises(ConfigError) as ei:
        load_config(schema, path, list(overrides))
    msg = str(ei.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------- inheritance
def test_base_inheritance_merges_dicts_and_replaces_lists(tmp_path):
    base = write(tmp_path, "configs/base.yaml", BASE)
    child = write(tmp_path, "configs/exp/child.yaml", """
_base_: ../base.yaml
Arch:
  grounding: {top_k: 5}
DataLoader:
  sizes: [7]
""")
    cfg, prov = load_yaml_with_bases(child)
    assert "_base_" not in cfg
    assert cfg["Arch"] == {"name": "UNIMO", "grounding": {"top_k": 5, "temperature": 0.5}}
    assert cfg["DataLoader"] == {"batch_size": 8, "sizes": [7]}
    assert prov["Arch.grounding.top_k"] == child
    assert prov["Arch.grounding.temperature"].endswith("base.yaml")
    assert prov["DataLoader.sizes"] == child
    assert prov[""] == child
    inst = load_config(Schema, child)
    assert inst.Arch == UnimoArch(grounding=Grounding(top_k=5, temperature=0.5))
    assert inst.Global.epochs == 3 and inst.DataLoader.sizes == [7]
    assert base  # silence linters


def test_two_level_chain_and_multiple_bases(tmp_path):
    write(tmp_path, "a.yaml", BASE)
    write(tmp_path, "b.yaml", "_base_: a.yaml\nGlobal: {epochs: 5}\n")
    write(tmp_path, "opt.yaml", "Optimizer: {lr: 1e-3, name: SGD}\nGlobal: {epochs: 9}\n")
    c = write(tmp_path, "c.yaml", "_base_: [b.yaml, opt.yaml]\nOptimizer: {lr: 2e-3}\n")
    cfg, prov = load_yaml_with_bases(c)
    assert cfg["Global"] == {"output_dir": "out_base", "epochs": 9}
    assert prov["Global.output_dir"].endswith("a.yaml")
    assert prov["Global.epochs"].endswith("opt.yaml")
    assert cfg["Optimizer"] == {"lr": 2e-3, "name": "SGD"}
    assert prov["Optimizer.name"].endswith("opt.yaml") and prov["Optimizer.lr"] == c


def test_cycle_detection(tmp_path):
    a = write(tmp_path, "a.yaml", "_base_: b.yaml\nGlobal: {epochs: 1}\n")
    write(tmp_path, "b.yaml", "_base_: [a.yaml]\n")
    with pytest.raises(ConfigError, match=r"cyclic _base_ chain: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load_yaml_with_bases(a)


def test_missing_files(tmp_path):
    missing = str(tmp_path / "nope.yaml")
    assert load_err(Schema, missing) == f"config file not found: {missing}"
    a = write(tmp_path, "a.yaml", "_base_: gone.yaml\n")
    with pytest.raises(ConfigError, match=r"a\.yaml: _base_ file not found: .*gone\.yaml"):
        load_yaml_with_bases(a)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    p = write(tmp_path, "bad.yaml", "Global:\n  epochs: 3\n  tags: [a, b\nArch: {}\n")
    msg = load_err(Schema, p)
    assert msg.startswith(f"{p}:4:") and "YAML syntax error" in msg


def test_duplicate_key_rejected(tmp_path):
    p = write(tmp_path, "dup.yaml", "Global: {epochs: 1}\nGlobal: {epochs: 2}\n")
    assert load_err(Schema, p).startswith(f"{p}:2:1: YAML syntax error: duplicate key 'Global'")


# ------------------------------------------------------------ floats / -o
def test_exponent_floats_parse_as_float(tmp_path):
    p = write(tmp_path, "f.yaml", BASE + "Optimizer: {lr: 5e-5, weight_decay: 1e4}\n")
    cfg, prov = load_yaml_with_bases(p)
    assert cfg["Optimizer"] == {"lr": 5e-5, "weight_decay": 1e4}
    assert isinstance(cfg["Optimizer"]["weight_decay"], float)
    assert yaml.safe_load("5e-5") == "5e-5"  # PyYAML's own loader is left untouched
    apply_overrides(cfg, prov, ["Optimizer.lr=3e-5", "Global.tags={v: 1.2.3}"])
    assert cfg["Optimizer"]["lr"] == 3e-5 and isinstance(cfg["Optimizer"]["lr"], float)
    assert cfg["Global"]["tags"] == {"v": "1.2.3"}


def test_override_value_types_and_provenance(tmp_path):
    p = write(tmp_path, "o.yaml", BASE)
    cfg, prov = load_yaml_with_bases(p)
    apply_overrides(cfg, prov, ["Global.use_amp=true", "DataLoader.sizes=[4, 5]",
                                "Global.seed=null", "Global.output_dir = runs/x",
                                "Arch.grounding={top_k: 1}"])
    assert cfg["Global"]["use_amp"] is True and cfg["Global"]["seed"] is None
    assert cfg["DataLoader"]["sizes"] == [4, 5] and cfg["Global"]["output_dir"] == "runs/x"
    assert cfg["Arch"]["grounding"] == {"top_k": 1}  # replaced, not merged
    assert "Arch.grounding.temperature" not in prov
    assert prov["Global.seed"] == "-o" and prov["Arch.grounding.top_k"] == "-o"


@pytest.mark.parametrize("ov", ["Global.epochs", "=3", "Global..epochs=3", " =1"])
def test_malformed_override(tmp_path, ov):
    with pytest.raises(ConfigError) as ei:
        apply_overrides({}, {}, [ov])
    assert str(ei.value) == f"malformed override {ov!r}: expected Dotted.key.path=value"


def test_override_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"override 'Global.epochs.x=1': 'Global.epochs' is not a section"):
        apply_overrides({"Global": {"epochs": 1}}, {}, ["Global.epochs.x=1"])
    with pytest.raises(ConfigError, match=r"override 'Global.tags=\[a': cannot parse value: "
                                          r".* \(quote it to pass a string\)"):
        apply_overrides({}, {}, ["Global.tags=[a"])


def test_unknown_key_from_override_names_override(tmp_path):
    p = write(tmp_path, "o.yaml", BASE)
    msg = load_err(Schema, p, ["Optimizer.lrr=0.1"])
    assert msg == "-o override: unknown key 'Optimizer.lrr' (did you mean 'lr'?)"


# ---------------------------------------------------------------- validation
def test_unknown_key_suggestion_names_the_right_file(tmp_path):
    write(tmp_path, "base.yaml", BASE.replace("top_k: 10", "topk: 10"))
    child = write(tmp_path, "child.yaml", "_base_: base.yaml\nGlobal: {epochs: 2}\n")
    msg = load_err(Schema, child)
    base = str(tmp_path / "base.yaml")
    assert msg == f"{base}: unknown key 'Arch.grounding.topk' (did you mean 'top_k'?)"
    p = write(tmp_path, "x.yaml", BASE + "Eval: {a: 1}\n")
    assert load_err(Schema, p).startswith(f"{p}: unknown key 'Eval' (valid keys: Arch, DataLoader,")


@pytest.mark.parametrize("line,expected", [
    ("Optimizer: {lr: abc}", "Optimizer.lr: expected float, got str 'abc'"),
    ("Optimizer: {lr: true}", "Optimizer.lr: expected float, got bool True"),
    ("Optimizer: {lr: '1e-3'}", "Optimizer.lr: expected float, got str '1e-3'"),
    ("Global: {epochs: 2.5}", "Global.epochs: expected int, got float 2.5"),
    ("Global: {epochs: false}", "Global.epochs: expected int, got bool False"),
    ("Global: {epochs: '3'}", "Global.epochs: expected int, got str '3'"),
    ("Global: {use_amp: 1}", "Global.use_amp: expected bool, got int 1"),
    ("Global: {output_dir: 5}", "Global.output_dir: expected str, got int 5"),
    ("Global: {epochs: null}", "Global.epochs: expected int, got null"),
    ("Global: {seed: x}", "Global.seed: expected int, got str 'x'"),
    ("Global: {tags: {a: 1}}", "Global.tags.a: expected str, got int 1"),
    ("Global: 3", "Global: expected a GlobalCfg section (mapping), got int 3"),
])
def test_wrong_types(tmp_path, line, expected):
    p = exp(tmp_path, line)
    assert load_err(Schema, p) == f"{p}: {expected}"


def test_int_to_float_coercion_and_optional(tmp_path):
    p = exp(tmp_path, "Optimizer: {lr: 1, betas: [1, 0.5]}\nGlobal: {seed: 7}")
    inst = load_config(Schema, p)
    assert inst.Optimizer.lr == 1.0 and type(inst.Optimizer.lr) is float
    assert inst.Optimizer.betas == (1.0, 0.5) and type(inst.Optimizer.betas[0]) is float
    assert inst.Global.seed == 7
    assert load_config(Schema, p, ["Global.seed=null"]).Global.seed is None


def test_empty_section_means_defaults(tmp_path):
    p = exp(tmp_path, "Global:\n  # epochs: 4\nLRScheduler:")
    # null is a non-dict value, so it replaces the inherited section
    assert load_config(Schema, p).Global == GlobalCfg()
    assert load_config(Schema, p, ["LRScheduler.warmup_steps=7"]).LRScheduler == LRCfg(warmup_steps=7)


def test_literal_lists_allowed_values(tmp_path):
    p = write(tmp_path, "l.yaml", BASE + "Optimizer: {name: Adam}\n")
    assert load_err(Schema, p) == f"{p}: Optimizer.name: expected one of 'AdamW', 'SGD', got str 'Adam'"


def test_list_element_error_has_index(tmp_path):
    p = write(tmp_path, "l.yaml", BASE)
    msg = load_err(Schema, p, ["DataLoader.sizes=[1, 2, x]"])
    assert msg == "-o override: DataLoader.sizes[2]: expected int, got str 'x'"
    p2 = write(tmp_path, "l2.yaml", BASE.replace("[1, 2, 3]", "[1, 2, 3.5]"))
    assert load_err(Schema, p2) == f"{p2}: DataLoader.sizes[2]: expected int, got float 3.5"
    assert load_err(Schema, p2, ["DataLoader.sizes=4"]) == \
        "-o override: DataLoader.sizes: expected List[int], got int 4"


def test_missing_required_field_names_section_file(tmp_path):
    write(tmp_path, "base.yaml", BASE.replace("  batch_size: 8\n", ""))
    child = write(tmp_path, "child.yaml", "_base_: base.yaml\nGlobal: {epochs: 1}\n")
    msg = load_err(Schema, child)
    assert msg == f"{tmp_path / 'base.yaml'}: missing required key 'DataLoader.batch_size'"
    p = write(tmp_path, "noarch.yaml", "DataLoader: {batch_size: 1}\n")
    assert load_err(Schema, p) == f"{p}: missing required key 'Arch'"


def test_registry_polymorphism(tmp_path):
    p = write(tmp_path, "r.yaml", BASE)
    inst = load_config(Schema, p)
    assert isinstance(inst.Arch, UnimoArch)
    assert ARCH.build(inst.Arch, vocab=3) == ("unimo", 768, 3)
    p2 = write(tmp_path, "r2.yaml", BASE.replace(
        "  name: UNIMO\n  grounding: {top_k: 10, temperature: 0.5}", "  name: UNIMO2\n  num_codes: 64"))
    inst2 = load_config(Schema, p2)
    assert inst2.Arch == Unimo2Arch(num_codes=64)
    built = ARCH.build(inst2.Arch, vocab=5)
    assert isinstance(built, BuildUnimo2) and built.kwargs == {"vocab": 5}
    # fields of one arch are unknown to the other
    assert load_err(Schema, p2, ["Arch.hidden_size=1"]) == \
        "-o override: unknown key 'Arch.hidden_size' (valid keys: name, num_codes, layers)"
    assert load_err(Schema, p, ["Arch.name=UNIMO3"]) == \
        "-o override: Arch.name: unknown arch 'UNIMO3' (registered: UNIMO, UNIMO2)"
    p3 = write(tmp_path, "r3.yaml", "Arch: {hidden_size: 3}\nDataLoader: {batch_size: 1}\n")
    assert load_err(Schema, p3) == f"{p3}: Arch: missing 'name' (registered archs: UNIMO, UNIMO2)"


def test_registry_api():
    assert ARCH.names() == ["UNIMO", "UNIMO2"] and "UNIMO" in ARCH
    assert ARCH.get("UNIMO") is build_unimo and ARCH.config_class("UNIMO2") is Unimo2Arch
    with pytest.raises(KeyError) as ei:
        ARCH.get("GPT")
    assert isinstance(ei.value, UnknownNameError) and isinstance(ei.value, ConfigError)
    assert str(ei.value) == "unknown arch 'GPT' (registered: UNIMO, UNIMO2)"
    with pytest.raises(ValueError, match="arch 'UNIMO' is already registered"):
        ARCH.register("UNIMO", config=UnimoArch)(build_unimo)
    with pytest.raises(TypeError, match="must be a dataclass with a 'name' field"):
        ARCH.register("X", config=Grounding)


def test_metadata_registry_field_with_fallback():
    opt = Registry("optimizer")

    @dataclass
    class Sgd:
        name: str = "SGD"
        momentum: float = 0.9

    opt.register("SGD", config=Sgd)(lambda cfg: cfg)

    @dataclass
    class S:
        Optimizer: OptimizerCfg = field(default_factory=OptimizerCfg, metadata={"registry": opt})

    assert build(S, {"Optimizer": {"name": "SGD", "momentum": 1}}).Optimizer == Sgd(momentum=1.0)
    assert build(S, {"Optimizer": {"lr": 2}}).Optimizer == OptimizerCfg(lr=2.0)  # no name: annotation
    with pytest.raises(ConfigError) as ei:
        build(S, {"Optimizer": {"name": "Adam"}}, {"Optimizer.name": "x.yaml"})
    assert str(ei.value) == "x.yaml: Optimizer.name: unknown optimizer 'Adam' (registered: SGD)"


def test_post_init_error_is_wrapped(tmp_path):
    p = write(tmp_path, "p.yaml", BASE + "LRScheduler: {warmup_steps: 500}\n")
    assert load_err(Schema, p) == f"{p}: LRScheduler: warmup_steps must not exceed total_steps"
    # the most recent writer of the section is blamed
    msg = load_err(Schema, p, ["LRScheduler.total_steps=10", "LRScheduler.warmup_steps=50"])
    assert msg == "-o override: LRScheduler: warmup_steps must not exceed total_steps"


# ------------------------------------------------------------------- dump
def test_dump_load_round_trip(tmp_path):
    p = write(tmp_path, "d.yaml", BASE + "Optimizer: {lr: 3e-5}\n")
    inst = load_config(Schema, p, ["Global.tags={version: '1e4', flag: 'true'}",
                                   "DataLoader.extra={k: [1, 2]}"])
    out = dump_yaml(inst, str(tmp_path / "out" / "resolved.yaml"))
    assert not (tmp_path / "out" / "resolved.yaml.tmp").exists()
    text = open(out).read()
    assert text.startswith("Arch:\n  name: UNIMO\n")  # field order, block style
    again = load_config(Schema, out)
    assert again == inst
    assert again.Global.tags == {"version": "1e4", "flag": "true"}
    assert to_dict(inst)["Optimizer"]["betas"] == [0.9, 0.999]
    d = dump_yaml({"a": (1, 2)}, tmp_path / "plain.yaml")
    assert load_yaml_with_bases(d)[0] == {"a": [1, 2]}
