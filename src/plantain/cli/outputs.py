"""Where the CLI writes images, and which format a path asks for."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from plantain.errors import InvalidRequestError
from plantain.types import MEDIA_TYPES

MEDIA_TYPE_FORMATS = {media: fmt for fmt, media in MEDIA_TYPES.items()}
SUFFIX_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp", ".avif": "avif"}
FORMAT_SUFFIXES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "avif": ".avif"}


def pick_format(requested: str | None, output: Path | None) -> str:
    """``--format`` if given, else the output file's suffix, else png; a mismatch is an error."""
    from_suffix = SUFFIX_FORMATS.get(output.suffix.lower()) if output is not None else None
    if requested is None:
        return from_suffix or "png"
    normalised = "jpeg" if requested.lower() == "jpg" else requested.lower()
    if from_suffix is not None and from_suffix != normalised:
        raise InvalidRequestError(
            f"--format {requested} does not match the output file {output}; "
            f"use a {FORMAT_SUFFIXES.get(normalised, '.' + normalised)} name or drop --format",
            field="output_format",
        )
    return normalised


def output_paths(output: Path | None, seeds: Sequence[int], output_format: str) -> list[Path]:
    """One path per image (by its seed): OUT for one image, OUT-1…OUT-n for several,
    DIR/plantain-SEED.ext in a directory (or the current one when OUT is None)."""
    suffix = FORMAT_SUFFIXES.get(output_format, ".png")
    if output is None or output.is_dir() or str(output).endswith(("/", "\\")):
        directory = output or Path(".")
        return [directory / f"plantain-{seed}{suffix}" for seed in seeds]
    if len(seeds) == 1:
        return [output]
    stem = output.with_suffix("")
    return [
        stem.with_name(f"{stem.name}-{index}{output.suffix or suffix}") for index in range(1, len(seeds) + 1)
    ]
