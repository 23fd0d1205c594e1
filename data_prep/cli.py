"""The one error convention of the data-preparation command lines."""
import os
import sys


def run_cli(fn, args, errors):
    """Run ``fn(args)``; return exit status 0, or 2 after one line on stderr
    when it raises one of ``errors`` (expected input and job errors).
    ``VLCORE_DEBUG=1`` shows the traceback instead, as in the tools/ CLIs."""
    try:
        fn(args)
    except errors as e:
        if os.environ.get("VLCORE_DEBUG") == "1":
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
