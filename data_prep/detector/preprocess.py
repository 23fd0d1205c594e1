"""Image decoding and the detector's input transform (as bottom-up
attention's Caffe test code: BGR float minus the pixel means, bilinear resize
so that the shorter side is ``min_size`` unless the longer would exceed
``max_size``; sizes rounded as detectron2's ``ResizeShortestEdge``)."""
import cv2
import numpy as np
import paddle

from vlcore.data.images import ImageError, read_bgr  # noqa: F401  (re-exported)


def target_size(h, w, min_size, max_size):
    scale = min_size / min(h, w)
    if max(h, w) * scale > max_size:
        scale = max_size / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


class Prepared:
    """One image ready for the network, with what maps its boxes back."""
    __slots__ = ("array", "orig_h", "orig_w", "h", "w")

    def __init__(self, array, orig_h, orig_w):
        self.array, self.orig_h, self.orig_w = array, orig_h, orig_w
        self.h, self.w = array.shape[1:]

    @property
    def scale_xy(self):
        """Input pixels per original pixel, along x and y."""
        return self.w / self.orig_w, self.h / self.orig_h


def prepare(img_bgr, cfg):
    h, w = img_bgr.shape[:2]
    nh, nw = target_size(h, w, cfg.min_size, cfg.max_size)
    x = img_bgr.astype(np.float32) - np.asarray(cfg.pixel_mean_bgr, np.float32)
    if (nh, nw) != (h, w):
        x = cv2.resize(x, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return Prepared(np.ascontiguousarray(x.transpose(2, 0, 1)), h, w)


def batch_tensor(prepared):
    """Zero-pad (i.e. pad with the mean colour) to the largest image: ``[B, 3, H, W]``."""
    if len(prepared) == 1:
        return paddle.to_tensor(prepared[0].array[None])
    hm, wm = max(p.h for p in prepared), max(p.w for p in prepared)
    out = np.zeros((len(prepared), 3, hm, wm), np.float32)
    for i, p in enumerate(prepared):
        out[i, :, :p.h, :p.w] = p.array
    return paddle.to_tensor(out)
