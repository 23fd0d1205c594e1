"""JSON Lines reading with errors that name ``file:line``.

One parse rule for every JSONL input of the toolkit (manifests, rewrites,
answer vocabularies, box and image lists): blank lines are skipped, and a
line that is not JSON raises the caller's error class as
``"<file>:<line>: malformed JSON (<reason> at column <c>)"``. What a record
must contain is the caller's check, made with the same ``where``.
"""
import json


def parse_line(text, where, error=ValueError):
    """The JSON value of one line; ``error(f"{where}: malformed JSON ...")`` if it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{where}: malformed JSON ({e.msg} at column {e.colno})") from None


def iter_jsonl(path, error=ValueError):
    """Yield ``(value, "file:line")`` for each non-blank line of ``path``."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            yield parse_line(line, where, error), where
