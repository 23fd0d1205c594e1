"""Score image-caption pairs with an exported UNIMO-2 (``tools/export.py``).

Runs the saved program with Paddle Inference (no training code, no Python
model), reading images and tokenizing captions exactly as training and
evaluation do:

    python tools/predict.py --model output/export --pairs pairs.jsonl [--out scores.jsonl]

``--pairs`` is JSONL with ``{"image": PATH, "caption": TEXT}`` (or the pairs
manifest format, ``"captions": [...]``, one output per caption) or a TSV of
``image<TAB>caption``; relative image paths are taken from the file's
directory. Each output line holds the pair, ``itm_prob`` (softmax
probability of "match"), ``itm_logits`` and ``itc_cosine`` (cosine of the
ITC embeddings).
"""
import json
import os

import numpy as np

from vlcore.data.images import Preprocess
from vlcore.formats.jsonl import parse_line
from vlcore.text.tokenizer import load_tokenizer

from .inference import FORMAT, OUTPUTS


class UNIMO2Predictor:
    def __init__(self, model_dir, threads=None):
        meta_path = os.path.join(model_dir, "export.json")
        if not os.path.isfile(meta_path):
            raise FileNotFoundError(f"{model_dir}: no export.json (write one with tools/export.py)")
        with open(meta_path, encoding="utf-8") as f:
            self.meta = json.load(f)
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path}: format {self.meta.get('format')!r}, expected {FORMAT!r}")
        import paddle.inference as pi
        prefix = os.path.join(model_dir, self.meta["model"])
        program = next((prefix + ext for ext in (".json", ".pdmodel") if os.path.isfile(prefix + ext)), None)
        if program is None:
            raise FileNotFoundError(f"{prefix}.json: missing (the exported program)")
        config = pi.Config(program, prefix + ".pdiparams")
        config.disable_gpu()
        config.disable_glog_info()
        config.set_cpu_math_library_num_threads(threads or int(os.environ.get("OMP_NUM_THREADS", "1")))
        self._predictor = pi.create_predictor(config)
        self.tokenizer = load_tokenizer(os.path.join(model_dir, self.meta["tokenizer"]))

    def images(self, paths):
        m = self.meta
        preprocess = Preprocess(m["image_size"], m["image_mean"], m["image_std"], m.get("image_preprocess", "opencv"))
        return np.stack([preprocess(p) for p in paths])

    def texts(self, captions):
        tok, n = self.tokenizer, self.meta["max_len"]
        ids = np.full([len(captions), n], tok.pad_id, dtype=np.int64)
        for i, seq in enumerate(tok.encode_batch(list(captions))):
            seq = tok.build_input(seq, n)
            ids[i, :len(seq)] = seq
        return ids, ids != tok.pad_id

    def run(self, pixels, ids, mask):
        """Raw outputs for aligned rows: ``{name: array}`` (see OUTPUTS)."""
        for name, value in zip(self._predictor.get_input_names(), (pixels, ids, mask)):
            handle = self._predictor.get_input_handle(name)
            handle.reshape(list(value.shape))
            handle.copy_from_cpu(np.ascontiguousarray(value))
        self._predictor.run()
        outs = [self._predictor.get_output_handle(n).copy_to_cpu() for n in self._predictor.get_output_names()]
        return dict(zip(OUTPUTS, outs))

    def score(self, pairs, batch_size=16):
        """``pairs``: [(image path, caption)] -> one dict per pair."""
        results = []
        for s in range(0, len(pairs), batch_size):
            chunk = pairs[s:s + batch_size]
            ids, mask = self.texts([c for _, c in chunk])
            out = self.run(self.images([p for p, _ in chunk]), ids, mask)
            logits = out["itm_logits"].astype(np.float64)
            prob = np.exp(logits[:, 1] - np.logaddexp(logits[:, 0], logits[:, 1]))
            cosine = (out["image_embedding"] * out["text_embedding"]).sum(-1)
            for (path, caption), p, lg, c in zip(chunk, prob, logits, cosine):
                results.append({"image": path, "caption": caption, "itm_prob": float(p),
                                "itm_logits": [float(x) for x in lg], "itc_cosine": float(c)})
        return results


def read_pairs(path):
    """(image path, caption) pairs from JSONL or TSV; errors name file:line."""
    root = os.path.dirname(os.path.abspath(path))
    pairs = []
    with open(path, encoding="utf-8") as f:
        for num, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if line.lstrip().startswith("{"):
                rec = parse_line(line, f"{path}:{num}")
                caps = rec.get("captions", [rec["caption"]] if "caption" in rec else None)
                if "image" not in rec or not caps:
                    raise ValueError(f"{path}:{num}: needs 'image' and 'caption' (or 'captions')")
                image, caps = rec["image"], caps if isinstance(caps, list) else [caps]
            else:
                parts = line.split("\t")
                if len(parts) != 2:
                    raise ValueError(f"{path}:{num}: expected 'image<TAB>caption'")
                image, caps = parts[0], [parts[1]]
            image = image if os.path.isabs(image) else os.path.join(root, image)
            pairs += [(image, c) for c in caps]
    if not pairs:
        raise ValueError(f"{path}: no pairs")
    return pairs
