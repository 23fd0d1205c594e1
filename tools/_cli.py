"""Shared command-line plumbing of tools/train.py and tools/eval.py.

Sets the CPU thread defaults before Paddle is imported, registers the model
packages, and turns configuration and input errors into one-line messages
with a non-zero exit code instead of tracebacks.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from vlcore.env import apply_cpu_defaults, reexec_with_malloc_tuning  # noqa: E402

reexec_with_malloc_tuning()
apply_cpu_defaults()


def parse_args(description, extra=None):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("-c", "--config", required=True, help="YAML config file")
    p.add_argument("-o", "--override", action="append", default=[], nargs="+", metavar="KEY=VALUE",
                   help="override a config value, e.g. -o Global.output_dir=out -o Optimizer.lr=3e-5")
    if extra:
        extra(p)
    args = p.parse_args()
    args.override = [item for group in args.override for item in group]
    return args


def import_model_packages():
    """Import what registers the models, tasks and tools/infer.py subcommands."""
    import unimo.builders  # noqa: F401  (registers UNIMO and Unicoder-VL)
    import unimo2.builders  # noqa: F401  (registers UNIMO-2)
    import vlcore.data.finetune  # noqa: F401  (DataLoader.Train: Finetune, epoch-based task data)
    import unimo.seq2seq, unimo2.seq2seq  # noqa: F401,E401  (captioning / text generation tasks)
    import unimo.finetune_cls, unimo2.finetune_cls  # noqa: F401,E401  (VQA, SNLI-VE, GLUE, image classification)


def load(args):
    import_model_packages()
    from vlcore.config import load_config
    from vlcore.schema import TrainConfig
    return load_config(TrainConfig, args.config, args.override)


def run(fn):
    """Run ``fn()``; expected failures exit with status 2 and one line. A
    full disk anywhere (also in writers that do not name their file through
    vlcore.rundir) is "no space left on device while writing <path>"."""
    from vlcore.config import ConfigError
    from vlcore.data.images import ImageError
    from vlcore.data.records import RecordError
    from vlcore.engine import DataError
    from vlcore.rundir import DiskFullError, RunDirError, is_disk_full
    try:
        return fn()
    except (ConfigError, FileNotFoundError, ImageError, RecordError, DataError, ValueError, RunDirError) as e:
        _fail(e)
    except OSError as e:
        if not is_disk_full(e):
            raise
        _fail(DiskFullError(e.filename or "an output file"))


def _fail(e):
    if os.environ.get("VLCORE_DEBUG") == "1":  # developers: the full traceback
        raise e
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
