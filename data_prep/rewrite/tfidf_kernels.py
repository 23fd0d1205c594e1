"""Compiled inner loops of the TF-IDF hard-negative search (numba).

Per query, champion search touches a few thousand candidates of about six
terms each; done with scipy (gather the candidates' rows, multiply by the
query row, sum) that is ~8 passes over freshly allocated arrays, ~0.5 ms a
query. Here it is one pass with a dense weight vector of the query's terms.

Scores are float32 sums taken in term order, exactly as scipy's sparse
product ``Q @ XT`` (the exact search) accumulates them, so a pair scores
bit-identically in both searches and ties break the same way.
"""
from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def _select(cand, score, n, hashes, banned, k, out_pos, out_val):
    """Best ``k`` of ``cand[:n]`` into ``out_pos``/``out_val``; returns how many.

    Order: score descending, ties by corpus position. Skipped: score <= 0,
    a text hash in ``banned`` (texts of the query's image), a hash already
    taken. Looks at the best ``2k + 8`` first and widens only if filtering
    left fewer than ``k``; every candidate tied with the cut is kept, so the
    result does not depend on how the partition splits ties.
    """
    m = min(n, 2 * k + 8)
    seen = np.empty(k, dtype=hashes.dtype)
    while True:
        if m < n:
            neg = -score[:n]
            thr = -np.partition(neg, m - 1)[m - 1]
        else:
            thr = -np.inf
        sel = np.nonzero((score[:n] >= thr) & (score[:n] > 0))[0]
        sel = sel[np.argsort(cand[sel])]  # by position, then stably by score
        sel = sel[np.argsort(-score[sel], kind="mergesort")]
        got = 0
        for j in sel:
            s = score[j]
            if not s > 0:
                break
            h = hashes[cand[j]]
            dup = False
            for b in banned:
                if b == h:
                    dup = True
                    break
            if not dup:
                for i in range(got):
                    if seen[i] == h:
                        dup = True
                        break
            if dup:
                continue
            seen[got] = h
            out_pos[got] = cand[j]
            out_val[got] = s
            got += 1
            if got == k:
                return got
        if m >= n:
            return got
        m = min(n, m * 4)


@nb.njit(cache=True)
def select_rows(q0, ptr, cand, score, image, hashes, first, k, out_pos, out_val, out_n):
    """Top ``k`` of each query row ``i`` (query ``q0 + i``) of a scored
    candidate list in CSR layout; candidates of the query's image excluded."""
    for i in range(len(ptr) - 1):
        q = q0 + i
        a, b = ptr[i], ptr[i + 1]
        c = cand[a:b]
        s = score[a:b].copy()
        img = image[q]
        for j in range(b - a):
            if image[c[j]] == img:
                s[j] = -np.inf
        banned = hashes[first[img]:first[img + 1]]
        out_n[i] = _select(c, s, b - a, hashes, banned, k, out_pos[i], out_val[i])


@nb.njit(cache=True)
def champion_topk(q0, q1, xp, xi, xd, cp, ci, rp, ri, rd, num_terms, image, hashes, first, k,
                  out_pos, out_val, out_n):
    """Champion search for queries ``q0..q1-1``: candidates are the union of
    the champion lists (CSR ``cp, ci``) of the query's terms, each scored
    exactly against the query's TF-IDF row (CSR ``xp, xi, xd``).

    At 1M captions the rows of X are far bigger than the CPU caches and a
    candidate's row is a random read; ``rp, ri, rd`` holds, for champion
    posting p, its caption's row, so the scoring reads memory in order and
    the only random access per candidate is its mark. The same-image test is
    a range check on ``first`` (captions of an image are contiguous).
    """
    w = np.zeros(num_terms, dtype=np.float32)  # the query's weights, dense
    mark = np.full(len(xp) - 1, -1, dtype=np.int32)  # last query (- q0) that took a caption as candidate
    for q in range(q0, q1):
        a, b = xp[q], xp[q + 1]
        total = 0
        for j in range(a, b):
            t = xi[j]
            w[t] = xd[j]
            total += cp[t + 1] - cp[t]
        cand = np.empty(total, dtype=np.int64)
        score = np.empty(total, dtype=np.float32)
        n = 0
        stamp = q - q0
        img = image[q]
        lo, hi = first[img], first[img + 1]
        for j in range(a, b):
            t = xi[j]
            for p in range(cp[t], cp[t + 1]):
                c = ci[p]
                if mark[c] == stamp:
                    continue
                mark[c] = stamp
                cand[n] = c
                if lo <= c < hi:
                    score[n] = -np.inf
                else:
                    s = np.float32(0.0)
                    for e in range(rp[p], rp[p + 1]):
                        wt = w[ri[e]]
                        if wt != 0:  # only shared terms, in term order, as the sparse product adds them
                            s += wt * rd[e]
                    score[n] = s
                n += 1
        for j in range(a, b):
            w[xi[j]] = 0
        banned = hashes[lo:hi]
        out_n[q - q0] = _select(cand, score, n, hashes, banned, k, out_pos[q - q0], out_val[q - q0])
