"""Peak resident memory of refusing decompression bombs, against decoding the same pixels.

    python bench/decode_bomb.py

Each case runs in a fresh process (peak RSS only grows), builds a small PNG that claims many
pixels, and reports its size, whether decode_image refused it, and how much the peak RSS rose.
"""

from __future__ import annotations

import io
import multiprocessing
import resource

from PIL import Image

CASES = [("9000x9000 1-bit", 9000, 9000), ("12000x12000 1-bit", 12000, 12000)]


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(width: int, height: int, decode_anyway: bool) -> str:
    from plantain.errors import PlantainError
    from plantain.imaging.codecs import decode_image
    from plantain.types import InputImage

    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, format="PNG")
    data = buffer.getvalue()
    before = _peak_mib()
    if decode_anyway:  # what the bytes cost without the header check
        Image.MAX_IMAGE_PIXELS = None
        Image.open(io.BytesIO(data)).convert("RGB")
        outcome = "decoded (no limit)"
    else:
        try:
            decode_image(InputImage(data=data, label="bomb"))
            outcome = "decoded"
        except PlantainError as exc:
            outcome = f"refused ({exc.code})"
    return f"{len(data) / 1024:7.1f} KiB  {outcome:28} peak RSS +{_peak_mib() - before:7.1f} MiB"


def main() -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, maxtasksperchild=1) as pool:
        for label, width, height in CASES:
            for decode_anyway in (False, True):
                line = pool.apply(_run, (width, height, decode_anyway))
                print(f"{label:34} {line}")


if __name__ == "__main__":
    main()
