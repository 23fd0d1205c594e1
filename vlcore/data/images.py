"""Image reading (OpenCV) and the augmentations of visual contrastive learning.

All randomness comes from a ``numpy.random.Generator`` the caller derives from
(seed, step, rank, position), so a resumed run draws exactly the same views.
"""
import io
import math

import cv2
import numpy as np

from vlcore.formats.tar_shards import Member


class ImageError(ValueError):
    """An unreadable image; the message names the file."""


def read_rgb(path):
    """Decode an image file (or a tar shard's :class:`Member`) to ``uint8
    [H, W, 3]`` RGB, or raise ImageError."""
    return cv2.cvtColor(read_bgr(path), cv2.COLOR_BGR2RGB)


def read_bgr(path):
    """Decode an image file (or a tar shard's :class:`Member`) to ``uint8
    [H, W, 3]`` BGR (OpenCV's order, what Caffe-trained detectors expect), or
    raise ImageError naming the file (``shard.tar:member`` for a member)."""
    if isinstance(path, Member):
        return decode_bgr(np.frombuffer(path.data, dtype=np.uint8), path.where)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror})") from None
    return decode_bgr(data, path)


def decode_bgr(data, path, reduced=False):
    """Decode the bytes of an image file (``uint8`` array) to BGR, or raise
    ImageError naming ``path``.

    The format is taken from the bytes, not the file name: a PNG saved as
    ``.jpg`` (ImageNet's ``n02105855_2933.JPEG``) decodes as PNG. Grayscale
    and CMYK JPEGs (22 ImageNet train files, listed in tensorflow/models
    ``research/inception/inception/data/build_imagenet_data.py``
    ``_is_cmyk``) become 3-channel BGR. A JPEG cut short is refused even by
    OpenCV builds whose libjpeg only warns ("premature end of data"): its
    last SOS marker must be followed by an EOI marker. ``reduced`` decodes
    at 1/8 scale (libjpeg still reads every entropy-coded byte, so corrupt
    data is still found; about 2x faster) -- enough to check an image.
    """
    if data.size == 0:
        raise ImageError(f"{path}: empty file")
    if data[:2].tobytes() == b"\xff\xd8" and not _jpeg_complete(data.tobytes()):
        raise ImageError(f"{path}: truncated JPEG (no end-of-image marker after the image data)")
    img = cv2.imdecode(data, cv2.IMREAD_REDUCED_COLOR_8 if reduced else cv2.IMREAD_COLOR)
    if img is None:
        raise ImageError(f"{path}: cannot decode image (corrupt or unsupported format)")
    return img


def _jpeg_complete(raw: bytes) -> bool:
    """Whether a JPEG has an EOI marker (FF D9) after its last start-of-scan
    (FF DA). Inside entropy-coded data a 0xFF byte is always followed by 0x00
    or a restart marker, so neither marker can appear there by chance; an
    EXIF thumbnail's own EOI comes before the main image's scans."""
    return raw.rfind(b"\xff\xd9") > raw.rfind(b"\xff\xda") >= 0


def resize(img, size):
    """Square resize; area interpolation when shrinking avoids aliasing."""
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)


def to_chw_float(img, mean, std):
    """``uint8 HWC`` RGB -> normalised ``float32 CHW``."""
    x = img.astype(np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def to_chw_uint8(img):
    """``uint8 HWC`` -> ``uint8 CHW``: what a loader worker sends (a quarter
    of the float32 bytes to pickle); :func:`normalise_chw` finishes it."""
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def normalise_chw(x, mean, std):
    """``uint8 [..., 3, H, W]`` -> normalised ``float32``: the same float32
    operations, element by element, as :func:`to_chw_float`, so the result
    is bit-identical to normalising in the worker."""
    shape = (3, 1, 1)
    x = x.astype(np.float32) / 255.0
    return (x - np.asarray(mean, np.float32).reshape(shape)) / np.asarray(std, np.float32).reshape(shape)


def random_resized_crop(img, size, rng, scale=(0.3, 1.0), ratio=(3 / 4, 4 / 3)):
    h, w = img.shape[:2]
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            x0, y0 = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
            return resize(img[y0:y0 + ch, x0:x0 + cw], size)
    return resize(img, size)  # fall back to the whole image


def random_rotate(img, rng, degrees):
    if degrees <= 0:
        return img
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-degrees, degrees), 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def color_distort(img, rng, strength=0.4, prob=0.8, gray_prob=0.2):
    """SimCLR colour distortion: brightness, contrast, saturation, hue jitter
    in random order (with probability ``prob``), then random grayscale."""
    x = img.astype(np.float32) / 255.0
    if rng.random() < prob:
        for op in rng.permutation(4):
            if op == 0:  # brightness
                x = x * rng.uniform(1 - strength, 1 + strength)
            elif op == 1:  # contrast
                mean = x.mean()
                x = (x - mean) * rng.uniform(1 - strength, 1 + strength) + mean
            elif op == 2:  # saturation
                gray = x @ np.asarray([0.299, 0.587, 0.114], np.float32)
                x = (x - gray[..., None]) * rng.uniform(1 - strength, 1 + strength) + gray[..., None]
            else:  # hue: rotate in HSV
                hsv = cv2.cvtColor(np.clip(x, 0, 1), cv2.COLOR_RGB2HSV)
                hsv[..., 0] = (hsv[..., 0] + 360.0 * rng.uniform(-strength / 4, strength / 4)) % 360.0
                x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
            x = np.clip(x, 0, 1)
    if rng.random() < gray_prob:
        gray = x @ np.asarray([0.299, 0.587, 0.114], np.float32)
        x = np.repeat(gray[..., None], 3, axis=-1)
    return (np.clip(x, 0, 1) * 255.0 + 0.5).astype(np.uint8)


def contrastive_view(img, size, rng, aug):
    """One augmented view (``aug``: an AugmentConfig-like object)."""
    out = random_resized_crop(img, size, rng, scale=(aug.crop_scale_min, 1.0))
    out = random_rotate(out, rng, aug.rotation_degrees)
    return color_distort(out, rng, aug.color_jitter, aug.color_jitter_prob, aug.grayscale_prob)


# ------------------------------------------------- a model's preprocessing
# "opencv": the toolkit's reader above (OpenCV decode, which applies a JPEG's
# EXIF orientation; area interpolation when shrinking). "official": what the
# released UNIMO-2 code does to an image (NLP/UNIMO-2 src/utils/image_utils.py,
# ImageReader._load_img / process_image): PIL decode without EXIF rotation,
# convert('RGB') unless already RGB, PIL's Image.resize((S, S)) with its
# default filter for RGB images, BICUBIC (Pillow 8.2.0 in the release's
# requirements.txt; the default since Pillow 7.0.0), then /255 and
# (x - mean) / std. Converted official checkpoints expect the latter;
# bench/bench_image_preprocess.py measures how far apart the two are.


def read_rgb_official(path):
    """Decode like the official reader (PIL, no EXIF transpose), to ``uint8
    [H, W, 3]`` RGB, or raise ImageError naming the file. Unlike the official
    reader, a truncated file is an error, not a partly grey image
    (``ImageFile.LOAD_TRUNCATED_IMAGES`` is not set)."""
    from PIL import Image, UnidentifiedImageError
    source = io.BytesIO(path.data) if isinstance(path, Member) else path
    path = path.where if isinstance(path, Member) else path
    try:
        with Image.open(source) as im:
            im = im.convert("RGB") if im.mode != "RGB" else im
            return np.asarray(im, dtype=np.uint8).copy()
    except FileNotFoundError:
        raise ImageError(f"{path}: cannot read (No such file or directory)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: cannot decode image (corrupt or unsupported format)") from None
    except OSError as e:  # truncated or broken data
        raise ImageError(f"{path}: cannot decode image ({e})") from None


def resize_official(img, size):
    """PIL ``Image.resize((size, size))`` of an RGB image: BICUBIC (antialiased
    when shrinking, like every PIL filter since Pillow 2.7)."""
    from PIL import Image
    if img.shape[:2] == (size, size):
        return img
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC), dtype=np.uint8)


DECODERS = {"opencv": read_rgb, "official": read_rgb_official}  # image file -> uint8 RGB


class Preprocess:
    """Image file -> a model's normalised ``float32 [3, S, S]`` pixels, the
    toolkit's way (``"opencv"``) or the official code's (``"official"``)."""

    def __init__(self, size, mean, std, method="opencv"):
        if method not in DECODERS:
            raise ValueError(f"image preprocessing {method!r} is not one of {list(DECODERS)}")
        self.size, self.mean, self.std, self.method = size, list(mean), list(std), method
        self.decode = DECODERS[method]

    def resize(self, img):
        return resize_official(img, self.size) if self.method == "official" else resize(img, self.size)

    def normalise(self, img):
        return to_chw_float(img, self.mean, self.std)

    def __call__(self, path):
        return self.normalise(self.resize(self.decode(path)))
