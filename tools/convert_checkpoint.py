#!/usr/bin/env python
"""Convert pretrained weights into a ``.safetensors`` the toolkit's model loads:

    python tools/convert_checkpoint.py --from unimo-official --src unimo_base_en/ \\
        --dst unimo_base.safetensors -c configs/unimo_official_base.yaml
    python tools/convert_checkpoint.py --from unimo2-official --src UNIMO-2/ \\
        --dst unimo2_base.safetensors -c configs/unimo2_official_base.yaml
    python tools/convert_checkpoint.py --from roberta-paddlenlp --src roberta-base.pdparams \\
        --dst roberta_init.safetensors -c configs/unimo2_base.yaml
    python tools/convert_checkpoint.py --from vit-paddleclas \\
        --src ViT_base_patch16_224_pretrained.pdparams --dst vit_init.safetensors -c configs/unimo2_base.yaml

The source kind converts into the model of the config's ``Arch.name``
(``roberta-paddlenlp`` exists for UNIMO and UNIMO-2; ``bert-paddlenlp`` and
``unimo-official`` for UNIMO / Unicoder-VL).
The model is built from ``-c``/``-o`` (its sizes must match the source);
tensors the source does not provide (e.g. the ViT when converting RoBERTa)
keep the config's seeded random initialisation, and the summary says which.
Any source variable without a place in the model is an error that lists it,
unless dropped with ``--ignore PATTERN`` (shell-style, repeatable). An
official directory is read file by file (so a ``DIR.pdparams`` written
beside ``DIR`` by an earlier run is not read instead); its files that are not
variables (configs, vocabularies, a README) are skipped and listed.
"""
import os

# The official checkpoints are Paddle 1.x/2.x static-graph variable files,
# which Paddle 3 reads only with the legacy static graph; the flag must be
# in the environment before Paddle is imported (dygraph is unaffected).
os.environ.setdefault("FLAGS_enable_pir_api", "0")

from vlcore.framework import cli as _cli

_cli.setup_process()  # before Paddle is imported
import unimo  # noqa: E402,F401  (registers UNIMO and Unicoder-VL)
import unimo2  # noqa: E402,F401  (registers UNIMO-2)
from unimo.convert import KINDS as UNIMO_KINDS  # noqa: E402
from unimo2.convert import KINDS as UNIMO2_KINDS  # noqa: E402
from vlcore.formats import weights_file  # noqa: E402

KINDS = sorted(set(UNIMO_KINDS) | set(UNIMO2_KINDS))


def _extra(p):
    p.add_argument("--from", dest="kind", required=True, choices=KINDS, help="layout of --src")
    p.add_argument("--src", required=True, help="official checkpoint directory (files that are not variables "
                        "are skipped and listed), .pdparams file, or Hugging Face directory (the -hf kinds)")
    p.add_argument("--dst", required=True, help="output .safetensors (the toolkit writes no pickles)")
    p.add_argument("--ignore", action="append", default=[], metavar="PATTERN",
                   help="drop source variables matching this shell pattern (repeatable)")
    p.add_argument("--text-position-start", type=int, default=None, metavar="S",
                   help="position id of the first token in the source's data (default: the source's own "
                        "convention, 2 for RoBERTa and the official UNIMO/UNIMO-2 readers, 0 for BERT); the "
                        "table is rolled so that source row S + i becomes our first position row + i")


def main():
    args = _cli.parse_args("Convert official UNIMO / UNIMO-2, paddlenlp RoBERTa / BERT, PaddleClas ViT or "
                           "Hugging Face RoBERTa / BERT / ViT weights.", _extra)

    def go():
        weights_file.check_suffix(args.dst)
        cfg = _cli.load(args)
        import paddle

        from vlcore.convert import complete_state, source_converter
        from vlcore.formats.sharded import atomic_path
        from vlcore.framework import checkpoint as ckpt
        from vlcore.framework.run import build_model
        paddle.set_device("cpu")
        convert = source_converter(args.kind, cfg.Arch.name, "--from")
        model = build_model(cfg)
        state, report = convert(args.src, model, cfg.Arch, args.ignore, args.text_position_start)
        full = complete_state(state, model.state_dict())
        ckpt.set_weights(model, full, args.dst)  # strict: what we write loads
        with atomic_path(args.dst) as tmp:
            weights_file.save(tmp, full)
        for line in report.lines():
            print(line)
        print(f"wrote {args.dst} ({len(full)} tensors, loads strictly into Arch {cfg.Arch.name} of {args.config})")
    _cli.run(go)


if __name__ == "__main__":
    main()
