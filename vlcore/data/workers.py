"""The data loader over step-indexed batches, and its worker processes."""
import ctypes
import os
import signal
import sys


def step_loader(batches, num_workers):
    """A paddle DataLoader over ``batches`` (each item already a batch) read
    by ``num_workers`` forked processes (0: in this process).

    Before the workers fork, this process's OpenCV pool is brought down to
    one thread: a worker inherits the pool's state but not its threads, and
    re-sizing it there (as :func:`loader_worker_init` does) then waits
    forever on a condition variable of a thread that does not exist -- seen
    with OMP_NUM_THREADS=1 (what paddle.distributed.launch sets) once this
    process had resized images, e.g. in an evaluation.
    """
    import paddle
    if num_workers > 0:
        import cv2
        cv2.setNumThreads(1)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # workers fork
    loader = paddle.io.DataLoader(batches, batch_size=None, num_workers=num_workers, use_shared_memory=False,
                                  worker_init_fn=loader_worker_init)
    return _Finishing(loader, batches.finish) if hasattr(batches, "finish") else loader


class _Finishing:
    """The loader's batches, each passed through ``finish`` in this (the
    main) process: what is cheaper to do here than to ship from a worker,
    e.g. normalising uint8 pixels (a worker pickles a quarter of the bytes
    of float32 ones; Paddle's shared memory is off, see above)."""

    def __init__(self, loader, finish):
        self.loader, self.finish = loader, finish

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            yield batch if "error" in batch else self.finish(batch)


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
