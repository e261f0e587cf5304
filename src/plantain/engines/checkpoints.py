"""Saving checkpoints Plantain builds itself, and placing them where a hub download would go."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def save_atomically(pipeline: Any, directory: Path) -> None:
    """``save_pretrained`` into a temporary sibling, then rename it into place.

    A killed build leaves nothing half-written behind.
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        pipeline.save_pretrained(staging)
        if directory.exists():  # another process finished first: keep theirs
            return
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install_in_hub_cache(checkpoint: Path, repo_id: str, cache_dir: Path) -> Path:
    """Copy a saved checkpoint into the hub cache layout, as ``snapshot_download`` would leave it.

    ``from_pretrained(repo_id, local_files_only=True)`` then finds it by hub id with the hub
    offline. Returns the snapshot directory.
    """
    repo_dir = cache_dir / ("models--" + repo_id.replace("/", "--"))
    commit = "0" * 40
    snapshot = repo_dir / "snapshots" / commit
    shutil.copytree(checkpoint, snapshot, dirs_exist_ok=True)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    return snapshot
