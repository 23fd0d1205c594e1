"""docs/config_reference.md is what tools/config_reference.py generates from
the schema: a key added, removed or re-commented in a config dataclass must
be followed by `python tools/config_reference.py`."""
import dataclasses
from typing import List, Literal

import config_reference


def test_committed_page_is_current():
    assert config_reference.main(["--check"]) == 0


def test_every_registered_name_has_its_anchor():
    text = config_reference.render()
    for section, table in config_reference.TABLES:
        assert f"\n## {section}\n" in text
        names = config_reference._toolkit_names(table)
        assert len(names) >= 2
        for name in names:
            assert f'<a id="{config_reference._slug(section + "-" + name)}"></a>' in text


def test_entries_registered_outside_the_toolkit_are_left_out():
    """Tests register toy entries in the same tables; the page stays the same."""
    before = config_reference.render()
    from vlcore.framework.registry import TASK

    @dataclasses.dataclass
    class _ToyTaskConfig:
        name: str = "ReferenceToyTask"

    if "ReferenceToyTask" not in TASK:
        TASK.register("ReferenceToyTask", config=_ToyTaskConfig)(lambda cfg, ctx: None)
    assert "ReferenceToyTask" in TASK.names()
    assert config_reference.render() == before and "ReferenceToyTask" not in before


@dataclasses.dataclass
class _Inner:
    """Inner section."""
    depth: int = 2


@dataclasses.dataclass
class _Example:
    # a class note, detached from the field below by a blank line

    # above the field,
    # on two lines
    alpha: float = 0.5             # and after it
    mode: Literal["a", "b"] = "a"
    inner: _Inner = dataclasses.field(default_factory=_Inner)
    items: List[_Inner] = dataclasses.field(default_factory=list)
    batch_size: int = 4


def test_rows_read_types_defaults_and_comments():
    rows = {key: (tp, default, note) for key, tp, default, note in config_reference.rows(_Example)}
    assert rows["alpha"] == ("float", "0.5", "above the field, on two lines; and after it")
    assert rows["mode"] == ('"a" | "b"', '"a"', "")
    assert rows["inner"] == ("section", "", "Inner section.")
    assert rows["inner.depth"] == ("int", "2", "")
    assert rows["items"] == ("list of sections", "[]", "Inner section.")
    assert rows["items[].depth"] == ("int", "2", "")
    assert rows["batch_size"] == ("int", "4", "(>= 1)")  # the validator's check by name


def test_check_fails_on_a_stale_page_and_regenerating_fixes_it(tmp_path, monkeypatch, capsys):
    page = tmp_path / "config_reference.md"
    page.write_text("hand-edited\n")
    monkeypatch.setattr(config_reference, "PAGE", str(page))
    assert config_reference.main(["--check"]) == 1
    assert "stale" in capsys.readouterr().err
    assert config_reference.main([]) == 0
    assert config_reference.main(["--check"]) == 0
