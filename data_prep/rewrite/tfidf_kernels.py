"""Compiled inner loops of the TF-IDF hard-negative search (numba): the
top-k selection, champion search and pruned search (whose bounds the module
doc of :mod:`data_prep.rewrite.tfidf` explains), and the builders of the
pruned index.

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


# ------------------------------------------------------------ pruned search
@nb.njit(cache=True)
def _better(s, c, s2, c2):
    """Is (score ``s``, position ``c``) ranked before (``s2``, ``c2``)?"""
    return s > s2 or (s == s2 and c < c2)


@nb.njit(cache=True)
def _offer(c, s, h, k, got, top_pos, top_val, top_hash):
    """Offer candidate ``c`` (score ``s``, text hash ``h``) to the running
    top ``k`` (sorted best first, ``got`` filled); returns the new count.

    Each text is kept once, by its best copy (score, then position), which
    is what :func:`_select` keeps: a better copy replaces the one held, and
    a text pushed out may come back with a better copy later.
    """
    if got == k and not _better(s, c, top_val[k - 1], top_pos[k - 1]):
        return got
    for i in range(got):
        if top_hash[i] == h:
            if not _better(s, c, top_val[i], top_pos[i]):
                return got
            for j in range(i, got - 1):  # drop the worse copy, then insert below
                top_pos[j], top_val[j], top_hash[j] = top_pos[j + 1], top_val[j + 1], top_hash[j + 1]
            got -= 1
            break
    if got == k:
        got -= 1
    i = got
    while i > 0 and _better(s, c, top_val[i - 1], top_pos[i - 1]):
        top_pos[i], top_val[i], top_hash[i] = top_pos[i - 1], top_val[i - 1], top_hash[i - 1]
        i -= 1
    top_pos[i], top_val[i], top_hash[i] = c, s, h
    return got + 1


@nb.njit(cache=True)
def prefix_norms(xp, xd):
    """For each entry of X (CSR; terms numbered by df descending, so a row's
    entries run from its most common term to its rarest): the L2 norm of
    its row's entries up to and including it."""
    out = np.empty(len(xd), dtype=np.float32)
    for r in range(len(xp) - 1):
        s = np.float32(0.0)
        for e in range(xp[r], xp[r + 1]):
            s += xd[e] * xd[e]
            out[e] = np.sqrt(s)
    return out


SIG_DEDICATED = 48  # the 48 most common terms have a bit of their own, the rest share 16 by term % 16


@nb.njit(cache=True)
def term_bit(u):
    """The signature bit of term ``u`` (terms numbered by df descending)."""
    if u < SIG_DEDICATED:
        return np.uint64(1) << np.uint64(u)
    return np.uint64(1) << np.uint64(SIG_DEDICATED + u % (64 - SIG_DEDICATED))


@nb.njit(cache=True)
def posting_signatures(xp, xi, xd, idoc, term_of, out_w, out_sig):
    """For each posting p (caption ``idoc[p]``, term ``term_of[p]``): the
    caption's weight on the term, and the OR of :func:`term_bit` of its
    other terms (a Bloom filter: no bit in common with a query's other terms
    proves the caption shares no other term with it)."""
    for p in range(len(idoc)):
        c, t = idoc[p], term_of[p]
        sig = np.uint64(0)
        for e in range(xp[c], xp[c + 1]):
            if xi[e] == t:
                out_w[p] = xd[e]
            else:
                sig |= term_bit(xi[e])
        out_sig[p] = sig


@nb.njit(cache=True)
def posting_rows(xp, xi, xd, idoc, rp, ri, rd):
    """Fill ``rp, ri, rd`` (CSR, one row per posting, ``rp`` sized and
    ``rp[0] = 0`` by the caller) with the X row of each posting's caption."""
    for p in range(len(idoc)):
        c = idoc[p]
        a, n = xp[c], xp[c + 1] - xp[c]
        o = rp[p]
        rp[p + 1] = o + n
        for e in range(n):
            ri[o + e] = xi[a + e]
            rd[o + e] = xd[a + e]


@nb.njit(cache=True)
def pruned_topk(q0, q1, xp, xi, xd, ip, idoc, inorm, iw, isig, rp, ri, rd, num_terms, image, hashes, first, k,
                margin, out_pos, out_val, out_n, out_scored):
    """Exact top ``k`` of queries ``q0..q1-1`` with L2 prefix bounds.

    Terms are numbered by df descending, so a caption's entries run from its
    most common term to its rarest. If t is the rarest term a caption y
    shares with query x, Cauchy-Schwarz on the entries up to t gives
    ``cos(x, y) <= |x[:t]| |y[:t]|`` (prefix norms, ``|x|`` = 1). The
    postings of term t (CSR ``ip, idoc``) are sorted by ``|y[:t]|``
    (``inorm``) descending, so for each query term, rarest first, the walk
    stops where that bound falls below the k-th score held (by ``margin``,
    above float32 rounding), and whole lists are skipped once ``|x[:t]|``
    is. Before reading a caption's row, ``iw`` (its weight on t) and
    ``isig`` (:func:`term_bit` of its other terms) bound its score by
    ``x_t y_t + |x on the terms it may share| |y[:t] without y_t|``. A
    caption is scored only in the list of its rarest shared term, from its
    row copied next to the posting (CSR ``rp, ri, rd``, read in order).
    ``out_scored[i]`` counts the captions scored for query ``q0 + i``.
    """
    w = np.zeros(num_terms, dtype=np.float32)  # the query's weights, dense
    top_hash = np.empty(k, dtype=hashes.dtype)
    nx = np.empty(64, dtype=np.float32)
    obit = np.empty(64, dtype=np.uint64)
    osq = np.empty(64, dtype=np.float64)
    for q in range(q0, q1):
        i_out = q - q0
        top_pos, top_val = out_pos[i_out], out_val[i_out]
        xa, xb = xp[q], xp[q + 1]
        m = xb - xa
        if m > len(nx):
            nx = np.empty(m, dtype=np.float32)
            obit = np.empty(m, dtype=np.uint64)
            osq = np.empty(m, dtype=np.float64)
        s2 = np.float32(0.0)
        for j in range(m):
            w[xi[xa + j]] = xd[xa + j]
            s2 += xd[xa + j] * xd[xa + j]
            nx[j] = np.sqrt(s2)
        img = image[q]
        lo, hi = first[img], first[img + 1]
        got, scored = 0, 0
        for j in range(m - 1, -1, -1):
            if got == k and nx[j] + margin < top_val[k - 1]:
                break  # earlier terms have smaller prefix norms still
            t = xi[xa + j]
            xt = np.float64(xd[xa + j])
            xsig = np.uint64(0)  # the signature bits of the query's other terms, and their squared weights
            mo, others2 = 0, 0.0
            for e in range(xa, xb):
                if e != xa + j:
                    obit[mo] = term_bit(xi[e])
                    osq[mo] = np.float64(xd[e]) * xd[e]
                    xsig |= obit[mo]
                    others2 += osq[mo]
                    mo += 1
            for p in range(ip[t], ip[t + 1]):
                full = got == k
                theta = top_val[k - 1]
                if full and inorm[p] * nx[j] + margin < theta:
                    break  # the rest of the list is sorted below this bound
                c = idoc[p]
                if lo <= c < hi:
                    continue  # a caption of the query's image
                if full:
                    # its other shared terms are among the query's terms whose signature bits it has,
                    # all before t (else it is scored in a rarer term's list), so by Cauchy-Schwarz
                    # score <= x_t y_t + |x on those terms| * |y[:t] without t|; without the row
                    ov = isig[p] & xsig
                    yt = np.float64(iw[p])
                    bound = xt * yt
                    if ov != 0:
                        rest2 = max(0.0, np.float64(inorm[p]) * inorm[p] - yt * yt)
                        if bound + np.sqrt(others2 * rest2) + margin < theta:
                            continue  # even with all the query's other terms (no loop)
                        xo2 = 0.0
                        for o in range(mo):
                            if ov & obit[o]:
                                xo2 += osq[o]
                        bound += np.sqrt(xo2 * rest2)
                    if bound + margin < theta:
                        continue
                s = np.float32(0.0)
                rarer = False
                for e in range(rp[p], rp[p + 1]):
                    u = ri[e]
                    wt = w[u]
                    if wt != 0:  # a shared term
                        if u > t:
                            rarer = True  # t is not its rarest shared term: scored in that one's list
                            break
                        s += wt * rd[e]
                if rarer:
                    continue
                scored += 1
                if full and not _better(s, c, theta, top_pos[k - 1]):
                    continue
                h = hashes[c]
                banned = False
                for b in range(lo, hi):  # a text of the query's image
                    if hashes[b] == h:
                        banned = True
                        break
                if not banned:
                    got = _offer(c, s, h, k, got, top_pos, top_val, top_hash)
        for j in range(m):
            w[xi[xa + j]] = 0
        out_n[i_out] = got
        out_scored[i_out] = scored
