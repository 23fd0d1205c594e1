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

Bad input: an empty source or target line is reported with its file and
line and the pair skipped; a line that is not UTF-8 is reported and its pair
skipped (the files stay aligned); files of different lengths are refused
naming both files and both line counts (exit status 2).
"""
from __future__ import annotations

from .common import Report, add_common_args, clean_text, open_outputs, read_lines, read_parallel


def add_args(p):
    p.add_argument("--src", required=True, help="source file, one example per line")
    p.add_argument("--target", help="target file, line-parallel to --src")
    add_common_args(p)
    p.add_argument("--replace", nargs=2, action="append", default=[], metavar=("OLD", "NEW"),
                   help="replace OLD by NEW in targets (e.g. '<q>' ' ')")


def convert(args, report: Report):
    if args.target:
        pairs = read_parallel(args.src, args.target, report)
    else:
        pairs = ((lineno, text, None) for lineno, text in read_lines(args.src, report))
    with open_outputs({"out": (args.out, "seq2seq")}, report) as out:
        for lineno, source, target in pairs:
            where = f"{args.src}:{lineno}"
            source = clean_text(source)
            if source is None:
                report.bad(where, "empty source", "empty source")
                continue
            rec = {"id": f"{args.id_prefix}{lineno}", "source": source}
            if target is not None:
                for old, new in args.replace:
                    target = target.replace(old, new)
                target = clean_text(target)
                if target is None:
                    report.bad(f"{args.target}:{lineno}", "empty target", "empty target")
                    continue
                rec["target"] = target
            out["out"].write(rec, where)
    return list(out.values())
