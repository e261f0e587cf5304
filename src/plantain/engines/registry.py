"""Which engines exist, and the one loaded instance of each.

Every family module exports ``FAMILIES`` (see ``engines/family.py``); :data:`FAMILIES` below is
the one list of them that the registry, the tests and the bench scripts read.
"""

from __future__ import annotations

import threading

from plantain.engines import flux1, flux2, qwen_image, tiny, zimage
from plantain.engines.base import Engine
from plantain.engines.family import EngineFactory, Family
from plantain.errors import UnknownEngineError
from plantain.settings import Settings

__all__ = ["BUILTIN_ENGINES", "FAMILIES", "EngineFactory", "EngineRegistry"]

FAMILIES: tuple[Family, ...] = (
    *flux2.FAMILIES,
    *qwen_image.FAMILIES,
    *zimage.FAMILIES,
    *flux1.FAMILIES,
    *tiny.FAMILIES,
)

BUILTIN_ENGINES: dict[str, EngineFactory] = {entry.engine: entry.create for entry in FAMILIES}


class EngineRegistry:
    """Creates each engine on first use and hands out that same instance afterwards."""

    def __init__(self, settings: Settings, factories: dict[str, EngineFactory] | None = None) -> None:
        self.settings = settings
        if factories is None:  # read when made, so that every engine in FAMILIES is served
            factories = {entry.engine: entry.create for entry in FAMILIES}
        self._factories = dict(factories)
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return list(self._factories)

    def get(self, name: str | None = None) -> Engine:
        """The engine called ``name`` (the default engine when None), created once."""
        name = name or self.settings.default_engine
        if name not in self._factories:
            raise UnknownEngineError(
                f"engine {name!r} is not known; available: {', '.join(self._factories)}",
                field="engine",
            )
        with self._lock:
            if name not in self._engines:
                self._engines[name] = self._factories[name](name, self.settings)
            return self._engines[name]

    def all(self) -> list[Engine]:
        return [self.get(name) for name in self._factories]
