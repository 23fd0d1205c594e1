"""STAND-IN, to be replaced by ``unimo2.grounding_report.entry_words`` (being
written on main): delete this file and import ``entry_words`` from
``unimo2.grounding_report`` in ``unimo2/serve.py``; the signature and the
result's shape are the same.

``entry_words(model, encoder, texts, top=5) -> {entry: [(word, score)]}``:
for every entry of the grounded dictionary, the ``top`` tokens of ``texts``
most similar to it by Eq. 1 of the paper, scored by its logit
``eta * t_k . g_j`` averaged over the token's occurrences (the sigmoid of a
trained model saturates at 1.00 for many tokens; the logit keeps their
order). Tokens are the tokenizer's (a word the BPE splits shows as its
pieces); tokens without a letter or digit are left out.
"""
import numpy as np
import paddle


def entry_words(model, encoder, texts, top=5):
    grounding = model.model.grounding
    tok = encoder.tok
    ids, mask = encoder.token_ids(list(texts))
    real = mask & (ids != tok.cls_id) & (ids != tok.sep_id)
    vocab, where = np.unique(ids[real], return_inverse=True)
    sums = np.zeros((len(vocab), grounding.dict_size), np.float64)
    counts = np.bincount(where, minlength=len(vocab))
    with paddle.no_grad():
        feats, _ = encoder.texts(model, list(texts))                      # [N, L, D]
        sim = (grounding.eta() * paddle.matmul(feats, grounding.embedding, transpose_y=True)).numpy()  # [N, L, C]
    np.add.at(sums, where, sim[real])
    mean = sums / counts[:, None]
    words = [tok.decode([int(i)]).strip() for i in vocab]
    mean[[not any(ch.isalnum() for ch in w) for w in words]] = -np.inf
    best = np.argsort(-mean, axis=0, kind="stable")[:top]                # [top, C]
    return {j: [(words[i], float(mean[i, j])) for i in best[:, j]] for j in range(grounding.dict_size)}
