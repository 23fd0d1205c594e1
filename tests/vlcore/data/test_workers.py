"""The loader's worker processes after this process has used OpenCV's pool."""
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import numpy as np, cv2, paddle
    from vlcore.data.workers import step_loader
    x = np.random.rand(1500, 1500, 3).astype(np.float32)
    for _ in range(3):
        cv2.resize(x, (700, 700), interpolation=cv2.INTER_AREA)   # starts OpenCV's thread pool here
    class Batches(paddle.io.Dataset):
        def __len__(self):
            return 4
        def __getitem__(self, i):
            return {"ids": np.full([2], i, np.int64), "small": cv2.resize(x[:64, :64], (8, 8))}
    print(sorted(int(b["ids"].numpy()[0]) for b in step_loader(Batches(), 2)))
""")


def test_workers_start_after_opencv_resized_in_this_process():
    """With OMP_NUM_THREADS=1 (as paddle.distributed.launch sets it), a
    worker forked after OpenCV resized in the trainer hung for ever when it
    set its own thread count; the loader now brings the pool down first."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "[0, 1, 2, 3]"
