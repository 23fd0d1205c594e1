"""Plain text corpora -> the toolkit's text corpus format (UTF-8, one sample
per line, see docs/data_formats.md).

Input: text files, or directories searched recursively for ``*.txt``
(sorted), in one of two layouts:

- ``--mode lines``: one sentence (sample) per line, e.g. the sentence-split
  corpora of the paper's text data; blank lines are ignored.
- ``--mode blocks``: documents separated by blank lines (BookCorpus /
  Wikipedia dumps after extraction); each document becomes one line, its
  lines joined by a space.

Whitespace runs (including Unicode line separators, which would otherwise
split a sample) are collapsed to one space; samples shorter than
``--min-chars`` are dropped (counted); a line that is not UTF-8 is reported
with file and line and skipped.
"""
from __future__ import annotations

import glob
import os

from vlcore.formats.sharded import atomic_files, output_error

from .common import ConvertError, Report, clean_text, read_lines


def add_args(p):
    p.add_argument("--src", required=True, nargs="+", help="text files or directories of *.txt")
    p.add_argument("--out", required=True, help="output text file, one sample per line")
    p.add_argument("--mode", choices=("lines", "blocks"), default="lines")
    p.add_argument("--min-chars", type=int, default=1, help="drop shorter samples")
    p.add_argument("--strict", action="store_true", help="stop at the first bad line (exit status 1)")


def input_files(sources):
    files = []
    for src in sources:
        if os.path.isdir(src):
            found = sorted(glob.glob(os.path.join(glob.escape(src), "**", "*.txt"), recursive=True))
            if not found:
                raise ConvertError(f"{src}: directory holds no *.txt files")
            files += found
        elif os.path.isfile(src):
            files.append(src)
        else:
            raise ConvertError(f"{src}: no such file or directory")
    return files


def samples(path, mode, report):
    """Yield the samples of one file (a sentence or a whole document)."""
    block = []
    for _, text in read_lines(path, report):
        line = clean_text(text)
        if mode == "lines":
            if line:
                yield line
        elif line:
            block.append(line)
        elif block:
            yield " ".join(block)
            block = []
    if block:
        yield " ".join(block)


class _Count:
    def __init__(self, path):
        self.path, self.count, self.chars = path, 0, 0

    def describe(self):
        return f"{self.path}: {self.count} text samples ({self.chars} characters)"


def convert(args, report: Report):
    files = input_files(args.src)
    stats = _Count(args.out)
    with atomic_files([args.out]) as outputs:
        f = outputs[args.out]
        for path in files:
            for sample in samples(path, args.mode, report):
                if len(sample) < args.min_chars:
                    report.note("short samples dropped")
                    continue
                try:
                    f.write(sample + "\n")
                except OSError as e:  # a full disk: one line naming the output
                    raise output_error(e, args.out) from None
                stats.count += 1
                stats.chars += len(sample)
    report.note("input files", len(files))
    return [stats]
