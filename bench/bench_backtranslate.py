"""Back-translation decoding speed: sentences/s per batch size, Paddle
(dygraph, this toolkit's beam search) vs the same weights in CTranslate2.

Usage:  python bench/bench_backtranslate.py [--batch-sizes 1,8,32,64] [--sentences 64]
            [--beam-size 4] [--d-model 512] [--layers 6] [--ffn 2048] [--heads 8]
            [--vocab 32000] [--src-len 14] [--out-len 16] [--skip-ct2]

The model has RANDOM weights (no MT weights can be downloaded here) at the
size of an OPUS-MT / Transformer-base model (d 512, 6+6 layers, FFN 2048,
8 heads; vocabulary 32k, OPUS-MT has ~58k). ``</s>`` is allowed only after
``--out-len`` tokens (``min_len`` = ``max_len``, in both backends), so every
hypothesis is exactly that long: that fixes the decoding length at a realistic caption length (COCO captions are ~11
words, ~14 subword tokens) instead of depending on what the weights say.
Sentences/s counts source sentences, each decoded with ``--beam-size``
beams (the cost of one direction; a round trip is two, with the pivot
n-best multiplying the second). Both backends run on one thread
(``OMP_NUM_THREADS=1`` unless set), as each worker process of
``data_prep.rewrite.backtranslate`` does: the figure is per worker, and
``--workers N`` multiplies it by up to N. CPU seconds are printed beside the
wall time because the machine may be shared.
"""
import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per worker process, as the tool runs
from common import header  # noqa: E402  (CPU defaults for Paddle, before paddle is imported)

import numpy as np  # noqa: E402
import paddle  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-sizes", default="1,8,32,64")
    ap.add_argument("--sentences", type=int, default=64, help="sentences decoded per batch size")
    ap.add_argument("--beam-size", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--ffn", type=int, default=2048)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--src-len", type=int, default=14)
    ap.add_argument("--out-len", type=int, default=16)
    ap.add_argument("--skip-ct2", action="store_true")
    args = ap.parse_args()
    from data_prep.rewrite.ct2_export import export
    from data_prep.rewrite.mt_model import WORD_SPECIALS, MTConfig, Seq2SeqTransformer, WordVocab, save_model
    from data_prep.rewrite.translators import build_translator

    header()
    paddle.seed(0)
    vocab = WordVocab(list(WORD_SPECIALS.values()) + [f"w{i}" for i in range(args.vocab - len(WORD_SPECIALS))])
    cfg = MTConfig(len(vocab), len(vocab), d_model=args.d_model, nhead=args.heads, num_encoder_layers=args.layers,
                   num_decoder_layers=args.layers, dim_feedforward=args.ffn, max_length=max(64, args.out_len))
    model = Seq2SeqTransformer(cfg, pad_id=vocab.pad_id)
    params = sum(int(np.prod(p.shape)) for p in model.parameters())
    work = tempfile.mkdtemp(prefix="bench_bt_")
    rng = np.random.default_rng(0)
    texts = [" ".join(f"w{i}" for i in rng.integers(0, args.vocab - 4, args.src_len)) for _ in range(args.sentences)]
    try:
        save_model(os.path.join(work, "pd"), model, vocab, vocab)
        del model
        backends = [("paddle", f"paddle:{os.path.join(work, 'pd')}")]
        if not args.skip_ct2:
            try:
                export(os.path.join(work, "pd"), os.path.join(work, "ct2"))
                backends.append(("ctranslate2", f"ct2:{os.path.join(work, 'ct2')}"))
            except ImportError as e:
                print(f"(CTranslate2 skipped: {e})")
        print(f"random-weight Transformer {args.layers}+{args.layers} layers, d {args.d_model}, FFN {args.ffn}, "
              f"vocab {args.vocab}: {params / 1e6:.1f}M parameters; beam {args.beam_size}, "
              f"{args.src_len} source tokens, {args.out_len} output tokens; load average {os.getloadavg()[0]:.1f}")
        results = {}
        for name, spec in backends:
            for bs in map(int, args.batch_sizes.split(",")):
                tr = build_translator(spec, beam_size=args.beam_size, max_len=args.out_len,
                                      min_len=args.out_len, batch_size=bs)
                tr.translate(texts[:bs], 1)  # warm-up
                t0, c0 = time.perf_counter(), time.process_time()
                out = tr.translate(texts, 1)
                sec, cpu = time.perf_counter() - t0, time.process_time() - c0
                lens = [len(h[0][0].split()) for h in out]
                results[name, bs] = args.sentences / sec
                print(f"  {name:>11} batch {bs:3d}: {args.sentences / sec:7.2f} sentences/s "
                      f"({sec:.1f} s wall, {cpu:.1f} s CPU, mean output {np.mean(lens):.1f} tokens)")
                del tr
        for bs in map(int, args.batch_sizes.split(",")):
            if ("ctranslate2", bs) in results:
                ratio = results['ctranslate2', bs] / results['paddle', bs]
                print(f"  batch {bs:3d}: CTranslate2 / Paddle = {ratio:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
