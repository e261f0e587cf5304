"""The record each family module exports, so that the registry, the tests and the bench scripts
read one list of engines instead of keeping their own copies of it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plantain.engines.base import Engine
from plantain.settings import Settings

EngineFactory = Callable[[str, Settings], Engine]
"""Makes the engine called (name, settings); loads nothing."""

TinyBuilder = Callable[[Path], None]
"""Saves a random-weight checkpoint of the family's architecture at tiny size into a directory."""


@dataclass(frozen=True)
class Family:
    """One served engine of a model family: its name, constructor, checkpoint and tiny twin.

    A family module exports ``FAMILIES`` (a tuple of these, one per engine it serves);
    ``engines/registry.py`` lists the modules once.
    """

    engine: str  # the name requests and the CLI use
    create: EngineFactory
    hub_id: str | None  # the checkpoint's hub repository; None where it is built locally (tiny)
    build_tiny: TinyBuilder  # the same architecture at tiny size, random weights: tests, CPU runs
    # Preset call arguments that ``create``'s engine needs on the tiny checkpoint (e.g. text-encoder
    # layers it lacks), and that keep the tiny runs short.
    tiny_call_kwargs: Mapping[str, Any] = field(default_factory=dict)
