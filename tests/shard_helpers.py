"""Tar shards written the way the public tools write them, for the tests."""
import io
import json
import os
import tarfile
import time


def write_tar(path, members, mode="w", age=10):
    """A tar of ``(name, bytes)`` members, its mtime ``age`` seconds in the
    past (an index of a file that new is not cached)."""
    with tarfile.open(path, mode) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    old = time.time() - age
    os.utime(path, (old, old))
    return str(path)


def img2dataset_shard(directory, shard, n, stats=True, image=None):
    """Shard ``shard`` as img2dataset writes it with --output_format
    webdataset (rom1504/img2dataset writer.py WebDatasetSampleWriter,
    downloader.py compute_key, logger.py write_stats): ``NNNNN.tar`` with
    ``{key}.jpg/.txt/.json`` (key: shard id then the position, 5 + 4
    digits), ``NNNNN.parquet`` and, once finished, ``NNNNN_stats.json``."""
    members = []
    for k in range(n):
        key = f"{shard:05d}{k:04d}"
        meta = {"url": f"http://example.invalid/{key}.jpg", "caption": f"caption {shard} {k}", "key": key,
                "status": "success", "error_message": None, "width": 8, "height": 8,
                "original_width": 16, "original_height": 16, "exif": "{}"}
        data = image(shard, k) if image else b"\xff\xd8jpeg" + bytes([k % 256])
        members += [(f"{key}.jpg", data), (f"{key}.txt", f"caption {shard} {k}".encode()),
                    (f"{key}.json", json.dumps(meta, indent=4).encode())]
    path = write_tar(os.path.join(str(directory), f"{shard:05d}.tar"), members)
    with open(os.path.join(str(directory), f"{shard:05d}.parquet"), "wb") as f:
        f.write(b"PAR1")  # not read: the stats file says what a shard holds
    if stats:
        with open(os.path.join(str(directory), f"{shard:05d}_stats.json"), "w") as f:
            json.dump({"count": n + 2, "successes": n, "failed_to_download": 2, "failed_to_resize": 0,
                       "duration": 1.0, "start_time": 0.0, "end_time": 1.0, "status_dict": {"success": n}},
                      f, indent=4)
    return path
