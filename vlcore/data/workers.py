"""Set-up of data-loader worker processes."""
import ctypes
import signal
import sys


def loader_worker_init(worker_id):
    """Die with the trainer, and do not oversubscribe the cores.

    A trainer killed with SIGKILL cannot stop its loader workers; without
    PR_SET_PDEATHSIG they linger (and keep the trainer's stdout open).
    OpenCV's own thread pool would compete with the trainer's math threads.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    import cv2
    cv2.setNumThreads(1)
