"""UNIMO-2 (Figure 1): visual encoder, text encoder, grounded dictionary and
grounded transformer, plus the pre-training objectives on each kind of input.

- image-text pairs: MLM conditioned on the image, image-text matching (ITM),
  optionally image-text contrast (ITC), grounding loss;
- images alone: visual contrastive learning (VCL) on two augmented views,
  grounding loss; grounded tokens come from the image;
- text alone: MLM, grounding loss; grounded tokens come from the text.
"""
import dataclasses
from typing import Optional

import numpy as np
import paddle
import paddle.nn as nn

from vlcore.layers.heads import MLMHead, ProjectionHead
from vlcore.layers.objectives import weighted_total

from .config import EncoderConfig, UNIMO2ArchConfig, UNIMO2LossConfig
from .grounded_transformer import FusionOutput, GroundedTransformer
from .grounding import GroundedDictionary, GroundingOutput
from .heads import ITMHead
from .objectives import choose_negatives, contrastive_loss, mlm_loss, nt_xent_loss
from .text_encoder import TextEncoder
from .vit import VisionTransformer, resize_pos_embed


def _drop_first(x):
    """``x[:, 1:]`` via split (cheaper backward than slicing on CPU)."""
    return paddle.split(x, [1, x.shape[1] - 1], axis=1)[1]


def _encoder_args(enc: EncoderConfig):
    """The transformer-stack settings every encoder config shares, by name."""
    return {f.name: getattr(enc, f.name) for f in dataclasses.fields(EncoderConfig)}


class UNIMO2Model(nn.Layer):
    """The encoders and the fusion; no task heads."""

    def __init__(self, cfg: UNIMO2ArchConfig):
        super().__init__()
        d, v, t, g, f = cfg.hidden_size, cfg.vit, cfg.text, cfg.grounding, cfg.fusion
        self.cfg = cfg
        # Keyword arguments throughout: two swapped floats would not fail.
        self.vit = VisionTransformer(**_encoder_args(v), image_size=v.image_size, patch_size=v.patch_size,
                                     patch_padding=v.patch_padding, hidden_size=d, init_std=cfg.init_std,
                                     recompute=cfg.recompute)
        # Padding votes in the grounding (the official mode): compute the
        # padded states the official way too, or the votes are not theirs.
        official_padding = not g.exclude_padding
        self.text = TextEncoder(**_encoder_args(t), vocab_size=t.vocab_size, max_positions=t.max_positions,
                                hidden_size=d, init_std=cfg.init_std, recompute=cfg.recompute,
                                official_padding=official_padding)
        self.grounding = None if g.mode == "none" else GroundedDictionary(
            dict_size=g.dict_size, dim=d, top_k=g.top_k, beta=g.beta, alpha=g.alpha, mode=g.mode,
            temperature_init=g.temperature_init, temperature_min=g.temperature_min,
            temperature_max=g.temperature_max, exclude_padding=g.exclude_padding)
        self.fusion = GroundedTransformer(**_encoder_args(f), attention=f.attention, hidden_size=d,
                                          init_std=cfg.init_std, recompute=cfg.recompute,
                                          official_padding=official_padding)

    def adapt_state_dict(self, state, prefix="model."):
        """A state dict (keys under ``prefix``) trained at another image
        size: its ViT position grid resized bicubically to this one's."""
        key = prefix + "vit.pos_embed"
        own = self.vit.pos_embed
        if key in state and list(state[key].shape) != list(own.shape):
            old = paddle.to_tensor(state[key]) if not isinstance(state[key], paddle.Tensor) else state[key]
            grid = int(round((own.shape[1] - 1) ** 0.5))
            state[key] = resize_pos_embed(old.astype(own.dtype), grid)
        return state

    def encode_image(self, pixels):
        return self.vit(pixels)

    def encode_text(self, ids, mask):
        return self.text(ids, mask)

    def ground(self, image=None, text=None, text_mask=None, loss_rows=None) -> Optional[GroundingOutput]:
        """Top-K grounded tokens from the patches (not [CLS]) and/or the text
        tokens (not [CLS], not padding) -- whatever the input has."""
        if self.grounding is None:
            return None
        inputs = []
        if image is not None:
            inputs.append((_drop_first(image), None))
        if text is not None:
            inputs.append((_drop_first(text), text_mask[:, 1:]))
        return self.grounding(inputs, loss_rows)

    def fuse(self, image=None, text=None, text_mask=None, grounding: Optional[GroundingOutput] = None,
             attention=None) -> FusionOutput:
        tokens = grounding.tokens if grounding is not None else None
        tmask = grounding.token_mask if grounding is not None else None
        return self.fusion(image, tokens, text, tmask, text_mask, attention)

    def forward(self, pixels=None, ids=None, mask=None):
        image = self.encode_image(pixels) if pixels is not None else None
        text = self.encode_text(ids, mask) if ids is not None else None
        grounding = self.ground(image, text, mask)
        return self.fuse(image, text, mask, grounding), grounding


class UNIMO2ForPretraining(nn.Layer):
    """Model + heads; ``forward(batch)`` returns a dict of scalar losses whose
    ``"loss"`` entry is the weighted total to back-propagate."""

    def __init__(self, arch: UNIMO2ArchConfig, loss: UNIMO2LossConfig):
        super().__init__()
        self.loss_cfg = loss
        d = arch.hidden_size
        self.model = UNIMO2Model(arch)
        self.mlm_head = MLMHead(d, self.model.text.word_embed.weight, arch.text.layer_norm_eps, arch.init_std)
        self.itm_head = ITMHead(d, arch.itm_fusion, arch.fusion.dropout, arch.init_std)
        self.itc_image_proj = ProjectionHead(d, arch.proj_dim, num_layers=1, init_std=arch.init_std,
                                             final_act=arch.itc_proj_act)
        self.itc_text_proj = ProjectionHead(d, arch.proj_dim, num_layers=1, init_std=arch.init_std,
                                            final_act=arch.itc_proj_act, normalize=arch.itc_normalize_text)
        self.itc_temperature = self.create_parameter(
            [1], default_initializer=nn.initializer.Constant(loss.itc.temperature_init))
        self.itc_temperature.stop_gradient = not loss.itc.learnable_temperature
        self.vcl_proj = ProjectionHead(d, arch.proj_dim, num_layers=2, init_std=arch.init_std)

    def adapt_state_dict(self, state):
        """Weights trained at another image size (224 px pre-training ->
        384 px fine-tuning): resize the ViT position grid bicubically."""
        return self.model.adapt_state_dict(state)

    # ----- pieces shared with evaluation -----
    def itc_tau(self):
        c = self.loss_cfg.itc
        return paddle.clip(self.itc_temperature, c.temperature_min, c.temperature_max)

    def embed_image(self, image_feats):
        return self.itc_image_proj(image_feats[:, 0])

    def embed_text(self, text_feats):
        return self.itc_text_proj(text_feats[:, 0])

    def itm_logits(self, image_feats, text_feats, text_mask, use_grounding=True):
        """Matching logits ``[B, 2]`` for aligned rows of images and texts.
        ``use_grounding=False`` drops the grounded tokens and lets image and
        text attend to each other directly (Table 4, "w/o GD (I)")."""
        if use_grounding:
            grounding = self.model.ground(image_feats, text_feats, text_mask)
            out = self.model.fuse(image_feats, text_feats, text_mask, grounding)
        else:
            grounding = None
            out = self.model.fuse(image_feats, text_feats, text_mask, None, attention="full")
        return self.itm_head(out.text[:, 0], out.image[:, 0]), grounding

    # ----- objectives -----
    def forward(self, batch):
        kind = batch["kind"]
        if kind == "pairs":
            parts = self._pairs(batch)
        elif kind == "text":
            parts = self._text(batch)
        elif kind == "images":
            parts = self._images(batch)
        else:
            raise ValueError(f"unknown batch kind {kind!r}")
        c = self.loss_cfg
        return weighted_total(parts, {"mlm": c.mlm.weight, "itm": c.itm.weight, "itc": c.itc.weight,
                                      "vcl": c.vcl.weight, "grounding": c.grounding_weight})

    def _mlm(self, text_hidden, batch, parts):
        d = text_hidden.shape[-1]
        hidden = paddle.gather(text_hidden.reshape([-1, d]), batch["mlm_positions"])
        parts["mlm"], parts["mlm_acc"] = mlm_loss(self.mlm_head(hidden), batch["mlm_labels"])

    def _pairs(self, batch):
        """Image-text pairs. Every fusion of the step runs as one batch of
        rows: [image; masked caption] for MLM, [image; caption] (matched) and
        B mismatched rows for ITM -- one grounded-transformer call with large
        matrices instead of three small ones. The grounding loss is averaged
        over the rows with matched content (not the ITM negatives)."""
        cfg, parts = self.loss_cfg, {}
        mask = batch["mask"]
        b = mask.shape[0]
        image = self.model.encode_image(batch["pixels"])
        do_mlm, do_itm, do_itc = cfg.mlm.weight > 0, cfg.itm.weight > 0, cfg.itc.weight > 0
        texts = [batch["mlm_ids"]] if do_mlm else []
        texts += [batch["ids"]] if (do_itm or do_itc) else []
        if not texts:
            return parts
        encoded = self.model.encode_text(paddle.concat(texts, axis=0), paddle.concat([mask] * len(texts), axis=0))
        encoded = paddle.split(encoded, len(texts), axis=0)
        masked, clean = (encoded[0] if do_mlm else None), (encoded[-1] if (do_itm or do_itc) else None)
        img_emb = txt_emb = None
        if do_itc:
            img_emb, txt_emb = self.embed_image(image), self.embed_text(clean)
            parts["itc"], parts["itc_acc"] = contrastive_loss(img_emb, txt_emb, self.itc_tau(), batch["groups"])
        rows_img, rows_txt, rows_mask, matched = [], [], [], []
        if do_mlm:
            rows_img.append(image), rows_txt.append(masked), rows_mask.append(mask), matched.append(True)
        if do_itm:
            img_idx, txt_idx = self._itm_negatives(batch, img_emb, txt_emb)
            rows_img += [image, paddle.gather(image, img_idx)]
            rows_txt += [clean, paddle.gather(clean, txt_idx)]
            rows_mask += [mask, paddle.gather(mask, txt_idx)]
            matched += [True, False]
        if not rows_img:
            return parts
        cat = lambda xs: paddle.concat(xs, axis=0) if len(xs) > 1 else xs[0]  # noqa: E731
        img_r, txt_r, mask_r = cat(rows_img), cat(rows_txt), cat(rows_mask)
        loss_rows = paddle.to_tensor(np.repeat(np.asarray(matched), b))
        grounding = self.model.ground(img_r, txt_r, mask_r, loss_rows)
        out = self.model.fuse(img_r, txt_r, mask_r, grounding)
        text_out = paddle.split(out.text, len(rows_img), axis=0)
        if do_mlm:
            self._mlm(text_out[0], batch, parts)
        if do_itm:
            image_out = paddle.split(out.image, len(rows_img), axis=0)
            k = 1 if do_mlm else 0
            logits = self.itm_head(paddle.concat([text_out[k][:, 0], text_out[k + 1][:, 0]]),
                                   paddle.concat([image_out[k][:, 0], image_out[k + 1][:, 0]]))
            labels = paddle.concat([paddle.ones([b], "int64"), paddle.zeros([b], "int64")])
            parts["itm"] = nn.functional.cross_entropy(logits, labels)
            parts["itm_acc"] = (logits.argmax(-1) == labels).astype("float32").mean()
        if grounding is not None:
            parts["grounding"] = grounding.loss
        return parts

    def _itm_negatives(self, batch, img_emb, txt_emb):
        """B in-batch negatives: even rows keep the image and take another
        caption, odd rows keep the caption and take another image."""
        groups = batch["groups"].numpy()
        b = len(groups)
        rng = np.random.default_rng(int(batch["seed"]))
        sim = None
        if self.loss_cfg.itm.negatives == "hardest":
            with paddle.no_grad():
                sim = paddle.matmul(img_emb, txt_emb, transpose_y=True).numpy()
        neg_text = choose_negatives(groups, rng, sim)
        neg_image = choose_negatives(groups, rng, None if sim is None else sim.T)
        rows = np.arange(b)
        return (paddle.to_tensor(np.where(rows % 2 == 0, rows, neg_image)),
                paddle.to_tensor(np.where(rows % 2 == 0, neg_text, rows)))

    def _text(self, batch):
        parts = {}
        mask = batch["mask"]
        masked = self.model.encode_text(batch["mlm_ids"], mask)
        grounding = self.model.ground(None, masked, mask)
        out = self.model.fuse(None, masked, mask, grounding)
        self._mlm(out.text, batch, parts)
        if grounding is not None:
            parts["grounding"] = grounding.loss
        return parts

    def _images(self, batch):
        parts = {}
        pixels = paddle.concat([batch["pixels"], batch["pixels2"]], axis=0)
        image = self.model.encode_image(pixels)
        grounding = self.model.ground(image)
        out = self.model.fuse(image, None, None, grounding)
        z = self.vcl_proj(out.image[:, 0])
        parts["vcl"], parts["vcl_acc"] = nt_xent_loss(z, self.loss_cfg.vcl.temperature)
        if grounding is not None:
            parts["grounding"] = grounding.loss
        return parts
