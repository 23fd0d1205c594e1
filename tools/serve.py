#!/usr/bin/env python
"""A local demo web page of a checkpoint (Gradio, https://www.gradio.app):

    python tools/serve.py -c configs/unimo2_demo.yaml -o Global.checkpoint=output/unimo2_demo

then open http://127.0.0.1:7860. Tabs, by what the checkpoint's ``Arch.name``
offers: UNIMO-2 pre-trained or retrieval models rank captions for an image
(ITM and ITC), search the gallery with a caption (ITC, then the top 20
re-ranked by ITM) and show an image's grounded tokens; fine-tuned models
caption an image, answer a question (VQA) or judge a hypothesis (SNLI-VE)
through the registered ``tools/infer.py`` subcommands; UNIMO / Unicoder-VL
rank captions for an image of the region store. The gallery is the
config's ``DataLoader.Eval.path`` (``--gallery`` another manifest).
Local only: binds 127.0.0.1, never a share link, no analytics.
"""
import logging
import os
import signal
import sys
import time

from vlcore.framework import cli as _cli

_cli.setup_process()  # before Paddle is imported
# Before gradio is imported: no usage reports or version checks (nothing
# may be fetched from the network at run time).
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
import unimo  # noqa: E402,F401  (registers UNIMO and Unicoder-VL)
import unimo2  # noqa: E402,F401  (registers UNIMO-2)
from vlcore.tasks import serving  # noqa: E402

RERANK = 20     # how many ITC candidates the ITM re-ranks (the page says so)
TOP = 8         # images shown for a caption
CSS = ".thumbs img, #rank-image img, #ground-image img {image-rendering: pixelated}"  # the demo's 64 px images


def arguments(p):
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--gallery", default="", help="manifest of the gallery images (default: DataLoader.Eval.path)")
    p.add_argument("--gallery-root", default="", help="directory its relative image paths start from "
                   "(default: the config's image_root, else the manifest's directory)")


class Page:
    """What the page does, without Gradio: each method returns the outputs
    of one button and raises serving.InputError on bad input."""

    def __init__(self, cfg, gallery_path, gallery_root, log):
        from vlcore.tasks.infer import load_model
        self.cfg, self.log = cfg, log
        arch = cfg.Arch.name
        self.pixels = arch.startswith("UNIMO2")           # UNIMO-2 reads images; UNIMO region features
        t = time.time()
        self.model, self.ctx, self.source = load_model(cfg)
        self.commands = serving.offered_commands(arch)
        log.info(f"model: Arch {arch} from {self.source} ({time.time() - t:.1f} s); "
                 f"offers: {', '.join(sorted(self.commands)) or 'nothing the page can show'}")
        ev, task = cfg.DataLoader.Eval, getattr(cfg.DataLoader.Train, "task", None)
        root = gallery_root or getattr(ev, "image_root", "") or getattr(task, "image_root", "")
        key = getattr(ev, "key", "") or getattr(task, "key", "") or "id"
        self.gallery = serving.read_gallery(gallery_path, root, key)
        self.search_index = self.grounding_words = None
        if self.pixels and "rank" in self.commands:
            from unimo2 import serve as u2
            t = time.time()
            self.search_index = u2.GallerySearch(self.model, self.ctx, [g.image for g in self.gallery])
            if u2.has_grounding(self.model):
                self.grounding_words = u2.entry_words(self.model, self.search_index.enc,
                                                      [c for g in self.gallery for c in g.captions], top=5)
            log.info(f"gallery: {len(self.gallery)} images from {gallery_path} encoded in {time.time() - t:.1f} s")
        else:
            log.info(f"gallery: {len(self.gallery)} images from {gallery_path}")
        self.task = getattr(task, "task", "") if "answer" in self.commands else ""

    # ---- UNIMO-2: image -> captions, caption -> images, grounded tokens
    def rank(self, image, captions_text):
        from unimo2.retrieval import rank_captions
        captions = serving.parse_captions(captions_text)
        if self.pixels:
            image = serving.check_image(image)
            itm = rank_captions(self.model, self.ctx, image, captions, score="itm")
            itc = dict(rank_captions(self.model, self.ctx, image, captions, score="itc"))
            itc_rank = {c: r for r, c in enumerate(sorted(itc, key=lambda c: -itc[c]), 1)}
            rows = [[r, c, round(s, 3), round(itc[c], 3), itc_rank[c]] for r, (c, s) in enumerate(itm, 1)]
        else:       # UNIMO / Unicoder-VL: the registered rank command on a region-store key
            result = serving.run_command(self.model, self.ctx, "rank", image=self._key(image), captions=captions)
            rows = [[r, x["caption"], round(x["score"], 3)] for r, x in enumerate(result["ranking"], 1)]
        self.log.info(f"rank: {len(captions)} captions for {os.path.basename(str(image))}")
        return rows

    def search(self, caption):
        caption = serving.check_text(caption)
        hits = self.search_index.search(self.model, caption, top=TOP, rerank=RERANK)
        self.log.info(f"search {caption!r}: {', '.join(self.gallery[h.index].id for h in hits[:3])} ...")
        thumbs = [(self.gallery[h.index].image, f"#{r} {self.gallery[h.index].id}")
                  for r, h in enumerate(hits, 1)]
        rows = [[r, self.gallery[h.index].id, round(h.itm, 3), round(h.itc, 3)] for r, h in enumerate(hits, 1)]
        return thumbs, rows

    def grounded(self, image):
        from unimo2.serve import grounded_token_rows
        image = serving.check_image(image)
        return grounded_token_rows(self.model, self.search_index.enc, image, self.grounding_words)

    # ---- fine-tuned models: the registered tools/infer.py subcommands
    def caption(self, image):
        result = serving.run_command(self.model, self.ctx, "caption", image=self._image(image), n_best=3)
        return [[c["text"], round(c["score"], 3)] for c in result["captions"]]

    def answer(self, image, text):
        field = "question" if self.task == "vqa" else "text"
        text = serving.check_text(text, "question" if self.task == "vqa" else "hypothesis")
        result = serving.run_command(self.model, self.ctx, "answer", image=self._image(image), **{field: text})
        return [[x["label"], round(x["prob"], 3)] for x in result["ranking"]]

    def _image(self, image):
        return serving.check_image(image) if self.pixels else self._key(image)

    def _key(self, key):
        if not key:
            raise serving.InputError("no image: pick one of the region store's images")
        return key


def failure_message(e, log):
    """One line for the page: the error of bad input as it is, anything else
    named by its type (the traceback goes to the server's log only)."""
    if isinstance(e, (ValueError, FileNotFoundError)):
        return " ".join(str(e).split())
    log.error("request failed", exc_info=e)
    return f"internal error ({type(e).__name__}); the server's log has the details"


def build(page):
    import gradio as gr
    p, n = page, len(page.gallery)
    examples = [[g.image] for g in p.gallery]
    keys = [g.key for g in p.gallery]

    def guarded(fn, n_out):
        """Run ``fn``; on failure clear its outputs and show one line (a
        toast and the tab's message box), never a traceback."""
        def run(*args):
            try:
                out = fn(*args)
                return (*(out if isinstance(out, tuple) else (out,)), "")
            except Exception as e:  # noqa: BLE001 -- the page must answer every request
                msg = failure_message(e, p.log)
                gr.Warning(msg)
                return (*([None] * n_out), f"**{msg}**")
        return run

    def image_input(elem_id):
        if p.pixels:
            box = gr.Image(type="filepath", sources=["upload"], label="image (pick an example or upload, "
                           f"at most {serving.MAX_UPLOAD_MB} MB)", height=240, elem_id=elem_id)
            gr.Examples(examples, inputs=[box], label=f"gallery ({n} held-out images)", examples_per_page=16)
            return box
        return gr.Dropdown(keys, value=keys[0], label="image: its key in the region store", elem_id=elem_id)

    with gr.Blocks(title="UNIMO family demo") as ui:
        arch = p.cfg.Arch.name
        gr.Markdown(f"## {arch} &nbsp; `{p.source}`\n{availability(p)}")
        with gr.Tabs():
            if "rank" in p.commands:
                with gr.Tab("Image → captions"):
                    image = image_input("rank-image")
                    default = "\n".join(g.captions[0] for g in p.gallery[:5] if g.captions)
                    text = gr.Textbox(default, lines=5, label="captions, one per line", elem_id="rank-captions")
                    go = gr.Button("Rank the captions", variant="primary", elem_id="rank-button")
                    headers = (["rank", "caption", "ITM margin", "ITC cosine", "ITC rank"] if p.pixels
                               else ["rank", "caption", "score"])
                    table = gr.Dataframe(headers=headers, interactive=False, elem_id="rank-table",
                                         label="ranked by ITM (grounded transformer match); ITC: dual encoder"
                                         if p.pixels else "ranked by the rank command's default score")
                    msg = gr.Markdown(elem_id="rank-message")
                    go.click(guarded(p.rank, 1), [image, text], [table, msg])
            if p.search_index is not None:
                with gr.Tab("Caption → images"):
                    gr.Markdown(f"The caption is compared with all {n} gallery images by ITC (dual-encoder "
                                f"cosine), then the best {RERANK} are re-ranked by ITM (the grounded "
                                f"transformer's matching margin); the best {TOP} are shown.")
                    query = gr.Textbox(label="caption", elem_id="search-caption",
                                       placeholder="e.g. " + (p.gallery[0].captions or ["a red circle"])[0])
                    go = gr.Button("Search the gallery", variant="primary", elem_id="search-button")
                    thumbs = gr.Gallery(label="best images", columns=TOP, height=210, object_fit="contain",
                                        elem_id="search-gallery", elem_classes=["thumbs"])
                    table = gr.Dataframe(headers=["rank", "image", "ITM margin", "ITC cosine"], interactive=False,
                                         elem_id="search-table")
                    msg = gr.Markdown(elem_id="search-message")
                    for trigger in (go.click, query.submit):
                        trigger(guarded(p.search, 2), [query], [thumbs, table, msg])
            if p.grounding_words is not None:
                with gr.Tab("Grounded tokens"):
                    gr.Markdown("The image's grounded tokens: the top-K dictionary entries by accumulated "
                                "score (Eq. 2 over its patches), each with the gallery-caption words most "
                                "similar to it (Eq. 1, mean over occurrences).")
                    image = image_input("ground-image")
                    go = gr.Button("Show the grounded tokens", variant="primary", elem_id="ground-button")
                    table = gr.Dataframe(headers=["rank", "entry", "score", "top words"], interactive=False,
                                         elem_id="ground-table")
                    msg = gr.Markdown(elem_id="ground-message")
                    go.click(guarded(p.grounded, 1), [image], [table, msg])
            if "caption" in p.commands:
                with gr.Tab("Caption the image"):
                    image = image_input("caption-image")
                    go = gr.Button("Caption", variant="primary", elem_id="caption-button")
                    table = gr.Dataframe(headers=["caption", "score"], interactive=False, elem_id="caption-table",
                                         label="beam search, 3 best")
                    msg = gr.Markdown(elem_id="caption-message")
                    go.click(guarded(p.caption, 1), [image], [table, msg])
            if p.task in ("vqa", "snli_ve"):
                vqa = p.task == "vqa"
                with gr.Tab("Question answering (VQA)" if vqa else "Visual entailment (SNLI-VE)"):
                    image = image_input("answer-image")
                    text = gr.Textbox(label="question" if vqa else "hypothesis", elem_id="answer-text")
                    go = gr.Button("Answer" if vqa else "Judge", variant="primary", elem_id="answer-button")
                    table = gr.Dataframe(headers=["answer" if vqa else "label", "probability"], interactive=False,
                                         elem_id="answer-table")
                    msg = gr.Markdown(elem_id="answer-message")
                    go.click(guarded(p.answer, 1), [image, text], [table, msg])
    return ui


def availability(p):
    """What this checkpoint offers on the page and what it does not, and why."""
    notes = []
    if not p.pixels:
        notes.append("UNIMO / Unicoder-VL read region features: the page takes images already in the region "
                     "store (by key); no uploads (they would need the detector, `data_prep/region_extraction.py`),"
                     " no caption → images search and no grounded tokens (UNIMO has no grounded dictionary).")
    elif "rank" in p.commands and p.grounding_words is None:
        notes.append("No grounded-tokens tab: this model has no top-K grounded dictionary (the paper's baseline "
                     "or the 1-to-1 ablation).")
    if "rank" not in p.commands:
        notes.append("A fine-tuned checkpoint: no image-caption ranking or gallery search (a pre-trained or "
                     "retrieval checkpoint has them).")
    if "answer" in p.commands and p.task not in ("vqa", "snli_ve"):
        notes.append(f"Task {p.task!r} is not on the page: `tools/infer.py answer` runs it.")
    missing = [what for cmd, what in (("caption", "captioning"), ("answer", "question answering / SNLI-VE"))
               if cmd not in p.commands]
    if missing:
        notes.append(f"Not offered by this checkpoint: {', '.join(missing)} (they need a model fine-tuned for it, "
                     "e.g. `configs/unimo2/vqa_demo.yaml`).")
    return "\n\n".join(notes)


def main():
    from vlcore.framework.runlog import setup_logger
    args = _cli.parse_args("A local demo web page of a checkpoint (Gradio).", arguments)
    log = setup_logger(None, name="vlcore.serve")
    logging.getLogger("httpx").setLevel(logging.WARNING)   # Gradio's start-up self-checks, one line each

    def go():
        cfg = _cli.load(args)
        gallery = args.gallery or cfg.DataLoader.Eval.path
        if not gallery:
            raise ValueError("no gallery: --gallery MANIFEST (the config has no DataLoader.Eval.path)")
        page = Page(cfg, gallery, args.gallery_root, log)
        # Paddle's fatal-signal handler prints a C++ "traceback" when the
        # server is stopped (kill, the test's terminate): a stop is no failure
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        import gradio as gr
        dirs = sorted({os.path.dirname(g.image) for g in page.gallery})
        gr.set_static_paths(dirs)           # the gallery's files may be served, nothing else of the disk
        ui = build(page)
        log.info(f"serving on http://{args.host}:{args.port} (Ctrl+C stops)")
        try:
            ui.queue(default_concurrency_limit=1).launch(
                server_name=args.host, server_port=args.port, share=False, inbrowser=False, ssr_mode=False,
                max_file_size=f"{serving.MAX_UPLOAD_MB}mb", allowed_paths=dirs, css=CSS, quiet=True)
        except OSError as e:    # e.g. the port is taken
            raise ValueError(f"cannot serve on {args.host}:{args.port}: {e}") from None
    _cli.run(go)


if __name__ == "__main__":
    sys.exit(main())
