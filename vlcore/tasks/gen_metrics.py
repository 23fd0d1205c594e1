"""Metrics of generated text: the COCO caption toolkit and ROUGE.

- ``coco_caption_metrics``: BLEU-1..4, METEOR, ROUGE-L, CIDEr (and SPICE when
  its Java dependencies are installed) through ``pycocoevalcap`` after its
  PTB tokenizer -- the protocol of the COCO Karpathy test results in the
  papers (UNIMO Table 3, UNIMO-2 Table 1) and of SQuAD question generation
  (UNIMO's official ``eval_mertrics="Bleu_4,METEOR,ROUGE_L"``).
- ``rouge_metrics``: ROUGE-1/2/L F1 of Google's ``rouge-score`` (Porter
  stemming), the CNN/DailyMail and Gigaword numbers.

Scores are reported in percent (x100), like the papers' tables.
"""
import os


def spice_status():
    """``None`` when SPICE can run, else why not. pycocoevalcap's SPICE
    downloads Stanford CoreNLP 3.6.0 on first use; offline it cannot, so it
    is only attempted when the jars are already there."""
    try:
        import pycocoevalcap.spice.spice as spice
    except ImportError as e:
        return f"pycocoevalcap missing ({e})"
    lib = os.path.join(os.path.dirname(spice.__file__), "lib")
    missing = [j for j in ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
               if not os.path.isfile(os.path.join(lib, j))]
    if missing:
        return (f"skipped: {', '.join(missing)} not in {lib} (pycocoevalcap downloads Stanford CoreNLP "
                "at first use; put the jars there to enable SPICE)")
    return None


def _check(refs, hyps):
    if set(refs) != set(hyps):
        extra, missing = sorted(set(hyps) - set(refs))[:5], sorted(set(refs) - set(hyps))[:5]
        raise ValueError(f"predictions and references cover different ids (no reference for {extra}, "
                         f"no prediction for {missing})")
    if not refs:
        raise ValueError("no predictions to score")
    for k, r in refs.items():
        if not r:
            raise ValueError(f"id {k!r} has no reference text")


def coco_caption_metrics(refs, hyps, metrics=("bleu", "meteor", "rouge_l", "cider", "spice")):
    """``refs``: ``{id: [reference, ...]}``, ``hyps``: ``{id: prediction}``.
    Returns ``Bleu_1..Bleu_4, METEOR, ROUGE_L, CIDEr[, SPICE]`` (x100);
    when SPICE cannot run, ``SPICE_status`` says why."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    _check(refs, hyps)
    keys = sorted(refs, key=str)
    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": c} for c in refs[k]] for i, k in enumerate(keys)})
    res = tok.tokenize({i: [{"caption": hyps[k]}] for i, k in enumerate(keys)})
    out = {}
    if "bleu" in metrics:
        from pycocoevalcap.bleu.bleu import Bleu
        scores, _ = Bleu(4).compute_score(gts, res, verbose=0)
        out.update({f"Bleu_{n + 1}": 100.0 * float(s) for n, s in enumerate(scores)})
    if "meteor" in metrics:
        from pycocoevalcap.meteor.meteor import Meteor
        m = Meteor()
        try:
            out["METEOR"] = 100.0 * float(m.compute_score(gts, res)[0])
        finally:
            _close_meteor(m)
    if "rouge_l" in metrics:
        from pycocoevalcap.rouge.rouge import Rouge
        out["ROUGE_L"] = 100.0 * float(Rouge().compute_score(gts, res)[0])
    if "cider" in metrics:
        from pycocoevalcap.cider.cider import Cider
        out["CIDEr"] = 100.0 * float(Cider().compute_score(gts, res)[0])
    if "spice" in metrics:
        status = spice_status()
        if status is None:
            from pycocoevalcap.spice.spice import Spice
            out["SPICE"] = 100.0 * float(Spice().compute_score(gts, res)[0])
        else:
            out["SPICE_status"] = status
    return out


def _close_meteor(m):
    # pycocoevalcap keeps a METEOR java process per instance; end it now
    # rather than at interpreter exit.
    try:
        with m.lock:
            m.meteor_p.stdin.close()
            m.meteor_p.kill()
            m.meteor_p.wait()
    except Exception:  # already gone
        pass


def rouge_metrics(refs, hyps):
    """``rouge1``, ``rouge2``, ``rougeL``: F1 (x100) of ``rouge-score`` with stemming; an example
    with several references takes its best reference per metric (the
    usual multi-reference rule)."""
    from rouge_score import rouge_scorer
    _check(refs, hyps)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    sums = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for k, r in refs.items():
        scores = [scorer.score(ref, hyps[k]) for ref in r]
        for name in sums:
            sums[name] += max(s[name].fmeasure for s in scores)
    n = len(refs)
    # rouge-score's names: they differ from the COCO toolkit's ROUGE_L (no
    # stemming, LCS F with beta 1.2), which text tasks may report as well.
    return {name: 100.0 * total / n for name, total in sums.items()}
