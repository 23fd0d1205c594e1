"""``python -m data_prep.convert <format> --src ... --out ...``

Bad items are reported with file and line (or JSON path) and the record's
own id, and skipped; the totals are printed at the end (skipped items by
reason, and notes: valid items that yield no record). Exit status: 0 done, 1 stopped by
``--strict`` at a bad item, 2 input that cannot be converted at all.
"""
from __future__ import annotations

import argparse
import sys
import time

from . import glue, image_folder, karpathy, seq2seq, snli_ve, text_corpus, visual_genome, vqa, web_captions
from .common import ConvertError, Report, StrictStop

# format -> (module, help, extra add_args kwargs)
FORMATS = {
    "coco": (karpathy, "COCO captions, Karpathy split JSON (dataset_coco.json) -> <out>/<split>.jsonl", {}),
    "flickr30k": (karpathy, "Flickr30k, Karpathy split JSON (dataset_flickr30k.json) -> <out>/<split>.jsonl", {}),
    "flickr8k": (karpathy, "Flickr8k, Karpathy split JSON (dataset_flickr8k.json) -> <out>/<split>.jsonl", {}),
    "vg": (visual_genome, "Visual Genome region_descriptions.json + image_data.json -> pairs", {}),
    "cc": (web_captions, "Conceptual Captions TSV (caption<TAB>url; CC12M: url<TAB>caption) -> pairs", {}),
    "sbu": (web_captions, "SBU captions (urls + captions files, sbu-captions-all.json, or a TSV) -> pairs",
            {"sbu": True}),
    "vqa": (vqa, "VQA v1 / v2 questions (+ annotations) JSON -> vqa", {}),
    "snli_ve": (snli_ve, "SNLI-VE jsonl -> snli_ve", {}),
    "glue": (glue, "a GLUE task TSV -> text_cls", {}),
    "image_folder": (image_folder, "ImageNet-style class folders -> labelled", {}),
    "text": (text_corpus, "plain text corpora -> one sample per line", {}),
    "seq2seq": (seq2seq, "line-parallel source/target files -> seq2seq", {}),
}


def build_parser():
    ap = argparse.ArgumentParser(prog="python -m data_prep.convert",
                                 description="Convert public datasets to the toolkit's manifests.")
    sub = ap.add_subparsers(dest="format", required=True, metavar="format")
    for name, (module, help_, kwargs) in FORMATS.items():
        p = sub.add_parser(name, help=help_, description=(module.__doc__ or "").split("\n\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog=module.__doc__)
        module.add_args(p, **kwargs)
    return ap


def main(argv=None, log=None) -> int:
    log = log or (lambda msg: print(msg, file=sys.stderr))
    args = build_parser().parse_args(argv)
    module = FORMATS[args.format][0]
    report = Report(args.format, strict=args.strict, log=log)
    t0 = time.time()
    try:
        outputs = module.convert(args, report)
    except StrictStop as e:
        log(f"error (--strict): {e}")
        return 1
    except (ConvertError, OSError) as e:
        log(f"error: {e}")
        return 2
    for w in outputs:
        print(f"{args.format}: wrote {w.describe()}")
    print(f"{args.format}: {report.summary()}; {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
