#!/usr/bin/env python
"""Export a trained (or converted) UNIMO-2 for inference:

    python tools/export.py -c configs/unimo2_demo.yaml -o Global.checkpoint=output/unimo2_demo \
        --out output/unimo2_demo/export [--max-len 40] [--without-grounding]

``Global.checkpoint`` is a run directory (its latest checkpoint), a
``step_N`` directory or a weights file (``.safetensors``, ``.pdparams``) (e.g. from
tools/convert_checkpoint.py). The output directory holds the program and
weights (``paddle.jit.save``), ``export.json`` and the tokenizer; serve it
with ``tools/predict.py`` (Paddle Inference). Batch size is dynamic, the
caption length fixed (default ``DataLoader.Train.max_text_len``).
"""
from vlcore.framework import cli as _cli

_cli.setup_process()  # before Paddle is imported
import unimo  # noqa: E402,F401  (registers UNIMO and Unicoder-VL)
import unimo2  # noqa: E402,F401  (registers UNIMO-2)


def _extra(p):
    p.add_argument("--out", required=True, help="output directory (replaced if it exists)")
    p.add_argument("--max-len", type=int, default=None,
                   help="caption length in tokens incl. [CLS]/[SEP] (default: DataLoader.Train.max_text_len)")
    p.add_argument("--without-grounding", action="store_true",
                   help="score without grounded tokens (Table 4 'w/o GD (I)')")


def main():
    args = _cli.parse_args("Export UNIMO-2 (image + caption -> ITM logits, ITC embeddings) with paddle.jit.save.",
                           _extra)

    def go():
        cfg = _cli.load(args)
        import paddle

        from unimo2.inference import export
        from vlcore.framework import checkpoint as ckpt
        from vlcore.framework.run import build_model
        paddle.set_device("cpu")
        model = build_model(cfg)
        source = cfg.Global.checkpoint or cfg.Global.output_dir
        ckpt.set_weights(model, ckpt.load_weights(source), source)
        train = cfg.DataLoader.Train
        max_len = args.max_len or (train.max_text_len if train is not None else 64)
        mean = train.image_mean if train is not None else [0.5, 0.5, 0.5]
        std = train.image_std if train is not None else [0.5, 0.5, 0.5]
        out = export(model, args.out, cfg.Arch.vit.image_size, max_len, cfg.Global.tokenizer_dir, mean, std,
                     use_grounding=not args.without_grounding,
                     info={"checkpoint": source, "config": args.config, "overrides": args.override},
                     image_preprocess=cfg.Arch.vit.preprocess)
        print(f"exported {source} to {out} (captions of {max_len} tokens, {cfg.Arch.vit.image_size} px images)")
    _cli.run(go)


if __name__ == "__main__":
    main()
