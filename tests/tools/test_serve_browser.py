"""The demo page end to end: tools/serve.py as a real server on a tiny
UNIMO-2 checkpoint, driven in a headless Chromium (tools/serve_browser.py).
The images the page returns for a caption must be the ones the model's own
scores put first, computed here one image at a time by
unimo2.retrieval.rank_captions (what tools/infer.py rank runs); an empty
caption must give a message, not a traceback.

Needs Debian's chromium and chromium-driver (bash tools/setup_browser.sh).
Skips without them on a developer's machine; fails in CI (CI=true)."""
import json
import os

import numpy as np
import pytest

from helpers import make_tiny_corpus, tiny_config, tiny_unimo2_weights

pytestmark = pytest.mark.slow


def _need_browser():
    import serve_browser
    reason = serve_browser.missing()
    if reason and os.environ.get("CI") == "true":
        pytest.fail(f"CI: {reason}")
    if reason:
        pytest.skip(reason)
    return serve_browser


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    sb = _need_browser()
    tmp = tmp_path_factory.mktemp("serve")
    corpus = make_tiny_corpus(str(tmp / "demo"))
    cfg_path = tiny_config(tmp, corpus, tmp / "run")
    weights, _ = tiny_unimo2_weights(tmp, cfg_path)
    port, log = sb.free_port(), str(tmp / "serve.log")
    server = sb.start_server(cfg_path, weights, port, log)
    driver = None
    try:
        url = f"http://127.0.0.1:{port}/"
        sb.wait_ready(server, url, log)
        driver = sb.browser(str(tmp / "chromium-profile"))
        yield {"sb": sb, "driver": driver, "url": url, "cfg": cfg_path, "weights": weights, "corpus": corpus,
               "log": log, "tmp": tmp}
    finally:
        if driver is not None:
            driver.quit()
        sb.stop_server(server)


def _expected_ids(page, caption, top=8, rerank=20):
    """The gallery ids the page must show: by ITC, the best ``rerank``
    re-ranked by ITM, each score from rank_captions on one image."""
    from unimo2.retrieval import rank_captions
    from vlcore.framework.config import load_config
    from vlcore.framework.schema import TrainConfig
    from vlcore.tasks import serving
    from vlcore.tasks.infer import load_model
    model, ctx, _ = load_model(load_config(TrainConfig, page["cfg"], [f"Global.checkpoint={page['weights']}"]))
    gallery = serving.read_gallery(os.path.join(page["corpus"], "pairs_test.jsonl"))
    itc = np.array([rank_captions(model, ctx, g.image, [caption], score="itc")[0][1] for g in gallery])
    itm = np.array([rank_captions(model, ctx, g.image, [caption], score="itm")[0][1] for g in gallery])
    short = np.argsort(-itc, kind="stable")[:rerank]
    order = short[np.argsort(-itm[short], kind="stable")][:top]
    return [gallery[i].id for i in order], itm[order]


def test_caption_search_shows_the_models_best_images(page):
    with open(os.path.join(page["corpus"], "pairs_test.jsonl")) as f:
        caption = json.loads(f.readlines()[1])["captions"][0]        # a held-out caption
    expected, itm = _expected_ids(page, caption)
    rows, message = page["sb"].search(page["driver"], page["url"], caption)
    page["driver"].save_screenshot(str(page["tmp"] / "search.png"))
    assert message == "", message
    assert [r[1] for r in rows] == expected, (rows, expected)
    np.testing.assert_allclose([float(r[2]) for r in rows], itm, atol=2e-3)    # the page rounds to 3 decimals
    assert os.path.getsize(page["tmp"] / "search.png") > 10_000


def test_empty_caption_gives_a_message_not_a_traceback(page):
    rows, message = page["sb"].search(page["driver"], page["url"], "")
    assert message == "empty caption: type one first" and rows == []
    source = page["driver"].page_source
    assert "Traceback" not in source and 'File "' not in source
    assert "Traceback" not in open(page["log"]).read()
