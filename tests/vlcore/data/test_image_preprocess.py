"""A model's image preprocessing (vlcore.data.images.Preprocess): the
toolkit's OpenCV reader and the official UNIMO-2 reader
(PaddlePaddle/Research NLP/UNIMO-2 src/utils/image_utils.py: PIL open,
convert('RGB') unless RGB, Image.resize((S, S)) with PIL's default filter,
/255, (x - 0.5) / 0.5; no EXIF transpose). The reference below is written
from that description with PIL calls only, on photographs (scikit-learn's
bundled JPEGs) and on the awkward files of real corpora (EXIF-rotated,
CMYK, grayscale, palette PNG, PNG bytes under a .jpg name)."""
import os

import numpy as np
import pytest
from PIL import Image

from vlcore.data.images import ImageError, Preprocess

MEAN = STD = [0.5, 0.5, 0.5]


def official_reference(path, size):
    img = Image.open(path)
    if img.mode != "RGB":
        img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size))
    x = np.asarray(img, dtype="float32") / 255.0
    return ((x - 0.5) / 0.5).transpose(2, 0, 1)


def photos():
    import sklearn.datasets
    root = os.path.join(os.path.dirname(sklearn.datasets.__file__), "images")
    return [os.path.join(root, name) for name in ("china.jpg", "flower.jpg")]


@pytest.fixture(scope="module")
def awkward(tmp_path_factory):
    """Small files with the quirks of web and photo corpora."""
    tmp = tmp_path_factory.mktemp("awkward")
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
    files = {}
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    files["exif_rotated"] = tmp / "exif.jpg"
    base.save(files["exif_rotated"], exif=exif.tobytes())
    files["cmyk"] = tmp / "cmyk.jpg"
    base.convert("CMYK").save(files["cmyk"])
    files["gray"] = tmp / "gray.jpg"
    base.convert("L").save(files["gray"])
    files["palette"] = tmp / "palette.png"
    base.convert("P").save(files["palette"])
    files["png_named_jpg"] = tmp / "really_png.jpg"
    base.save(files["png_named_jpg"], format="PNG")
    return {k: str(v) for k, v in files.items()}


@pytest.mark.parametrize("size", [32, 224])
def test_official_equals_the_released_reader_on_photos(size):
    prep = Preprocess(size, MEAN, STD, "official")
    for path in photos():
        got = prep(path)
        assert got.shape == (3, size, size) and got.dtype == np.float32
        np.testing.assert_array_equal(got, official_reference(path, size))


def test_official_equals_the_released_reader_on_awkward_files(awkward):
    prep = Preprocess(24, MEAN, STD, "official")
    for name, path in awkward.items():
        np.testing.assert_array_equal(prep(path), official_reference(path, 24), err_msg=name)


def test_the_two_readers_differ_where_the_docs_say(awkward):
    """The OpenCV reader applies the EXIF orientation (the official one does
    not), and on photos the resize filters differ (area vs PIL bicubic)."""
    off, ocv = Preprocess(24, MEAN, STD, "official"), Preprocess(24, MEAN, STD, "opencv")
    assert ocv.decode(awkward["exif_rotated"]).shape[:2] == (60, 40)   # displayed upright: rotated
    assert off.decode(awkward["exif_rotated"]).shape[:2] == (40, 60)   # stored orientation
    for name in ("cmyk", "gray", "palette", "png_named_jpg"):
        assert ocv.decode(awkward[name]).shape == (40, 60, 3), name
    path = photos()[0]
    diff = np.abs(Preprocess(224, MEAN, STD, "official")(path) - Preprocess(224, MEAN, STD, "opencv")(path))
    assert 1e-3 < diff.mean() < 0.1  # close, but not the same pixels


def test_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    truncated = tmp_path / "truncated.jpg"
    Image.fromarray(np.zeros((50, 50, 3), np.uint8) + 128).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    for method in ("official", "opencv"):
        prep = Preprocess(16, MEAN, STD, method)
        for path in (bad, truncated, tmp_path / "missing.jpg"):
            with pytest.raises(ImageError, match=str(path.name)):
                prep(str(path))
    with pytest.raises(ValueError, match="not one of"):
        Preprocess(16, MEAN, STD, "pil")


def test_encoder_uses_the_configured_reader(tmp_path):
    """Arch.vit.preprocess reaches the evaluation encoder (and through it
    retrieval, zero-shot classification and inference)."""
    from types import SimpleNamespace
    from unimo2.retrieval import UNIMO2Encoder
    path = photos()[1]
    for method in ("official", "opencv"):
        cfg = SimpleNamespace(Arch=SimpleNamespace(vit=SimpleNamespace(image_size=32, preprocess=method)),
                              DataLoader=SimpleNamespace(Train=None))
        enc = UNIMO2Encoder(SimpleNamespace(cfg=cfg, tokenizer=None), 4, 16, MEAN, STD)
        np.testing.assert_array_equal(enc.pixels([path])[0], Preprocess(32, MEAN, STD, method)(path))
