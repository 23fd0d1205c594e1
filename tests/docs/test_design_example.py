"""docs/design.md's "A new kind of task" example runs as written: it
registers its task, and its data side turns records into a batch and a bad
record into a RecordError naming the place."""
import os
import re
from types import SimpleNamespace

import numpy as np
import pytest

from vlcore.formats.records import RecordError
from vlcore.framework.registry import TASK
from vlcore.text.tokenizer import train_bpe

from helpers import ROOT


def _example():
    text = open(os.path.join(ROOT, "docs", "design.md"), encoding="utf-8").read()
    section = text[text.index("### A new kind of task"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_new_task_example_registers_and_batches(tmp_path):
    namespace = {"__name__": "design_example"}
    if "UNIMO2MyTask" not in TASK:
        exec(compile(_example(), "docs/design.md", "exec"), namespace)
    assert "UNIMO2MyTask" in TASK.names()
    tok = train_bpe(["a red circle above a blue square"] * 20 + ["two green triangles"] * 20, 300, str(tmp_path))
    ctx = SimpleNamespace(tokenizer=tok)
    task = TASK.build(TASK.config_class("UNIMO2MyTask")(max_text_len=8), ctx=ctx)
    rng = np.random.default_rng(0)
    samples = [task.load({"text_a": "a red circle above a blue square", "label": "1.5"}, "m.jsonl:1", rng),
               task.load({"text_a": "two green triangles", "label": 0}, "m.jsonl:2", rng)]
    batch = task.collate(samples, None, 0)
    assert batch["ids"].shape[0] == 2 and batch["ids"].shape[1] <= 8
    assert batch["mask"].sum(1).tolist() == [len(s["ids"]) for s in samples]
    np.testing.assert_array_equal(batch["targets"], [1.5, 0.0])
    with pytest.raises(RecordError, match="m.jsonl:3: 'label' must be a number"):
        task.load({"text_a": "x", "label": "many"}, "m.jsonl:3", rng)
