"""Training pairs for image-text retrieval fine-tuning: a positive caption
and its sampled negatives, shared by UNIMO-2 (pixels) and UNIMO /
Unicoder-VL (region features).

Negative sampling follows the official readers (PaddlePaddle/Research
NLP/UNIMO ``retrieval_reader.py`` and NLP/UNIMO-2
``retrieval_grounded_reader.py``): for a positive (image I, caption T),
``n_img`` times "the same caption with a random other image" and ``n_cap``
times "the same image with a random caption of a random other image". The
order of a row is the one :func:`vlcore.tasks.retrieval_losses.retrieval_loss`
expects: positive, image negatives, caption negatives.

A batch holds every distinct image and caption once (``images``, ``texts``)
and the row layout as indices into them (``row_image``, ``row_text``,
``[B, 1 + n_img + n_cap]``): the model encodes each image once however many
rows use it.
"""
import os

import numpy as np

from vlcore.data.finetune import FinetuneTask
from vlcore.formats.manifests import Manifest, ManifestError
from vlcore.formats.records import RecordError


def train_setting(ctx, name, default):
    """A data setting (``max_text_len``, ``image_mean``...) of the run's
    training data -- pre-training corpora or a fine-tuning task -- so
    evaluation and inference preprocess like training did."""
    train = ctx.cfg.DataLoader.Train
    for section in (train, getattr(train, "task", None)):
        if section is not None and hasattr(section, name):
            return getattr(section, name)
    return default


class PairsIndex:
    """Every image and caption of a pairs manifest, in memory (the negatives
    are drawn from the whole split). ``image_root`` ("" = the manifest's
    directory) resolves relative image paths; ``key`` is the field naming
    the image in a region store (UNIMO)."""

    def __init__(self, path, image_root="", key="id"):
        manifest = Manifest(path, "pairs")
        root = image_root or os.path.dirname(os.path.abspath(path))
        self.path = path
        self.images, self.keys, self.captions, self.lines, self.row_of_id = [], [], [], [], {}
        for i in range(len(manifest)):
            try:
                rec = manifest[i]
            except ManifestError as e:
                raise RecordError(str(e)) from None
            if key not in rec:
                raise RecordError(f"{path}:{manifest.line_number(i)}: pairs record has no {key!r} "
                                  f"(DataLoader key of the region store)")
            if rec["id"] in self.row_of_id:
                raise RecordError(f"{path}:{manifest.line_number(i)}: id {rec['id']!r} repeated")
            self.row_of_id[rec["id"]] = len(self.images)
            img = rec["image"]
            self.images.append(img if os.path.isabs(img) else os.path.join(root, img))
            self.keys.append(str(rec[key]))
            self.captions.append(list(rec["captions"]))
            self.lines.append(manifest.line_number(i))
        if len(self.images) < 2:
            raise RecordError(f"{path}: retrieval fine-tuning needs at least 2 images to draw negatives from")

    def __len__(self):
        return len(self.images)

    def other_image(self, image, rng):
        """A uniformly random image other than ``image`` (rejection, as the
        official reader)."""
        while True:
            j = int(rng.integers(len(self.images)))
            if j != image:
                return j


def sample_pair(index, image, rng, n_img, n_cap):
    """One positive caption of ``image`` and its negatives: ``(image,
    caption, [negative images], [(image, caption) negatives])``; captions
    are (image, position) pairs."""
    pos = (image, int(rng.integers(len(index.captions[image]))))
    neg_images = [index.other_image(image, rng) for _ in range(n_img)]
    neg_caps = []
    for _ in range(n_cap):
        j = index.other_image(image, rng)
        neg_caps.append((j, int(rng.integers(len(index.captions[j])))))
    return image, pos, neg_images, neg_caps


def layout_rows(samples):
    """Distinct images and captions of ``samples`` (from :func:`sample_pair`)
    and the row layout as indices into them."""
    image_slot, text_slot = {}, {}
    slot = lambda table, key: table.setdefault(key, len(table))  # noqa: E731
    row_image, row_text = [], []
    for image, pos, neg_images, neg_caps in samples:
        own = slot(image_slot, image)
        ri = [own] + [slot(image_slot, j) for j in neg_images] + [own] * len(neg_caps)
        rt = [slot(text_slot, pos)] * (1 + len(neg_images)) + [slot(text_slot, c) for c in neg_caps]
        row_image.append(ri)
        row_text.append(rt)
    return (list(image_slot), list(text_slot), np.asarray(row_image, np.int64), np.asarray(row_text, np.int64))


def require_retrieval_loss(loss, who):
    """``loss`` if it is the ``RetrievalFinetune`` config (the negatives'
    counts), else an error saying ``who`` needs it."""
    if loss is None or not hasattr(loss, "image_negatives"):
        raise ValueError(f"{who} needs Loss: {{name: RetrievalFinetune, ...}}")
    return loss


class RetrievalTask(FinetuneTask):
    """``DataLoader.Train.task`` base of retrieval fine-tuning: positive pairs
    with sampled negatives (counts from the ``RetrievalFinetune`` loss);
    subclasses turn a batch's distinct images and captions into model inputs
    (``inputs(image indices, caption texts) -> dict``)."""
    kind = "pairs"  # every record is validated (PairsIndex has read them all already)

    def __init__(self, cfg, ctx, index):
        self.cfg, self.index = cfg, index
        loss = require_retrieval_loss(ctx.cfg.Loss, "retrieval fine-tuning")
        self.n_img, self.n_cap = loss.image_negatives, loss.caption_negatives

    def load(self, record, where, rng):
        image = self.index.row_of_id.get(record["id"])
        if image is None:
            raise RecordError(f"{where}: id {record['id']!r} not in {self.index.path}")
        return sample_pair(self.index, image, rng, self.n_img, self.n_cap)

    def collate(self, samples, rngs, batch_seed):
        images, texts, row_image, row_text = layout_rows(samples)
        batch = self.inputs(images, [self.index.captions[i][c] for i, c in texts])
        batch.update(kind="retrieval", row_image=row_image, row_text=row_text)
        return batch

    def inputs(self, images, texts):
        raise NotImplementedError
