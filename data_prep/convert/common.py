"""What every converter shares: reporting bad input, atomic validated output,
the totals line.

A converter reads a public format and writes toolkit manifests
(:mod:`vlcore.formats.manifests`). Bad input is reported with where it is
(``file:line`` for line formats, ``file: images[12].sentences[3].raw`` for
JSON), the record's own ids in brackets (what can be searched for in the
file: ``[cocoid 73, sentid 5]``) and a reason; by default the item is skipped
and counted (the first ``MAX_LOGGED`` messages are printed), with
``--strict`` the first one stops the conversion with exit status 1.

Nothing is dropped silently: a bad item is counted under "skipped"; a valid
item that yields no record (an image with 0 regions, a repeated caption) is
counted as a note and never stops ``--strict``.

Outputs are all-or-nothing: every output is written to a temporary file and
all are renamed into place only when the whole conversion succeeded
(:func:`vlcore.formats.sharded.atomic_files`); a full disk is one line
"no space left on device while writing <path>".
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
from collections import Counter

from vlcore.formats.manifests import ManifestError, validate
from vlcore.formats.sharded import atomic_files, output_error

MAX_LOGGED = 20


class ConvertError(ValueError):
    """Input that cannot be converted (message names the file and place)."""


class StrictStop(ConvertError):
    """A bad item in ``--strict`` mode."""


class Report:
    """Counts of skipped items by reason; raises in strict mode."""

    def __init__(self, name: str, strict: bool = False, log=None):
        self.name, self.strict = name, strict
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.skipped: Counter = Counter()
        self.notes: Counter = Counter()  # not errors, but worth a count (e.g. duplicate captions dropped)

    def bad(self, where: str, reason: str, category: str = "bad field") -> None:
        msg = f"{where}: {reason}"
        if self.strict:
            raise StrictStop(msg)
        self.skipped[category] += 1
        n = sum(self.skipped.values())
        if n <= MAX_LOGGED:
            self.log(f"{self.name}: skipped {msg}")
        elif n == MAX_LOGGED + 1:
            self.log(f"{self.name}: more skipped items are counted but not printed")

    def note(self, what: str, n: int = 1) -> None:
        self.notes[what] += n

    def summary(self) -> str:
        total = sum(self.skipped.values())
        parts = [f"skipped {total}" + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(self.skipped.items()))})"
                                       if total else "")]
        parts += [f"{k}: {v}" for k, v in sorted(self.notes.items())]
        return "; ".join(parts)


class ManifestWriter:
    """Writes validated records of one manifest kind to ``path`` atomically.

    A record that fails the spec or repeats an id is reported at the input
    location ``where`` and not written.
    """

    def __init__(self, f, path: str, kind: str, report: Report):
        self.f, self.path, self.kind, self.report = f, path, kind, report
        self.count = 0
        self.units = 0  # captions for pairs; records otherwise
        self.ids: set = set()

    def write(self, record: dict, where: str) -> bool:
        try:
            validate(self.kind, record, where)
        except ManifestError as e:
            self.report.bad(where, str(e)[len(where) + 2:])
            return False
        if record["id"] in self.ids:
            self.report.bad(where, f"id {record['id']!r} repeated", "duplicate id")
            return False
        self.ids.add(record["id"])
        try:
            self.f.write(json.dumps(record, ensure_ascii=False) + "\n")
        except OSError as e:  # a full disk shows up here or at the commit
            raise output_error(e, self.path) from None
        self.count += 1
        self.units += len(record["captions"]) if self.kind == "pairs" else 1
        return True

    def describe(self) -> str:
        extra = f" ({self.units} captions)" if self.kind == "pairs" else ""
        return f"{self.path}: {self.count} {self.kind} records{extra}"


@contextlib.contextmanager
def open_outputs(paths_kinds, report: Report):
    """Open several manifest writers at once; all files appear only if the
    block completes (a failure leaves none of them, nor any temporary file)."""
    with atomic_files([path for path, _ in paths_kinds.values()]) as files:
        yield {key: ManifestWriter(files[path], path, kind, report) for key, (path, kind) in paths_kinds.items()}


class ImageCheck:
    """Optionally require each record's image to exist under ``root``
    (downloaded web corpora such as CC and SBU miss many images)."""

    def __init__(self, root: str | None, prefix: str = ""):
        self.root, self.prefix = root, prefix

    def path(self, rel: str) -> str:
        return self.prefix + rel

    def exists(self, rel: str) -> bool:
        return self.root is None or os.path.isfile(os.path.join(self.root, rel))


def add_common_args(p, out_help="output manifest (JSONL)"):
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--strict", action="store_true", help="stop at the first bad item (exit status 1)")
    p.add_argument("--id-prefix", default="", help="prepended to every record id (keeps ids unique "
                                                     "when manifests of several datasets are mixed)")


def add_image_args(p):
    p.add_argument("--image-prefix", default="", help="prepended to every image path, e.g. 'coco/' or an "
                                                      "absolute image root")
    p.add_argument("--check-images", metavar="ROOT", default=None,
                   help="skip (and count) records whose image is not a file under ROOT")


def tag(where: str, **ids) -> str:
    """``where`` followed by the record's own ids, e.g.
    ``"f.json: images[3] [cocoid 73]"``; ids that are None are left out."""
    shown = ", ".join(f"{k} {v}" for k, v in ids.items() if v is not None)
    return f"{where} [{shown}]" if shown else where


def is_int(v) -> bool:
    """An integer JSON value (``true``/``false`` are not)."""
    return isinstance(v, int) and not isinstance(v, bool)


def type_name(v) -> str:
    """What a JSON value is, for messages: ``a string ('600')``."""
    kinds = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "a list",
             dict: "an object", type(None): "null"}
    text = repr(v) if not isinstance(v, (list, dict)) else ""
    return kinds.get(type(v), type(v).__name__) + (f" ({text[:40]})" if text else "")


def json_path(*parts) -> str:
    """``images[3].sentences[0].raw`` from ``("images", 3, "sentences", 0, "raw")``."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def load_json(path: str):
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ConvertError(f"{path}:{e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise ConvertError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None


def clean_text(s) -> str | None:
    """A caption / sentence as a single line: whitespace runs (incl. newlines)
    collapsed; None if not a string or empty."""
    if not isinstance(s, str):
        return None
    s = " ".join(s.split())
    return s or None


def add_unique_text(texts: list, raw, report: Report, where: str, kind: str) -> None:
    """Append ``clean_text(raw)`` to ``texts``: a missing or empty one is
    reported at ``where`` (counted as ``bad <kind>``), a repeat of one
    already there is dropped and counted."""
    text = clean_text(raw)
    if raw is not None and not isinstance(raw, str):
        report.bad(where, f"the {kind} must be a string, got {type_name(raw)}", f"bad {kind}")
    elif text is None:
        report.bad(where, f"missing or empty {kind}", f"bad {kind}")
    elif text in texts:
        report.note(f"repeated {kind}s dropped")
    else:
        texts.append(text)


def read_lines(path: str, report: Report):
    """Yield ``(line_number, text)`` of a UTF-8 text file; lines that are not
    UTF-8 are reported and skipped (one bad byte must not lose a corpus)."""
    for lineno, text in _numbered_lines(path, report):
        if text is not None:
            yield lineno, text


def read_parallel(path_a: str, path_b: str, report: Report):
    """Yield ``(line_number, text_a, text_b)`` of two line-parallel files.

    A line that is not UTF-8 (in either file) is reported and its pair
    skipped, so the files stay aligned. Files of different lengths are
    refused naming both files and both line counts."""
    a, b = _numbered_lines(path_a, report), _numbered_lines(path_b, report)
    for la, lb in itertools.zip_longest(a, b):
        if la is None or lb is None:
            na = la[0] + sum(1 for _ in a) if la else lb[0] - 1
            nb = lb[0] + sum(1 for _ in b) if lb else la[0] - 1
            raise ConvertError(f"{path_a} has {na} lines but {path_b} has {nb}: the files must be line-parallel")
        if la[1] is not None and lb[1] is not None:
            yield la[0], la[1], lb[1]


def _numbered_lines(path: str, report: Report):
    """``(line_number, text)`` of every line; ``text`` is None for a line
    that is not UTF-8 (reported)."""
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: no such file")
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                report.bad(f"{path}:{lineno}", f"not UTF-8 ({e.reason} at column {e.start + 1})", "not UTF-8")
                yield lineno, None
                continue
            if lineno == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield lineno, text.rstrip("\r\n")
