"""Run a tools/ script with a fault plan installed (see tests/fault_inject.py):

    VLCORE_NO_REEXEC=1 python train_with_faults.py PLAN_JSON tools/train.py -c cfg.yaml ...

PLAN_JSON holds the keyword arguments of ``fault_inject.inject``. The tool
runs in this process (no malloc re-exec, which would drop the plan).
"""
import importlib.util
import json
import os
import runpy
import sys

# fault_inject.py sits in tests/, which is not on this script's import path
# (nothing edits sys.path): load it from its file.
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("fault_inject", os.path.join(TESTS, "fault_inject.py"))
fault_inject = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fault_inject)


def main():
    assert os.environ.get("VLCORE_NO_REEXEC") == "1", "set VLCORE_NO_REEXEC=1"
    plan, script, args = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3:]
    sys.argv = [script] + args
    with fault_inject.inject(**plan):
        runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
