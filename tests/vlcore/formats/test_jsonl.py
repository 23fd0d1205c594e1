"""The shared JSONL reader: blank lines skipped, 'file:line' in every error,
the caller's error class raised."""
import pytest

from vlcore.formats.jsonl import iter_jsonl, parse_line


class MyError(ValueError):
    pass


def test_iter_jsonl_values_positions_and_errors(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n  \n"s"\n[1, 2]\n{"b": }\n', encoding="utf-8")
    it = iter_jsonl(str(path), MyError)
    assert [next(it) for _ in range(3)] == [({"a": 1}, f"{path}:1"), ("s", f"{path}:4"), ([1, 2], f"{path}:5")]
    with pytest.raises(MyError, match=rf"^{path}:6: malformed JSON \(Expecting value at column 7\)"):
        next(it)


def test_parse_line_default_error():
    assert parse_line('{"k": [1]}', "f:3") == {"k": [1]}
    with pytest.raises(ValueError, match=r"^f:3: malformed JSON"):
        parse_line("{", "f:3")
