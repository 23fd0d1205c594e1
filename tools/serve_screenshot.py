#!/usr/bin/env python
"""The docs' screenshot of the demo page (docs/images/serve_demo.png):
starts tools/serve.py on a checkpoint, types a held-out caption into
"Caption → images" in a headless Chromium and saves the page with its
results (the browser code of the browser test, tools/serve_browser.py):

    python tools/serve_screenshot.py            # the demo run, output/unimo2_demo

The default caption is one of the held-out split's (image test_000005) that
the demo run (seed 0) ranks first; the script fails if the page shows no
results. Needs Chromium (bash tools/setup_browser.sh).
"""
import argparse
import os
import sys
import tempfile

import serve_browser as sb

DEFAULT_CAPTION = "a black star and a red ring one above the other"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-c", "--config", default="configs/unimo2_demo.yaml")
    p.add_argument("--checkpoint", default="output/unimo2_demo")
    p.add_argument("--caption", default=DEFAULT_CAPTION)
    p.add_argument("--out", default=os.path.join(sb.ROOT, "docs", "images", "serve_demo.png"))
    args = p.parse_args()
    if sb.missing():
        sys.exit(f"error: {sb.missing()}")
    tmp = tempfile.mkdtemp(prefix="serve-screenshot-")
    port, log = sb.free_port(), os.path.join(tmp, "serve.log")
    server = sb.start_server(args.config, args.checkpoint, port, log)   # relative to the repository
    driver = None
    try:
        url = f"http://127.0.0.1:{port}/"
        sb.wait_ready(server, url, log)
        driver = sb.browser(os.path.join(tmp, "profile"))
        rows, message = sb.search(driver, url, args.caption)
        if message or not rows:
            sys.exit(f"error: the page showed no results: {message}")
        driver.execute_script("window.scrollTo(0, 0)")
        raw = os.path.join(tmp, "page.png")
        driver.save_screenshot(raw)
    finally:
        if driver is not None:
            driver.quit()
        sb.stop_server(server)
    from PIL import Image
    # 256 colours keep the flat UI and the demo's flat shapes, at a fraction of the size
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    Image.open(raw).convert("RGB").quantize(256).save(args.out, optimize=True)
    print(f"{args.out}: {os.path.getsize(args.out) // 1024} KB; top images {', '.join(r[1] for r in rows[:3])}")


if __name__ == "__main__":
    main()
