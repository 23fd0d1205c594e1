"""Small caption corpora for the rewriting tests, in the pairs-manifest format."""
import json
import os
import random
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NOUNS = ["dog", "cat", "man", "woman", "horse", "car", "bus", "table", "boat", "bird", "elephant",
         "umbrella", "apple", "train", "kite", "pizza", "giraffe", "bench", "clock", "owl"]
ADJS = ["red", "small", "large", "old", "young", "wooden", "white", "black", "orange", "empty"]
PLACES = ["street", "beach", "field", "kitchen", "park", "river", "road", "room"]
VERBS = ["sitting on", "standing near", "next to", "in front of", "riding", "holding", "behind"]


def caption(rng):
    a = f"{rng.choice(['a', 'the'])} {rng.choice(ADJS)} {rng.choice(NOUNS)}"
    b = f"{rng.choice(['a', 'the'])} {rng.choice(ADJS)} {rng.choice(NOUNS)}"
    tail = f" in the {rng.choice(PLACES)}" if rng.random() < 0.5 else ""
    return f"{a} {rng.choice(VERBS)} {b}{tail}".capitalize()


def write_pairs(path, num_images, per_image=3, seed=0, unique=True, extra=()):
    """A pairs manifest of ``num_images`` records; with ``unique`` no caption
    text repeats in the corpus. ``extra`` records are appended as given."""
    rng = random.Random(seed)
    seen, records = set(), []
    for i in range(num_images):
        caps = []
        while len(caps) < per_image:
            c = caption(rng)
            if unique and c.lower() in seen:
                continue
            seen.add(c.lower())
            caps.append(c)
        records.append({"id": f"img{i:04d}", "image": f"images/{i:04d}.jpg", "captions": caps})
    records.extend(extra)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return records


def read_jsonl(paths):
    out = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            out.extend(json.loads(line) for line in f if line.strip())
    return out


def shard_files(directory, name):
    return sorted(os.path.join(directory, f) for f in os.listdir(directory)
                  if f.startswith(name + "-") and f.endswith(".jsonl"))


def run_module(module, args, timeout=300, **env):
    e = dict(os.environ)
    e.setdefault("OMP_NUM_THREADS", "1")
    e.pop("DATA_PREP_KILL_AFTER_SHARDS", None)
    e.update({k: str(v) for k, v in env.items()})
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=e,
                          capture_output=True, text=True, timeout=timeout)
