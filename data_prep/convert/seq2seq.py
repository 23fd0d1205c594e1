"""Line-parallel source/target text files -> seq2seq manifest.

Input: the usual layout of text generation data sets, one example per line
in two line-parallel files, e.g. CNN/DailyMail ``train.source`` /
``train.target`` (UniLM / fairseq preprocessing, sentences of a summary
separated by `` <q> `` or spaces), Gigaword ``train.src.txt`` /
``train.tgt.txt``, SQuAD question generation ``src`` (paragraph [SEP]
answer) / ``tgt`` (question). ``--target`` is optional (test sources).

Output records ``{"id": "<prefix><line>", "source": "...", "target": "..."}``
with whitespace collapsed; ``--replace OLD NEW`` (repeatable) rewrites
markers such as `` <q> `` in targets.
"""
from __future__ import annotations

import itertools

from .common import ConvertError, Report, add_common_args, clean_text, open_outputs, read_lines


def add_args(p):
    p.add_argument("--src", required=True, help="source file, one example per line")
    p.add_argument("--target", help="target file, line-parallel to --src")
    add_common_args(p)
    p.add_argument("--replace", nargs=2, action="append", default=[], metavar=("OLD", "NEW"),
                   help="replace OLD by NEW in targets (e.g. '<q>' ' ')")


def convert(args, report: Report):
    src = read_lines(args.src, report)
    tgt = read_lines(args.target, report) if args.target else itertools.repeat(None)
    with open_outputs({"out": (args.out, "seq2seq")}, report) as out:
        for s, t in (itertools.zip_longest(src, tgt) if args.target else zip(src, tgt)):
            if s is None or t is None:
                raise ConvertError(f"{args.src} and {args.target} have different numbers of lines "
                                   f"(first unmatched: {args.src if s else args.target}:{(s or t)[0]})")
            lineno, source = s
            where = f"{args.src}:{lineno}"
            if t is not None and t[0] != lineno:
                raise ConvertError(f"{where} and {args.target}:{t[0]}: the files are no longer line-parallel "
                                   "(a bad line in one of them)")
            rec = {"id": f"{args.id_prefix}{lineno}", "source": clean_text(source) or ""}
            if t is not None:
                target = t[1]
                for old, new in args.replace:
                    target = target.replace(old, new)
                target = clean_text(target)
                if target is None:
                    report.bad(f"{args.target}:{lineno}", "empty target", "empty target")
                    continue
                rec["target"] = target
            out["out"].write(rec, where)
    return list(out.values())
