"""Tests for vlcore.formats.records (line/JSONL random access) and vlcore.data.images."""
import json
import multiprocessing as mp
import os
import pickle

import cv2
import numpy as np
import pytest

import vlcore.formats.records as records
from unimo2.config import AugmentConfig
from vlcore.data.images import ImageError, contrastive_view, read_rgb, resize, to_chw_float
from vlcore.formats.records import JsonlFile, LineFile, RecordError

HOUR_NS = 3600 * 10 ** 9


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def backdate(path, ns=HOUR_NS):
    """Make ``path`` look written an hour ago (old files are cached)."""
    t = os.stat(path).st_mtime_ns - ns
    os.utime(path, ns=(t, t))
    return t


# ---------------------------------------------------------------- JSONL
UNICODE = "caf\u00e9 \u20ac \u5b57 \U0001F600"
JSONL = (b'{"id": "x1", "v": 1}\r\n'                # line 1, CRLF
         b"\r\n"                                     # line 2, blank (CRLF)
         b"   \n"                                    # line 3, blank (spaces)
         + json.dumps({"id": "x2", "v": UNICODE}, ensure_ascii=False).encode("utf-8") + b"\n"  # line 4
         + b"\n"                                     # line 5, blank
         + b'{"id": "x3", "v": 3, "extra": [1, 2]}')  # line 6, no final newline


def test_jsonl_blank_lines_crlf_unicode(tmp_path):
    path = write_bytes(tmp_path / "m.jsonl", JSONL)
    f = JsonlFile(path, required=("id", "v"))
    assert len(f) == 3
    assert [f.line_number(i) for i in range(3)] == [1, 4, 6]
    assert f[0] == {"id": "x1", "v": 1}
    assert f[1]["v"] == UNICODE
    assert f[2] == {"id": "x3", "v": 3, "extra": [1, 2]}
    assert f[2] == {"id": "x3", "v": 3, "extra": [1, 2]}  # repeated / random-order access
    assert f[0]["id"] == "x1"


def test_linefile_strips_only_line_ends(tmp_path):
    path = write_bytes(tmp_path / "t.txt", b"  two  spaces  \r\n\nsecond\n\t\nthird")
    f = LineFile(path)
    assert [f[i] for i in range(len(f))] == ["  two  spaces  ", "second", "third"]
    assert [f.line_number(i) for i in range(len(f))] == [1, 3, 5]


def test_malformed_json_names_file_and_line(tmp_path):
    path = write_bytes(tmp_path / "bad.jsonl", b'{"id": 1}\n\n{"id": 2}\n\n{"id": 3,,}\n{"id": 4}\n')
    f = JsonlFile(path)
    assert f[1] == {"id": 2} and f[3] == {"id": 4}
    with pytest.raises(RecordError) as e:
        f[2]
    assert f"{path}:5" in str(e.value)  # 1-based physical line, blank lines counted
    assert "malformed JSON" in str(e.value)


def test_non_object_and_missing_key(tmp_path):
    path = write_bytes(tmp_path / "m.jsonl", b'{"image": "a.png"}\n[1, 2]\n{"image": "b.png", "captions": []}\n')
    f = JsonlFile(path, required=("image", "captions"))
    with pytest.raises(RecordError, match=rf"{path}:1: missing key\(s\) \['captions'\]"):
        f[0]
    with pytest.raises(RecordError, match=rf"{path}:2: expected a JSON object"):
        f[1]
    assert f[2]["image"] == "b.png"


def test_non_utf8_line(tmp_path):
    path = write_bytes(tmp_path / "t.txt", b"ok\n\xff\xfe bad\n")
    f = LineFile(path)
    assert f[0] == "ok"
    with pytest.raises(RecordError, match=rf"{path}:2: not UTF-8"):
        f[1]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        LineFile(str(tmp_path / "nope.txt"))


# ---------------------------------------------------------------- offsets cache
def test_offsets_cache_is_reused(tmp_path, monkeypatch):
    path = write_bytes(tmp_path / "t.txt", b"alpha\n\nbeta\ngamma\n")
    backdate(path)
    first = LineFile(path)
    assert os.path.isfile(path + ".offsets.npy")
    def no_scan(p):
        raise AssertionError("offsets rebuilt although the cache is valid")
    monkeypatch.setattr(records, "_build_offsets", no_scan)
    again = LineFile(path)
    assert [again[i] for i in range(len(again))] == ["alpha", "beta", "gamma"]
    np.testing.assert_array_equal(again.offsets, first.offsets)
    assert again.line_number(1) == 3


def test_offsets_cache_invalidated_by_rewrite(tmp_path):
    path = write_bytes(tmp_path / "t.txt", b"alpha\nbeta\ngamma\n")
    backdate(path)
    assert [LineFile(path)[i] for i in range(3)] == ["alpha", "beta", "gamma"]
    assert os.path.isfile(path + ".offsets.npy")
    write_bytes(path, b"one\n\ntwo\nthree and more\nfour\n")  # same path, new content
    f = LineFile(path)
    assert [f[i] for i in range(len(f))] == ["one", "two", "three and more", "four"]


def test_same_size_rewrite_within_timestamp_tick_not_served_stale(tmp_path):
    """A rewrite within the filesystem's timestamp granularity keeps size and
    mtime (simulated by restoring the mtime); the cache must not return the
    old file's offsets for the new content."""
    path = write_bytes(tmp_path / "t.txt", b"aaaa\nbb\n")
    mtime = os.stat(path).st_mtime_ns
    assert [LineFile(path)[i] for i in range(2)] == ["aaaa", "bb"]
    write_bytes(path, b"aa\nbbbb\n")  # same size, different line breaks
    os.utime(path, ns=(mtime, mtime))
    f = LineFile(path)
    assert [f[i] for i in range(len(f))] == ["aa", "bbbb"]


def test_corrupt_cache_is_rebuilt(tmp_path):
    path = write_bytes(tmp_path / "t.txt", b"x\ny\n")
    backdate(path)
    write_bytes(path + ".offsets.npy", b"not a numpy file")
    f = LineFile(path)
    assert [f[0], f[1]] == ["x", "y"]


# ---------------------------------------------------------------- processes
def _child_read(f, q):
    q.put([f[i] for i in range(len(f))])


def test_linefile_pickle_and_fork(tmp_path):
    path = write_bytes(tmp_path / "m.jsonl", JSONL)
    f = JsonlFile(path, required=("id",))
    assert f[1]["v"] == UNICODE  # the parent has an open handle now
    clone = pickle.loads(pickle.dumps(f))
    assert [clone[i] for i in range(3)] == [f[i] for i in range(3)]
    assert clone.required == ("id",)

    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_read, args=(f, q))
    p.start()
    got = q.get(timeout=60)
    p.join(timeout=60)
    assert p.exitcode == 0
    assert got == [f[i] for i in range(3)]
    assert f[2]["id"] == "x3"  # the parent's handle still works


# ---------------------------------------------------------------- images
def _png(path, rgb):
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))  # cv2 writes BGR arrays
    return str(path)


def test_read_rgb_channel_order(tmp_path):
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)     # red
    rgb[1, 2] = (0, 255, 0)     # green
    rgb[3, 5] = (10, 20, 200)   # blue-ish
    out = read_rgb(_png(tmp_path / "a.png", rgb))
    assert out.dtype == np.uint8 and out.shape == (4, 6, 3)
    np.testing.assert_array_equal(out, rgb)


def test_read_rgb_grayscale_png_becomes_rgb(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    path = str(tmp_path / "g.png")
    cv2.imwrite(path, gray)
    out = read_rgb(path)
    assert out.shape == (3, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


@pytest.mark.parametrize("case", ["missing", "empty", "truncated", "garbage", "text"])
def test_read_rgb_errors_name_the_file(tmp_path, case):
    good = open(_png(tmp_path / "ok.png", np.full((16, 16, 3), 77, np.uint8)), "rb").read()
    path = str(tmp_path / f"{case}.png")
    if case == "empty":
        write_bytes(path, b"")
    elif case == "truncated":
        write_bytes(path, good[:len(good) // 2])
    elif case == "garbage":
        write_bytes(path, good[:8] + np.random.default_rng(0).integers(0, 256, 200, dtype=np.uint8).tobytes())
    elif case == "text":
        write_bytes(path, b"this is not an image\n")
    with pytest.raises(ImageError) as e:
        read_rgb(path)
    assert path in str(e.value)


def test_to_chw_float_numbers():
    img = np.array([[[0, 128, 255], [255, 0, 51]]], dtype=np.uint8)  # H=1, W=2
    mean, std = [0.5, 0.4, 0.3], [0.5, 0.2, 0.1]
    out = to_chw_float(img, mean, std)
    assert out.shape == (3, 1, 2) and out.dtype == np.float32 and out.flags.c_contiguous
    expected = np.array([[[(0 / 255 - 0.5) / 0.5, (255 / 255 - 0.5) / 0.5]],
                         [[(128 / 255 - 0.4) / 0.2, (0 / 255 - 0.4) / 0.2]],
                         [[(255 / 255 - 0.3) / 0.1, (51 / 255 - 0.3) / 0.1]]])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    # mean = std = 0.5 maps [0, 255] to [-1, 1].
    np.testing.assert_allclose(to_chw_float(np.array([[[0, 255, 0]]], np.uint8), [0.5] * 3, [0.5] * 3).ravel(),
                               [-1, 1, -1])


def test_resize():
    img = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    assert resize(img, 16).shape == (16, 16, 3)
    assert resize(img, 64).shape == (64, 64, 3)
    same = np.zeros((8, 8, 3), np.uint8)
    assert resize(same, 8) is same
    flat = np.full((40, 30, 3), 90, np.uint8)  # a constant image stays constant
    assert np.all(resize(flat, 16) == 90)


def test_contrastive_view_shape_and_determinism():
    rng0 = np.random.default_rng(0)
    img = rng0.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    img[10:30, 5:25] = (220, 30, 30)
    aug = AugmentConfig()
    a = contrastive_view(img, 32, np.random.default_rng([1, 2, 3]), aug)
    b = contrastive_view(img, 32, np.random.default_rng([1, 2, 3]), aug)
    c = contrastive_view(img, 32, np.random.default_rng([1, 2, 4]), aug)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # Two views drawn from one generator differ too (the second continues the stream).
    rng = np.random.default_rng(5)
    v1, v2 = contrastive_view(img, 32, rng, aug), contrastive_view(img, 32, rng, aug)
    assert not np.array_equal(v1, v2)
