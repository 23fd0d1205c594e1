"""UNIMO's pre-training data: region features, captions with their CMCL
rewrites, text; masking for visual and language learning.

Region features come from a region store (``vlcore.formats.region_store``,
written by ``data_prep``), keyed by the manifest record's ``key`` field
(``id`` by default); rewrites from rewrite files (``vlcore.formats.rewrites``)
keyed by caption id ``<record id>#<caption index>``. A record whose features
are missing or corrupt is skipped and counted (strict mode: an error naming
the id and the store).
"""
import os

import numpy as np

from vlcore.data.batches import StepBatches
from vlcore.data.text import TextProcessor, pad_ids
from vlcore.data.token_text import check_tokenizer, open_text_corpus
from vlcore.formats.records import JsonlFile, RecordError
from vlcore.formats.region_store import RegionStore, StoreDamagedError, StoreError
from vlcore.formats.rewrites import caption_id, read_rewrites

from .objectives import iou_region_mask, seq2seq_split

_STORES = {}


def open_store(path):
    """One RegionStore per path and process: LMDB refuses to open the same
    environment twice in a process (several corpora may share a store)."""
    key = os.path.realpath(path)
    if key not in _STORES:
        _STORES[key] = RegionStore(path)
    return _STORES[key]


def get_regions(features, key, where="", error=RecordError):
    """Region features of image ``key`` from the store at ``features``
    (:func:`open_store`). A key the store lacks, or a corrupt record, raises
    ``error`` naming the store, the key and ``where`` (the record's file:line)."""
    at = f" ({where})" if where else ""
    try:
        return open_store(features).get(key)
    except KeyError:
        raise error(f"{features}: no region features for {key!r}{at}") from None
    except StoreDamagedError:
        raise  # the whole store: nothing to skip to
    except StoreError as e:
        raise error(f"{e}{at}") from None


def infer_features(args, cfg, command):
    """The region store of a ``tools/infer.py`` command: ``--features``, else
    the config's evaluation or training-task store."""
    features = args.features or getattr(cfg.DataLoader.Eval, "features", "") or \
        getattr(getattr(cfg.DataLoader.Train, "task", None), "features", "")
    if not features:
        raise ValueError(f"{command}: no region store (--features DIR)")
    return features


class RegionCorpus:
    """A pairs or images manifest with its region features (and rewrites)."""

    def __init__(self, cfg, corpus_id):
        self.cfg, self.kind, self.name, self.id = cfg, cfg.kind, cfg.name, corpus_id
        required = (cfg.key, "captions") if cfg.kind == "pairs" else (cfg.key,)
        self.records = JsonlFile(cfg.path, required=required)
        self.store = open_store(cfg.features)
        # Rewrites are merged in memory by caption id (a few KB per caption).
        self.rewrites = read_rewrites(cfg.rewrites) if cfg.rewrites else {}

    def __len__(self):
        return len(self.records)

    def keep(self, rewrite):
        """Whether a rewrite's kind is among ``rewrite_kinds`` (all if empty)."""
        kinds = self.cfg.rewrite_kinds
        kind = str(rewrite.get("kind", ""))
        return not kinds or any(kind == k or kind.startswith(k + "-") for k in kinds)

    def regions(self, record, i):
        return get_regions(self.cfg.features, str(record[self.cfg.key]),
                           f"{self.records.path}:{self.records.line_number(i)}")

    def load(self, i, rng):
        record = self.records[i]
        sample = {"regions": self.regions(record, i), "group": (self.id << 40) | int(i)}
        if self.kind == "pairs":
            caps = record["captions"] if isinstance(record["captions"], list) else [record["captions"]]
            if not caps or not all(isinstance(c, str) and c.strip() for c in caps):
                raise RecordError(f"{self.records.path}:{self.records.line_number(i)}: "
                                  "'captions' must be a non-empty list of non-empty strings")
            k = int(rng.integers(len(caps)))
            rewrite = self.rewrites.get(caption_id(str(record.get("id", record[self.cfg.key])), k), {})
            sample.update(text=caps[k], positives=[p["text"] for p in rewrite.get("positives", []) if self.keep(p)],
                          negatives=[n["text"] for n in rewrite.get("negatives", []) if self.keep(n)])
        return sample


class TextCorpus:
    def __init__(self, cfg, corpus_id):
        self.cfg, self.kind, self.name, self.id = cfg, cfg.kind, cfg.name, corpus_id
        self.records = open_text_corpus(cfg.path)  # lines, or token ids from token shards

    def __len__(self):
        return len(self.records)

    def load(self, i, rng):
        return {"text": self.records[i]}


def region_arrays(regs, max_regions, feature_dim, location_dim):
    """Pad a list of RegionFeatures into ``features [B, R, F]``, normalised
    ``locations [B, R, L]`` (x1/W, y1/H, x2/W, y2/H [, area/(W*H)]) and
    ``mask [B, R]``; R = the most boxes in the list, capped at ``max_regions``."""
    r_max = max(1, min(max_regions, max(g.num_boxes for g in regs)))
    b = len(regs)
    feats = np.zeros([b, r_max, feature_dim], np.float32)
    locs = np.zeros([b, r_max, location_dim], np.float32)
    mask = np.zeros([b, r_max], bool)
    for i, g in enumerate(regs):
        n = min(g.num_boxes, r_max)
        if g.features.shape[1] != feature_dim:
            raise RecordError(f"{g.image_id}: {g.features.shape[1]}-d region features, "
                              f"Arch.feature_dim is {feature_dim}")
        boxes, w, h = g.boxes[:n].astype(np.float32), float(g.image_w), float(g.image_h)
        loc = [boxes[:, 0] / w, boxes[:, 1] / h, boxes[:, 2] / w, boxes[:, 3] / h]
        if location_dim == 5:
            loc.append((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (w * h))
        feats[i, :n], locs[i, :n], mask[i, :n] = g.features[:n], np.stack(loc, -1), True
    return feats, locs, mask


def make_corpus(cfg, corpus_id):
    return TextCorpus(cfg, corpus_id) if cfg.kind == "text" else RegionCorpus(cfg, corpus_id)


class UNIMOBatches(StepBatches):
    def __init__(self, corpora, schedule, tokenizer, data_cfg, arch, loss, seed=0, rank=0, start_step=0,
                 strict=False):
        super().__init__(corpora, schedule, seed, rank, start_step, strict)
        check_tokenizer(corpora, tokenizer)
        self.cfg, self.arch, self.loss = data_cfg, arch, loss
        lc = loss.language
        self.text = TextProcessor(tokenizer, lc)
        self.tok = tokenizer

    def collate(self, corpus, samples, rngs, batch_seed):
        batch = {"kind": corpus.kind}
        if corpus.kind in ("pairs", "images"):
            batch.update(self._regions([s["regions"] for s in samples], rngs))
            batch["groups"] = np.asarray([s["group"] for s in samples], dtype=np.int64)
        if corpus.kind in ("pairs", "text"):
            max_len = self.cfg.max_text_len if corpus.kind == "pairs" else self.cfg.max_text_len_corpus
            toks = [self.text.encode(s["text"], max_len, r) for s, r in zip(samples, rngs)]
            seq2seq = np.random.default_rng([batch_seed, 1]).random() < self.loss.language.seq2seq_prob
            if self.loss.language.seq2seq_weight <= 0:
                seq2seq = False
            elif self.loss.language.mlm_weight <= 0:
                seq2seq = True
            batch.update(self._seq2seq(toks, rngs) if seq2seq else self.text.collate(toks, rngs))
            batch["lang_task"] = "seq2seq" if seq2seq else "mlm"
            if seq2seq:  # the matching / contrastive heads still need the plain caption
                batch["ids"] = pad_ids([[self.tok.cls_id, *t, self.tok.sep_id] for t in toks], self.tok.pad_id)
                batch["mask"] = batch["ids"] != self.tok.pad_id
        if corpus.kind == "pairs" and self.loss.cmcl.weight > 0:
            batch.update(self._cmcl(samples, rngs))
        return batch

    # ------------------------------------------------------------ regions
    def _regions(self, regs, rngs):
        a, rc = self.arch, self.loss.region
        feats, locs, mask = region_arrays(regs, self.cfg.max_regions, a.feature_dim, a.location_dim)
        b, r_max = mask.shape
        masked_at = np.zeros([b, r_max], bool)
        dists, ids = [], []
        for i, (g, rng) in enumerate(zip(regs, rngs)):
            n = int(mask[i].sum())
            if n:
                sel = iou_region_mask(g.boxes[:n], rng, rc.ratio, rc.iou)
                dist = self._class_dist(g, n)
                if rc.replace == "unicoder":  # background regions are not targets
                    sel &= dist.argmax(1) < a.num_classes
                masked_at[i, :n] = sel
                dists.append(dist[sel][:, :a.num_classes])
                ids.append(dist[sel][:, :a.num_classes].argmax(1))
        masked = self._corrupt(feats, masked_at, mask, rngs)
        rows, cols = np.nonzero(masked_at)
        dist = np.concatenate(dists) if dists else np.zeros([0, a.num_classes], np.float32)
        dist = dist / np.clip(dist.sum(1, keepdims=True), 1e-12, None)
        return {"features": feats, "locations": locs, "region_mask": mask, "masked_features": masked,
                "region_positions": (rows * r_max + cols).astype(np.int64), "mrfr_targets": feats[rows, cols],
                "mrc_dist": dist.astype(np.float32),
                "mrc_ids": (np.concatenate(ids) if ids else np.zeros(0)).astype(np.int64)}

    def _class_dist(self, g, n):
        """The detector's class distribution per box, ``[n, C(+1)]``: the full
        one if stored (background last), else rebuilt from the top-k."""
        c = self.arch.num_classes
        if g.cls_probs is not None:
            return np.asarray(g.cls_probs[:n], np.float32)
        dist = np.zeros([n, c + 1], np.float32)
        k_ids, k_scores = g.obj_ids[:n], g.obj_scores[:n]
        for j in range(k_ids.shape[1]):
            valid = (k_ids[:, j] >= 0) & (k_ids[:, j] < c)
            dist[np.flatnonzero(valid), k_ids[valid, j]] = k_scores[valid, j]
        dist[:, c] = np.clip(1.0 - dist[:, :c].sum(1), 0.0, None)  # the remainder as "background"
        return dist

    def _corrupt(self, feats, masked_at, mask, rngs):
        """Zero the masked regions (UNIMO) or replace them 80/10/10 by a
        random vector / a region of another image / themselves (Unicoder-VL)."""
        out = feats.copy()
        if self.loss.region.replace == "zero":
            out[masked_at] = 0.0
            return out
        b = feats.shape[0]
        for i, rng in enumerate(rngs):
            real = feats[i, mask[i]]
            mu, sd = (real.mean(), real.std() + 1e-6) if len(real) else (0.0, 1.0)
            for r in np.flatnonzero(masked_at[i]):
                u = rng.random()
                if u < 0.8:
                    out[i, r] = rng.normal(mu, sd, size=feats.shape[2])
                elif u < 0.9 and b > 1:
                    j = (i + 1 + int(rng.integers(b - 1))) % b
                    cand = np.flatnonzero(mask[j])
                    if len(cand):
                        out[i, r] = feats[j, cand[rng.integers(len(cand))]]
        return out

    # ------------------------------------------------------------ text
    def _seq2seq(self, token_lists, rngs):
        """[CLS] source [SEP] -> target fragments, with original positions."""
        tok, lc, off = self.tok, self.loss.language, self.arch.position_offset
        srcs, src_pos, tgts, tgt_pos = [], [], [], []
        for toks, rng in zip(token_lists, rngs):
            s, sp, t, tp = seq2seq_split(toks, rng, lc.seq2seq_ratio, lc.fragment_min, lc.fragment_max,
                                         tok.cls_id, tok.sep_id, tok.word_start)
            srcs.append([tok.cls_id, *s, tok.sep_id])
            src_pos.append([off, *(off + 1 + p for p in sp), off + 1 + len(toks)])
            tgts.append(t)
            tgt_pos.append([off + 1 + p for p in tp])
        src_ids, tgt_ids = pad_ids(srcs, tok.pad_id), pad_ids(tgts, tok.pad_id)
        t_len = tgt_ids.shape[1]
        positions, labels = [], []
        for r, t in enumerate(tgts):  # predict token j+1 from position j
            positions += [r * t_len + j for j in range(len(t) - 1)]
            labels += t[1:]
        return {"src_ids": src_ids, "src_mask": src_ids != tok.pad_id, "src_pos": pad_ids(src_pos, 0),
                "tgt_ids": tgt_ids, "tgt_mask": tgt_ids != tok.pad_id, "tgt_pos": pad_ids(tgt_pos, 0),
                "s2s_positions": np.asarray(positions, np.int64), "s2s_labels": np.asarray(labels, np.int64)}

    def _cmcl(self, samples, rngs):
        """Each caption with up to P positives and N negatives from its
        rewrites; slots without a rewrite are padding (``cmcl_valid`` False)."""
        cc, tok = self.loss.cmcl, self.tok
        k = 1 + cc.num_positives + cc.num_negatives
        texts, is_pos, valid = [], np.zeros([len(samples), k], bool), np.zeros([len(samples), k], bool)
        for i, (s, rng) in enumerate(zip(samples, rngs)):
            pos = list(rng.permutation(s["positives"]))[:cc.num_positives]
            neg = list(rng.permutation(s["negatives"]))[:cc.num_negatives]
            row = [s["text"]] + pos + [""] * (cc.num_positives - len(pos)) + neg + [""] * (cc.num_negatives - len(neg))
            texts += row
            is_pos[i, :1 + cc.num_positives] = True
            valid[i] = [bool(t) for t in row]
        seqs = [[tok.cls_id, *(tok.encode(t)[:self.cfg.max_text_len - 2] if t else []), tok.sep_id] for t in texts]
        ids = pad_ids(seqs, tok.pad_id)
        return {"cmcl_ids": ids, "cmcl_mask": ids != tok.pad_id, "cmcl_is_pos": is_pos, "cmcl_valid": valid}
