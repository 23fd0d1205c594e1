"""What a run tells its user: ``train.log``, ``metrics.jsonl``, VisualDL.

Only rank 0 writes files; every rank logs warnings to stderr so a failing
worker is visible. ``metrics.jsonl`` holds one JSON object per logged step or
evaluation, appended unbuffered, so a killed run keeps what it logged. Both
files are written through :class:`vlcore.framework.rundir.AppendFile`: a line that
hits a full disk is cut off again and the run stops with
:class:`vlcore.framework.rundir.DiskFullError` naming the file.
"""
import json
import logging
import os
import sys
import time

from vlcore.formats.sharded import atomic_open
from vlcore.framework.rundir import AppendFile, DiskFullError, fsync_dir, writing

_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class _LogFileHandler(logging.Handler):
    """``train.log``. Unlike logging.FileHandler, which prints a traceback
    for a failed write and carries on, a full disk stops the run: the
    DiskFullError propagates out of the logging call. Later records still
    reach the console but no longer the file."""

    def __init__(self, path):
        super().__init__()
        self.file = AppendFile(path)
        self.broken = False

    def emit(self, record):
        if self.broken:
            return
        text = self.format(record) + "\n"
        try:
            self.file.append(text)
        except DiskFullError:
            self.broken = True
            raise

    def close(self):
        self.file.close()
        super().close()


def setup_logger(output_dir=None, main=True, name="vlcore"):
    logger = logging.getLogger(name)
    for handler in logger.handlers:
        handler.close()
    logger.handlers.clear()
    logger.setLevel(logging.INFO if main else logging.WARNING)
    logger.propagate = False
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
    logger.addHandler(stream)
    if main and output_dir:
        os.makedirs(output_dir, exist_ok=True)
        path = os.path.join(output_dir, "train.log")
        with writing(path):
            fh = _LogFileHandler(path)
        fh.setFormatter(logging.Formatter(_FORMAT, "%Y-%m-%d %H:%M:%S"))
        logger.addHandler(fh)
    return logger


class MetricsWriter:
    """metrics.jsonl + VisualDL scalars (if VisualDL is installed and wanted)."""

    def __init__(self, output_dir, enabled=True, visualdl=True, logger=None):
        self.enabled = enabled
        self._fh = None
        self._vdl = None
        if not enabled:
            return
        os.makedirs(output_dir, exist_ok=True)
        self.path = os.path.join(output_dir, "metrics.jsonl")
        with writing(self.path):
            self._fh = AppendFile(self.path)
        if visualdl:
            try:
                from visualdl import LogWriter
                self._vdl = LogWriter(logdir=os.path.join(output_dir, "vdl"))
            except Exception as e:  # VisualDL is optional; the JSONL is not
                if logger:
                    logger.warning("VisualDL disabled (%s); metrics.jsonl is still written", e)

    def write(self, record, prefix="train"):
        if not self.enabled:
            return
        record = dict(record, time=round(time.time(), 3))
        self._fh.append(json.dumps(record, sort_keys=False) + "\n")
        if self._vdl is not None and "step" in record:
            for key, value in record.items():
                if key not in ("step", "time") and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._vdl.add_scalar(f"{prefix}/{key}", float(value), int(record["step"]))

    def rewind(self, step):
        """Drop the records of steps after ``step`` (an interrupted attempt's,
        which the run is about to repeat) and lines a kill cut short;
        rewrites the file atomically. Returns the number of lines dropped."""
        if not self.enabled or not os.path.isfile(self.path):
            return 0
        with open(self.path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
        kept = [line if line.endswith("\n") else line + "\n" for line in lines if _keep(line, step)]
        if len(kept) == len(lines):
            return 0
        self._fh.close()
        with writing(self.path):
            with atomic_open(self.path) as f:
                f.writelines(kept)
            fsync_dir(os.path.dirname(self.path))
        self._fh = AppendFile(self.path)
        return len(lines) - len(kept)

    def close(self):
        if self._fh:
            self._fh.close()
        if self._vdl is not None:
            self._vdl.close()


def _keep(line, step):
    if not line.strip():
        return False
    try:
        record = json.loads(line)
    except ValueError:
        return False  # a line a kill cut short
    return not (isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] > step)


def read_metrics(path):
    """Parse a metrics.jsonl (used by tests and plotting tools)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
