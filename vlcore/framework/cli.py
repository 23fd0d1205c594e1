"""Shared command-line plumbing of the tools (train, eval, infer, export...).

:func:`setup_process` sets the CPU thread defaults before Paddle is imported
(call it first); :func:`load` reads and validates the config (the tools
import ``unimo`` and ``unimo2`` first, which registers the families);
:func:`run` turns configuration and input errors into one-line messages with
a non-zero exit code instead of tracebacks.
"""
import argparse
import os
import sys

from vlcore.framework.env import apply_cpu_defaults, reexec_with_malloc_tuning


def setup_process():
    """Before Paddle is imported: the allocator tuning (may re-exec the
    process) and the CPU thread defaults."""
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


def load(args):
    """The validated config of ``-c`` and ``-o``; the model families must be
    imported (registered) first: the tools ``import unimo, unimo2``."""
    from vlcore.framework.config import load_config
    from vlcore.framework.schema import TrainConfig
    return load_config(TrainConfig, args.config, args.override)


def run(fn):
    """Run ``fn()``; expected failures exit with status 2 and one line. A
    full disk anywhere (also in writers that do not name their file through
    vlcore.framework.rundir) is "no space left on device while writing <path>"."""
    from vlcore.framework.config import ConfigError
    from vlcore.framework.engine import DataError
    from vlcore.framework.rundir import DiskFullError, RunDirError, is_disk_full
    try:
        return fn()
    # ValueError covers the input errors of the data layer (ImageError,
    # RecordError, DamagedFileError, ConversionError...), all one line.
    except (ConfigError, FileNotFoundError, DataError, ValueError, RunDirError) as e:
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
