"""The one registry kind (vlcore.framework.registry) and what the model
packages register in it when imported."""
import ast
import os
from dataclasses import dataclass

import pytest

import unimo  # noqa: F401  (registers UNIMO and Unicoder-VL)
import unimo2  # noqa: F401  (registers UNIMO-2)
from vlcore.framework.config import UnknownNameError
from vlcore.framework.registry import ARCH, EVALUATOR, INFER_COMMAND, INIT_SOURCE, LOSS, TASK, TRAIN_DATA, Registry

from helpers import ROOT


@dataclass
class _Cfg:
    name: str = "a"
    size: int = 1


def test_hooks_are_registration_arguments():
    reg = Registry("Thing", hooks=("prepare",))

    def prepare(cfg, ctx):
        return "prepared"

    @reg.register("a", config=_Cfg, prepare=prepare)
    def build(cfg):
        return cfg.size * 2

    assert reg.build(_Cfg(size=3)) == 6
    assert reg.hook("a", "prepare") is prepare
    assert reg.config_class("a") is _Cfg
    with pytest.raises(TypeError, match="unknown hook"):
        reg.register("b", config=_Cfg, resolve=prepare)
    with pytest.raises(KeyError, match="no hook"):
        reg.hook("a", "resolve")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", config=_Cfg)(build)
    with pytest.raises(UnknownNameError, match="unknown Thing 'c' .registered: a."):
        reg.get("c")


def test_a_hook_not_given_is_none_and_config_only_kinds_register_at_once():
    reg = Registry("Thing", hooks=("prepare",))
    reg.register("a", config=_Cfg)(lambda cfg: cfg)
    assert reg.hook("a", "prepare") is None
    losses = Registry("Loss", builds=False)
    assert losses.register("a", config=_Cfg) is None
    assert losses.names() == ["a"] and losses.config_class("a") is _Cfg
    with pytest.raises(TypeError, match="dataclass with a 'name' field"):
        Registry("Arch").register("x", config=dict)


def test_the_families_register_everything_chosen_by_name():
    assert {"UNIMO", "UNIMOForRetrieval", "UNIMOForClassification", "UNIMOForCaptioning", "UNIMOForSeq2Seq",
            "UNIMO2", "UNIMO2ForRetrieval", "UNIMO2ForClassification", "UNIMO2ForCaptioning"} <= set(ARCH.names())
    assert {"UNIMOPretrain", "UNIMO2Pretrain", "RetrievalFinetune", "Seq2SeqFinetune"} <= set(LOSS.names())
    assert {"UNIMOCorpora", "UNIMO2Corpora", "Finetune"} <= set(TRAIN_DATA.names())
    assert {"UNIMORetrieval", "ZeroShotRetrieval", "ZeroShotClassification", "Classification"} <= set(EVALUATOR.names())
    assert {"UNIMORetrieval", "UNIMO2Retrieval", "UNIMOCaption", "UNIMO2Caption"} <= set(TASK.names())
    assert {("vit-paddleclas", "UNIMO2"), ("unimo-official", "UNIMO")} <= set(INIT_SOURCE.names())
    assert {("rank", "UNIMO2"), ("caption", "UNIMOForCaptioning")} <= set(INFER_COMMAND.names())
    # the hooks the training run reads before building
    assert ARCH.hook("UNIMO2", "resolve") is not None and ARCH.hook("UNIMO", "resolve") is not None
    assert TRAIN_DATA.hook("UNIMO2Corpora", "prepare") is not None
    assert TRAIN_DATA.hook("Finetune", "prepare") is not None


def test_no_hook_is_set_as_a_function_attribute():
    """``build.prepare = ...`` would be invisible to the registry."""
    found, scanned = [], 0
    for pkg in ("vlcore", "unimo", "unimo2"):
        for d, _, files in os.walk(os.path.join(ROOT, pkg)):
            for f in files:
                if not f.endswith(".py"):
                    continue
                path = os.path.join(d, f)
                scanned += 1
                for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
                    if isinstance(node, ast.Assign):
                        for t in node.targets:
                            if isinstance(t, ast.Attribute) and t.attr in ("prepare", "resolve") \
                                    and isinstance(t.value, ast.Name):
                                found.append(f"{os.path.relpath(path, ROOT)}:{node.lineno}")
    assert scanned > 50 and not found, (scanned, found)
