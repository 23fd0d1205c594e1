#!/usr/bin/env python
"""The grounded dictionary of a UNIMO-2 checkpoint, as the paper's
Appendix A / Figure 3 shows it, plus its usage statistics:

    python tools/visualize_grounding.py -c configs/unimo2_demo.yaml -o Global.checkpoint=output/unimo2_demo

Every image patch and text token of a set of images and texts (default: the
held-out split of ``DataLoader.Eval.path``, its images and captions) is
mapped to its nearest dictionary entry (Eq. 1); for the entries most used,
a row of their best patches (cropped from the images as the model saw them)
and their best words. Writes ``grounding.png`` and ``grounding.json`` (the
same rows, and the statistics: how many entries are ever in an input's
top-K, their entropy, the share of the K most frequent entries, the
entries both modalities use) into ``--out`` (default
``<Global.output_dir>/grounding``); see :mod:`unimo2.grounding_report`.

With ``--labels MANIFEST`` (a labelled manifest: ``id``, ``image``,
``label``), also whether the dictionary links a word and its look: for each
label, the share of the prompt's top-K grounded tokens ("a {label}") that the
images of that label have, against the other labels' prompts and against
chance (K / C), in ``grounding.json`` under ``overlap``. ``--label-field``
reads the label from another field (a dotted path, e.g. ``scene.0.shape``);
``--group NAME=A,B`` averages the labels of a group, e.g.::

    python tools/visualize_grounding.py -c configs/unimo2_ablation_rare.yaml \
        -o Global.checkpoint=output/ablation_rare/unimo2_full_seed0 \
        --labels data/ablation_rare/images_train.jsonl --label-field scene.0.shape \
        --group held_out=hexagon,star --group seen=circle,square,triangle,cross,ring,diamond
"""
import json
import os

from vlcore.framework import cli as _cli

_cli.setup_process()  # before Paddle is imported
import unimo  # noqa: E402,F401  (registers UNIMO and Unicoder-VL)
import unimo2  # noqa: E402,F401  (registers UNIMO-2)


def _extra(p):
    p.add_argument("--manifest", default="", help="pairs manifest of the images and texts "
                                                  "(default: DataLoader.Eval.path)")
    p.add_argument("--max-images", type=int, default=100, help="images read from the manifest (0: all)")
    p.add_argument("--entries", type=int, default=12, help="dictionary entries drawn (rows)")
    p.add_argument("--per-entry", type=int, default=6, help="patches and words per entry")
    p.add_argument("--out", default="", help="output directory (default: <Global.output_dir>/grounding)")
    p.add_argument("--labels", default="", help="labelled manifest: the word-look overlap per label (see above)")
    p.add_argument("--label-field", default="label", help="field of --labels holding the label (dotted path)")
    p.add_argument("--prompt", default="a {label}", help="the text naming a label")
    p.add_argument("--group", action="append", default=[], metavar="NAME=A,B",
                   help="labels averaged together in the overlap (repeatable)")


def main():
    args = _cli.parse_args("Draw the grounded dictionary of a UNIMO-2 checkpoint (UNIMO-2 Figure 3) and its "
                           "usage statistics.", _extra)

    def go():
        cfg = _cli.load(args)
        from unimo2 import grounding_report as gr
        from unimo2.retrieval import UNIMO2Encoder
        from vlcore.data.retrieval import PairsIndex
        from vlcore.formats.sharded import atomic_open
        from vlcore.tasks import infer
        from vlcore.viz.grids import crop_rows
        if not cfg.Arch.name.startswith("UNIMO2"):
            raise ValueError(f"Arch {cfg.Arch.name}: the grounded dictionary is UNIMO-2's")
        if cfg.Arch.grounding.mode != "topk":
            raise ValueError(f"Arch.grounding.mode: {cfg.Arch.grounding.mode}: the model has no top-K grounded "
                             f"dictionary to draw (e.g. Our Baseline)")
        manifest = args.manifest or (cfg.DataLoader.Eval.path if cfg.DataLoader.Eval is not None else "")
        if not manifest:
            raise ValueError("no images and texts: give --manifest (a pairs manifest) or a config with "
                             "DataLoader.Eval.path")
        image_root = "" if args.manifest else getattr(cfg.DataLoader.Eval, "image_root", "")
        index = PairsIndex(manifest, image_root)
        n = min(args.max_images, len(index)) if args.max_images else len(index)
        paths = index.images[:n]
        texts = [c for caps in index.captions[:n] for c in caps]
        model, ctx, source = infer.load_model(cfg)
        enc = UNIMO2Encoder(ctx, 32)
        analysis = gr.analyse(model, enc, paths, texts)
        stats = gr.usage(analysis)
        rows = gr.entries(analysis, paths, args.entries, args.per_entry)
        out = args.out or os.path.join(cfg.Global.output_dir, "grounding")
        os.makedirs(out, exist_ok=True)
        crops = [[gr.patch_crop(enc, p["image"], p["row"], p["col"], analysis.grid) for p in r["top_patches"]]
                 for r in rows]
        figure_rows = [(f"entry {r['entry']}\n{r['patches']} patches, {r['tokens']} tokens", c,
                        [f"{w['word']} ({w['count']})" for w in r["top_words"]]) for r, c in zip(rows, crops)]
        title = (f"grounded dictionary of {source}: {len(paths)} images, {len(texts)} texts; "
                 f"{stats['entries_in_some_top_k']} of {stats['dict_size']} entries in some top-{stats['top_k']}")
        png = crop_rows(figure_rows, os.path.join(out, "grounding.png"), title, per_row=args.per_entry)
        report = {"checkpoint": source, "manifest": manifest, "usage": stats, "entries": rows}
        if args.labels:
            report["overlap"] = _overlap(gr, model, enc, args)
        with atomic_open(os.path.join(out, "grounding.json")) as f:
            json.dump(report, f, indent=1)
        k = stats["top_k"]
        for name in ("images", "texts"):
            t = stats[f"top_k_of_{name}"]
            print(f"{name}: {t['distinct']} entries ever in a top-{k}, entropy {t['entropy_bits']} bits "
                  f"(max {t['max_entropy_bits']}); the {k} most frequent hold {t[f'share_of_top_{k}']:.0%} "
                  "of the places")
        print(f"entries in the top-K of both images and texts: {stats['entries_in_top_k_of_both']}; "
              f"nearest entry of some patch and some word: {stats['nearest_of_both']}")
        if args.labels:
            o = report["overlap"]
            for name, g in [("all labels", o["all"])] + list(o["groups"].items()):
                print(f"{name}: a prompt's grounded tokens in its own images' top-{o['top_k']}: {g['matched']:.1%}, "
                      f"in other labels' images': {g['mismatched']:.1%} (chance {o['chance']:.1%})")
        print(f"wrote {png} and {os.path.join(out, 'grounding.json')}")
    _cli.run(go)


def _overlap(gr, model, enc, args):
    """The word-look overlap of ``--labels`` (unimo2.grounding_report.label_overlap)."""
    from vlcore.formats.manifests import labelled_images
    records = labelled_images(args.labels, args.label_field, option="--label-field")
    paths, labels = [image for _, image, _, _ in records], [label for _, _, label, _ in records]
    groups = {}
    for g in args.group:
        name, _, members = g.partition("=")
        if not name or not members:
            raise ValueError(f"--group {g!r}: expected NAME=LABEL,LABEL")
        groups[name] = [m for m in members.split(",") if m]
    return gr.label_overlap(model, enc, paths, labels, args.prompt, groups)


if __name__ == "__main__":
    main()
