"""The demo page's helpers without a browser: input checks give one-line
messages (vlcore.tasks.serving), the registered infer subcommands are called
with their parsers' arguments, and the UNIMO-2 gallery search ranks as the
model's own scores say (unimo2.serve)."""
import json
import os
import types

import numpy as np
import pytest

from vlcore.tasks import serving

from helpers import make_tiny_corpus, tiny_config, tiny_unimo2_weights


def _png(path, w, h):
    from PIL import Image
    Image.new("RGB", (w, h), (200, 30, 30)).save(path)
    return str(path)


def test_check_image_accepts_an_image_and_refuses_bad_input(tmp_path):
    good = _png(tmp_path / "ok.png", 32, 32)
    assert serving.check_image(good) == good
    (tmp_path / "notes.png").write_text("not an image at all")
    cases = [("", "no image"), (str(tmp_path / "missing.png"), "not found"),
             (str(tmp_path / "notes.png"), "'notes.png' is not an image"),
             (_png(tmp_path / "wide.png", 5000, 4), "5000 x 4 pixels; the limit is 4096")]
    for path, message in cases:
        with pytest.raises(serving.InputError, match=message) as e:
            serving.check_image(path)
        assert "\n" not in str(e.value)
    from PIL import Image
    Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3)).save(tmp_path / "noise.png")  # ~12 KB
    with pytest.raises(serving.InputError, match=r"the image is 0\.01\d+ MB; the limit is 0\.001 MB"):
        serving.check_image(str(tmp_path / "noise.png"), max_mb=0.001)


def test_captions_and_text_checks():
    assert serving.parse_captions("a red circle\n\n  two blue squares  \n") == ["a red circle", "two blue squares"]
    for text in ("", "  \n \n", None):
        with pytest.raises(serving.InputError, match="no captions"):
            serving.parse_captions(text)
    with pytest.raises(serving.InputError, match="101 captions; the limit is 100"):
        serving.parse_captions("\n".join(["a circle"] * 101))
    assert serving.check_text("  a red circle ") == "a red circle"
    with pytest.raises(serving.InputError, match="empty question"):
        serving.check_text("   ", "question")
    with pytest.raises(serving.InputError, match="501 characters"):
        serving.check_text("x" * 501)


def test_read_gallery_from_pairs_and_task_manifests(tmp_path):
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "a", "image": "img/a.png", "captions": ["a red circle"]},
        {"id": "b", "image": "/abs/b.png", "captions": ["a blue square", "two things"]}]))
    g = serving.read_gallery(str(tmp_path / "pairs.jsonl"))
    assert [(x.id, x.image, x.key, x.captions) for x in g] == [
        ("a", str(tmp_path / "img" / "a.png"), "a", ["a red circle"]), ("b", "/abs/b.png", "b", ["a blue square", "two things"])]
    # a VQA manifest: one record per question, an image once; region key image_id
    (tmp_path / "vqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "1", "image": "images/x.png", "image_id": "x", "question": "what?"},
        {"id": "2", "image": "images/x.png", "image_id": "x", "question": "how many?"},
        {"id": "3", "image": "images/y.png", "image_id": "y", "question": "what?"}]))
    g = serving.read_gallery(str(tmp_path / "vqa.jsonl"), image_root="/data/demo", key="image_id")
    assert [(x.image, x.key, x.captions) for x in g] == [("/data/demo/images/x.png", "x", []),
                                                         ("/data/demo/images/y.png", "y", [])]
    (tmp_path / "text.jsonl").write_text(json.dumps({"id": "1", "text_a": "no image"}) + "\n")
    with pytest.raises(ValueError, match=r"text.jsonl:1: a gallery record needs an 'image' path"):
        serving.read_gallery(str(tmp_path / "text.jsonl"))


def test_infer_commands_are_called_with_their_parsers_arguments():
    import unimo  # noqa: F401  (registers the commands)
    import unimo2  # noqa: F401
    assert set(serving.offered_commands("UNIMO2")) == {"rank"}
    assert set(serving.offered_commands("UNIMO2ForClassification")) == {"answer"}
    assert set(serving.offered_commands("UNIMOForSeq2Seq")) == {"generate"}
    rank = serving.offered_commands("UNIMO")["rank"]
    args = serving.command_args(rank, image="test_000001", captions=["a red circle"])
    # what `tools/infer.py rank --image test_000001 --captions "a red circle"` parses
    assert vars(args) == {"image": "test_000001", "captions": ["a red circle"], "captions_file": "",
                          "features": "", "score": "", "top": 0}
    with pytest.raises(TypeError, match="no option question"):
        serving.command_args(rank, question="what?")
    ctx = types.SimpleNamespace(cfg=types.SimpleNamespace(Arch=types.SimpleNamespace(name="UNIMO2")))
    with pytest.raises(serving.InputError, match=r"\(Arch UNIMO2\) does not offer 'answer'; it needs a checkpoint "
                                                 r"of Arch UNIMO2ForClassification or UNIMOForClassification"):
        serving.run_command(None, ctx, "answer", image="x.png", question="what colour?")


def test_gallery_search_ranks_by_itc_then_itm(tmp_path):
    """GallerySearch against the model's own scores, computed one image at a
    time by unimo2.retrieval.rank_captions (what tools/infer.py rank runs)."""
    from unimo2 import serve as u2
    from unimo2.retrieval import rank_captions
    from vlcore.framework.config import load_config
    from vlcore.framework.schema import TrainConfig
    from vlcore.tasks.infer import load_model
    corpus = make_tiny_corpus(str(tmp_path / "demo"))
    cfg_path = tiny_config(tmp_path, corpus, tmp_path / "run")
    weights, _ = tiny_unimo2_weights(tmp_path, cfg_path)
    model, ctx, _ = load_model(load_config(TrainConfig, cfg_path, [f"Global.checkpoint={weights}"]))
    gallery = serving.read_gallery(os.path.join(corpus, "pairs_test.jsonl"))
    index = u2.GallerySearch(model, ctx, [g.image for g in gallery], batch_size=4)
    caption = gallery[2].captions[0]
    itc = np.array([rank_captions(model, ctx, g.image, [caption], score="itc")[0][1] for g in gallery])
    itm = np.array([rank_captions(model, ctx, g.image, [caption], score="itm")[0][1] for g in gallery])
    shortlist = np.argsort(-itc, kind="stable")[:3]
    expected = shortlist[np.argsort(-itm[shortlist], kind="stable")]
    hits = index.search(model, caption, top=2, rerank=3)
    assert [h.index for h in hits] == list(expected[:2])
    np.testing.assert_allclose([h.itm for h in hits], itm[expected[:2]], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose([h.itc for h in hits], itc[expected[:2]], rtol=1e-4, atol=1e-5)
    # the grounded tokens: the top-K entries of the accumulated score, best first
    tokens = u2.grounded_tokens(model, index.enc, gallery[0].image)
    assert len(tokens) == ctx.cfg.Arch.grounding.top_k
    scores = [s for _, s in tokens]
    assert scores == sorted(scores, reverse=True) and len({e for e, _ in tokens}) == len(tokens)
    words = u2.entry_words(model, index.enc, [c for g in gallery for c in g.captions], top=3)
    # each entry's words: those whose nearest entry it is (as in the grounded-dictionary figure)
    assert words and set(words) <= set(range(ctx.cfg.Arch.grounding.dict_size))
    assert all(1 <= len(w) <= 3 and all(isinstance(x, str) and x for x, _ in w) for w in words.values())
    rows = u2.grounded_token_rows(model, index.enc, gallery[0].image, words)
    assert [r[1] for r in rows] == [e for e, _ in tokens]
    for r in rows:
        shown = words.get(r[1], [])
        assert r[3] == (", ".join(f"{w} ({s:.1f})" for w, s in shown) or "(no word of the gallery is nearest to it)")
