"""Helpers for testing Plantain and engines built on it, shipped with the package.

Tiny random-weight checkpoints are built with the real classes, saved with ``save_pretrained``
and loaded back through the same loader a downloaded checkpoint uses — from a directory, or by
hub id from a hub cache with the hub offline (:func:`install_in_hub_cache`).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from plantain.engines.checkpoints import install_in_hub_cache
from plantain.types import InputImage


def build_once(builder: Callable[[Path], None], directory: Path) -> Path:
    """Build a checkpoint into ``directory`` unless one is already there."""
    if not (directory / "model_index.json").is_file():
        builder(directory)
    return directory


def make_input(
    width: int = 96,
    height: int = 64,
    color: tuple[int, int, int] = (200, 30, 30),
    fmt: str = "PNG",
    label: str = "input image",
) -> InputImage:
    """A small solid-colour input image encoded as ``fmt``."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format=fmt)
    return InputImage(data=buffer.getvalue(), label=label)


__all__ = ["build_once", "install_in_hub_cache", "make_input"]
