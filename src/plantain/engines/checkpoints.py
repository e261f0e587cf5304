"""Saving checkpoints Plantain builds itself, placing them where a hub download would go, and
finding a checkpoint a setting names."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import try_to_load_from_cache

from plantain.errors import MissingWeightsError

logger = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class SavedTogether:
    """A model and its tokenizer or processor, saved into one directory as a hub repository
    holds them (what :func:`save_atomically` takes for the tiny built-in checkpoints)."""

    model: Any
    companion: Any  # tokenizer, processor or image processor

    def save_pretrained(self, directory: Path) -> None:
        self.model.save_pretrained(directory)
        self.companion.save_pretrained(directory)


@dataclass(frozen=True)
class BuiltIn:
    """A random-weight checkpoint a setting may name (``tiny``): its directory under
    ``models_dir`` and what builds it there."""

    directory_name: str
    build: Callable[[Path], None]


@dataclass(frozen=True)
class NamedCheckpoint:
    """A transformers checkpoint a setting names, found the way the engines find theirs and
    never downloaded: a hub id read from the hub cache, a local directory, or a built-in
    random-weight one (built into ``models_dir`` on first use). The planner's model and the
    grounding reranker are both one."""

    setting: str  # the setting that names it, for errors
    name: str
    models_dir: Path
    hub_cache: Path
    built_in: Mapping[str, BuiltIn]
    holds: str  # what a directory must hold, in words, for errors
    otherwise: str  # the other way out, for errors ("set planner=off")

    def directory(self) -> Path | None:
        """The local directory it names (a built-in's in ``models_dir``), or None for a hub id."""
        if self.name in self.built_in:
            return self.models_dir / self.built_in[self.name].directory_name
        path = Path(self.name).expanduser()
        if path.is_absolute() or self.name.startswith((".", "~")) or path.is_dir():
            return path
        return None

    def present(self) -> bool:
        """Whether loading would find it (a built-in always: it is built when missing). Reads
        only the file system."""
        if self.name in self.built_in:
            return True
        directory = self.directory()
        if directory is not None:
            return (directory / "config.json").is_file()
        return isinstance(try_to_load_from_cache(self.name, "config.json", cache_dir=self.hub_cache), str)

    def resolve(self) -> str:
        """What ``from_pretrained`` loads: a directory (a built-in built first) or a cached hub
        id; MissingWeightsError naming the setting when it is not there."""
        directory = self.directory()
        if self.name in self.built_in and directory is not None:
            if not (directory / "config.json").is_file():
                logger.info("building the %s checkpoint for %s in %s", self.name, self.setting, directory)
                self.built_in[self.name].build(directory)
        elif not self.present():
            raise MissingWeightsError(self.missing_message())
        return str(directory) if directory is not None else self.name

    def unreadable(self, exc: OSError) -> MissingWeightsError:
        """The error for a checkpoint ``from_pretrained`` could not read (a file missing from it)."""
        return MissingWeightsError(f"{self.missing_message()} ({type(exc).__name__}: {exc})")

    def missing_message(self) -> str:
        if self.directory() is not None:
            return (
                f"setting {self.setting}: no checkpoint in {self.name} (config.json not found); point "
                f"it at a directory holding {self.holds}, or at a hub id in the hub cache, or "
                f"{self.otherwise}"
            )
        built_in = " or ".join(self.built_in)
        return (
            f"setting {self.setting}: {self.name} is not in the hub cache {self.hub_cache}, and the "
            f"server never downloads; fetch it first (hf download {self.name} --cache-dir "
            f"{self.hub_cache}), point {self.setting} at a local directory, use {built_in} "
            f"(random weights, for tests), or {self.otherwise}"
        )
