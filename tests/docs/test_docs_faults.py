"""docs/faults.md stays true: every test it names for a fault exists."""
import os
import re

from helpers import ROOT

REF = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def test_every_test_the_fault_table_names_exists():
    with open(os.path.join(ROOT, "docs", "faults.md"), encoding="utf-8") as f:
        text = f.read()
    refs = REF.findall(text)
    assert len(refs) > 60  # the table is there
    missing = []
    for path, name in set(refs):
        full = os.path.join(ROOT, path)
        source = open(full, encoding="utf-8").read() if os.path.isfile(full) else ""
        if not re.search(rf"^def {name}\(", source, re.M):
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/faults.md names tests that do not exist: {sorted(missing)}"
