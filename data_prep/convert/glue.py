"""GLUE task TSVs -> text_cls manifest.

Input: the TSV files of the GLUE release as laid out by
``download_glue_data.py`` (nyu-mll/GLUE-baselines, last version commit
b1c82396, 2020-12-10), tab-separated, no quoting (MNLI and QQP sentences
contain bare quotes). The columns of each task, by header name; the
column positions agree with that repository's readers (``src/tasks.py``,
``load_tsv(..., s1_idx, s2_idx, targ_idx, skip_rows)``)::

    CoLA   train/dev: NO header: source, label, original label, sentence
           test: index, sentence
    SST-2  train/dev: sentence, label            test: index, sentence
    MRPC   train/dev: Quality, #1 ID, #2 ID, #1 String, #2 String   (the header of Microsoft's
           msr_paraphrase_train.txt, copied as is)
           test: index, #1 ID, #2 ID, #1 String, #2 String   (written by the script)
    STS-B  index, genre, filename, year, old_index, source1, source2, sentence1, sentence2, score
           (test: no score)
    QQP    id, qid1, qid2, question1, question2, is_duplicate     test: id, question1, question2
    MNLI   index, promptID, pairID, genre, sentence1_binary_parse, sentence2_binary_parse,
           sentence1_parse, sentence2_parse, sentence1, sentence2, label1, [label2..label5,] gold_label
           (train: label1 + gold_label; dev_matched / dev_mismatched: label1..label5 + gold_label;
            test_matched / test_mismatched: no labels)
    QNLI   index, question, sentence, label   (QNLIv2.zip)
    RTE, WNLI   index, sentence1, sentence2, label
    AX     index, sentence1, sentence2   (saved as diagnostic/diagnostic.tsv)

Quirks of that script: its final version no longer writes MRPC's
train.tsv / dev.tsv (the dev-id download is gone; only test.tsv is made
from msr_paraphrase_test.txt), and its URL table swaps QQP and STS-B
(harmless: each zip unpacks into its own folder). A UTF-8 byte order mark
on the first line is ignored.

Other TSVs convert with ``--task generic`` and ``--text-a/--text-b/--label/
--id`` naming header columns (or 0-based column numbers with
``--no-header``). Output records::

    {"id": "12", "text_a": "...", "text_b": "...", "label": "entailment"}

``label`` is the class name as written in the file (a string: "0"/"1" for
binary tasks) or a float for STS-B; it is absent when the file has no label
column (test sets). ``id`` is the file's own id column if it has one, else
``<file stem>-<line>``. Messages name ``file:line`` and the row's own id
(``[pairID 63735n]``); a row with the wrong number of fields, an empty text
or label is reported and skipped; blank lines are counted.
"""
from __future__ import annotations

import math
import os

from .common import ConvertError, Report, add_common_args, open_outputs, read_lines, tag

# task -> (id, text_a, text_b, label, header?); names are header columns, ints column numbers.
PRESETS = {
    "cola": ("index", "sentence", None, None, True),  # test file; train/dev are headerless (below)
    "sst2": ("index", "sentence", None, "label", True),
    "mrpc": ("index", "#1 String", "#2 String", "Quality", True),
    "stsb": ("index", "sentence1", "sentence2", "score", True),
    "qqp": ("id", "question1", "question2", "is_duplicate", True),
    "mnli": ("pairID", "sentence1", "sentence2", "gold_label", True),
    "qnli": ("index", "question", "sentence", "label", True),
    "rte": ("index", "sentence1", "sentence2", "label", True),
    "wnli": ("index", "sentence1", "sentence2", "label", True),
    "ax": ("index", "sentence1", "sentence2", None, True),
}
COLA_NO_HEADER = (None, 3, None, 1, False)
REGRESSION = {"stsb"}


def add_args(p):
    p.add_argument("--src", required=True, help="a GLUE TSV (train.tsv, dev.tsv, dev_matched.tsv, test.tsv, ...)")
    p.add_argument("--task", required=True, choices=sorted(PRESETS) + ["generic"])
    add_common_args(p)
    p.add_argument("--text-a", help="column of the first text (header name, or number with --no-header)")
    p.add_argument("--text-b", help="column of the second text")
    p.add_argument("--label", help="column of the label")
    p.add_argument("--id", help="column of the id")
    p.add_argument("--no-header", action="store_true", help="the file has no header line")
    p.add_argument("--regression", action="store_true", help="labels are numbers (generic tasks)")


def _layout(args, first_fields):
    """``(id, a, b, label, header)`` for this file; CoLA's train/dev files
    have no header, recognised by a first line that is not the test header."""
    if args.task == "generic":
        if not args.text_a:
            raise ConvertError("--task generic needs --text-a")
        cols = [args.id, args.text_a, args.text_b, args.label]
        if args.no_header:
            try:
                cols = [int(c) if c is not None else None for c in cols]
            except ValueError:
                raise ConvertError("with --no-header, --text-a/--text-b/--label/--id are 0-based column "
                                   "numbers") from None
        return (*cols, not args.no_header)
    if args.task == "cola" and first_fields[:2] != ["index", "sentence"]:
        return COLA_NO_HEADER
    return PRESETS[args.task]


def convert(args, report: Report):
    lines = read_lines(args.src, report)
    first = next(lines, None)
    if first is None:
        raise ConvertError(f"{args.src}: empty file")
    lineno, text = first
    id_col, a_col, b_col, label_col, header = _layout(args, text.split("\t"))
    regression = args.regression or args.task in REGRESSION
    stem = os.path.splitext(os.path.basename(args.src))[0]
    if header:
        names = text.split("\t")
        index = {n: i for i, n in enumerate(names)}
        missing = [c for c in (a_col, b_col) if c is not None and c not in index]
        if missing:
            raise ConvertError(f"{args.src}:{lineno}: header {names} has no column(s) {missing} "
                               f"(is this a {args.task} file?)")
        # Optional columns: test files have no label; some files have no id.
        id_i, a_i = index.get(id_col), index[a_col]
        b_i = index[b_col] if b_col is not None else None
        label_i = index.get(label_col) if label_col is not None else None
        width = len(names)
        rows = lines
    else:
        id_i, a_i, b_i, label_i = id_col, a_col, b_col, label_col
        width = max(c for c in (id_i, a_i, b_i, label_i) if c is not None) + 1

        def rows_from_first():
            yield first
            yield from lines
        rows = rows_from_first()
    with open_outputs({"out": (args.out, "text_cls")}, report) as out:
        for lineno, text in rows:
            where = f"{args.src}:{lineno}"
            if not text.strip():
                report.note("blank lines")
                continue
            fields = text.split("\t")
            bad_width = len(fields) != width if header else len(fields) < width
            if bad_width:
                report.bad(where, f"{len(fields)} tab-separated fields, expected {width}", "wrong field count")
                continue
            own_id = fields[id_i].strip() if id_i is not None else None
            if own_id is not None:
                where = tag(where, **{str(names[id_i] if header else "id"): own_id})
            rec = {"id": f"{args.id_prefix}{own_id if own_id is not None else f'{stem}-{lineno}'}",
                   "text_a": fields[a_i].strip()}
            if b_i is not None:
                rec["text_b"] = fields[b_i].strip()
            if label_i is not None:
                label = fields[label_i].strip()
                if regression:
                    try:
                        label = float(label)
                    except ValueError:
                        label = math.nan  # reported by the validator, naming the key
                rec["label"] = label
            out["out"].write(rec, where)
    return list(out.values())
