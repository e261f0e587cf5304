"""Output files on local disk against an S3-compatible bucket: put, get and delete of one image.

    python bench/file_storage.py --repeats 20                      # local disk only
    PLANTAIN_STORAGE_URL=s3://bucket/bench PLANTAIN_S3_ENDPOINT_URL=http://127.0.0.1:8333 \\
    PLANTAIN_S3_ACCESS_KEY_ID=... PLANTAIN_S3_SECRET_ACCESS_KEY=... python bench/file_storage.py

Goes through the code the server runs (``storage.blobs.open_blobs``): a durable local write
(fsync) and boto3 ``put_object``/``get_object``/``delete_object``. The payload is a 1K PNG of
noise (about 3 MB: the worst case, what the tiny engine paints). Prints min/median/max
milliseconds per operation after one warm-up; compare the two stores within one run.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from plantain.settings import Settings
from plantain.storage.blobs import Blobs, LocalBlobs, open_blobs


def payload() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def timed(
    operation: Callable[[], object], repeats: int, before: Callable[[], object] = lambda: None
) -> list[float]:
    before()
    operation()  # warm-up
    times = []
    for _ in range(repeats):
        before()  # not timed
        started = time.perf_counter()
        operation()
        times.append((time.perf_counter() - started) * 1000)
    return times


def measure(name: str, blobs: Blobs, data: bytes, repeats: int) -> None:
    key = f"bench-{time.time_ns()}"
    rows = {
        "put": timed(lambda: blobs.put(key, data, "image/png"), repeats),
        "get": timed(lambda: blobs.get(key), repeats),
        "delete": timed(lambda: blobs.delete(key), repeats, before=lambda: blobs.put(key, data, "image/png")),
    }
    for operation, times in rows.items():
        low, mid, high = min(times), statistics.median(times), max(times)
        print(f"{name:<40} {operation:<7} {low:8.1f} {mid:8.1f} {high:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    data = payload()
    print(f"payload {len(data)} bytes, {args.repeats} repeats; ms: min median max")
    with tempfile.TemporaryDirectory() as directory:
        measure(f"local {directory}", LocalBlobs(Path(directory)), data, args.repeats)
        settings = Settings(data_dir=Path(directory))
        if settings.storage_url is not None:
            blobs = open_blobs(settings)
            blobs.check()
            measure(blobs.describe(), blobs, data, args.repeats)


if __name__ == "__main__":
    main()
