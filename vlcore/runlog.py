"""What a run tells its user: ``train.log``, ``metrics.jsonl``, VisualDL.

Only rank 0 writes files; every rank logs warnings to stderr so a failing
worker is visible. ``metrics.jsonl`` holds one JSON object per logged step or
evaluation, appended and flushed, so a killed run keeps what it logged.
"""
import json
import logging
import os
import sys
import time

_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def setup_logger(output_dir=None, main=True, name="vlcore"):
    logger = logging.getLogger(name)
    logger.handlers.clear()
    logger.setLevel(logging.INFO if main else logging.WARNING)
    logger.propagate = False
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
    logger.addHandler(stream)
    if main and output_dir:
        os.makedirs(output_dir, exist_ok=True)
        fh = logging.FileHandler(os.path.join(output_dir, "train.log"), encoding="utf-8")
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
        self._fh = open(os.path.join(output_dir, "metrics.jsonl"), "a", encoding="utf-8")
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
        self._fh.write(json.dumps(record, sort_keys=False) + "\n")
        self._fh.flush()
        if self._vdl is not None and "step" in record:
            for key, value in record.items():
                if key not in ("step", "time") and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._vdl.add_scalar(f"{prefix}/{key}", float(value), int(record["step"]))

    def close(self):
        if self._fh:
            self._fh.close()
        if self._vdl is not None:
            self._vdl.close()


def read_metrics(path):
    """Parse a metrics.jsonl (used by tests and plotting tools)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
