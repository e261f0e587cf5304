"""Which engines exist, and the one loaded instance of each.

Every family module exports ``FAMILIES`` (see ``engines/family.py``); :data:`FAMILIES` below is
the one list of them that the registry, the tests and the bench scripts read.
"""

from __future__ import annotations

import threading
from functools import partial
from typing import TYPE_CHECKING

from plantain.engines import flux1, flux2, longcat, qwen_image, qwen_image21, tiny, zimage
from plantain.engines.base import Engine
from plantain.engines.family import EngineFactory, Family
from plantain.engines.lora import check_names, check_quantization
from plantain.errors import ConfigurationError, UnknownEngineError
from plantain.settings import Settings

if TYPE_CHECKING:
    from plantain.providers.routing import AttemptSink

__all__ = ["BUILTIN_ENGINES", "FAMILIES", "EngineFactory", "EngineRegistry"]

FAMILIES: tuple[Family, ...] = (
    *flux2.FAMILIES,
    *qwen_image.FAMILIES,
    *qwen_image21.FAMILIES,
    *longcat.FAMILIES,
    *zimage.FAMILIES,
    *flux1.FAMILIES,
    *tiny.FAMILIES,
)

BUILTIN_ENGINES: dict[str, EngineFactory] = {entry.engine: entry.create for entry in FAMILIES}


class EngineRegistry:
    """Creates each engine on first use and hands out that same instance afterwards."""

    def __init__(self, settings: Settings, factories: dict[str, EngineFactory] | None = None) -> None:
        self.settings = settings
        check_names(settings)  # a LoRA name a request could never use
        check_quantization(settings)  # the operator's LoRAs on an fp8 transformer
        if factories is None:  # read when made, so that every engine in FAMILIES is served
            factories = {entry.engine: entry.create for entry in FAMILIES}
        self._factories = dict(factories)
        self._factories.update(_provider_factories(settings, self._factories))
        self._factories.update(_route_factories(settings, self._factories, self))
        self._engines: dict[str, Engine] = {}
        self._lock = threading.RLock()  # a route's members are made while it is made
        # Where routes report each member's try (the store's engine statistics); set by the
        # scheduler once it has a store, None before (and in the CLI: nothing to record into).
        self.attempts: AttemptSink | None = None

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


def _provider_factories(settings: Settings, engines: dict[str, EngineFactory]) -> dict[str, EngineFactory]:
    """An engine per entry of the ``providers`` setting (providers/; imported only when set)."""
    if not settings.providers:
        return {}
    from plantain.providers.kinds import engine_class

    factories: dict[str, EngineFactory] = {}
    for name, config in settings.providers.items():
        if name in engines:
            raise ConfigurationError(
                f"setting providers (PLANTAIN_PROVIDERS): {name!r} is already an engine here; "
                "give the provider another name",
                field="providers",
            )

        factories[name] = partial(engine_class(config.kind), config=config)
    return factories


def _route_factories(
    settings: Settings, engines: dict[str, EngineFactory], registry: EngineRegistry
) -> dict[str, EngineFactory]:
    """An engine per entry of the ``routes`` setting, over engines and providers (not routes)."""
    if not settings.routes:
        return {}
    from plantain.providers.routing import RoutedEngine

    factories: dict[str, EngineFactory] = {}
    for name, members in settings.routes.items():
        _check_route(name, members, engines)

        factories[name] = partial(RoutedEngine.of_registry, registry=registry, members=tuple(members))
    return factories


def _check_route(name: str, members: list[str], engines: dict[str, EngineFactory]) -> None:
    problem = None
    if name in engines:
        problem = f"{name!r} is already an engine here; give the route another name"
    elif not members:
        problem = f"route {name!r} lists no engines"
    elif unknown := [member for member in members if member not in engines]:
        problem = (
            f"route {name!r} names {', '.join(map(repr, unknown))}, which are not engines or "
            f"providers here (a route's members cannot be routes); known: {', '.join(engines)}"
        )
    elif twice := sorted({member for member in members if members.count(member) > 1}):
        problem = f"route {name!r} lists {', '.join(map(repr, twice))} more than once; name each engine once"
    if problem:
        raise ConfigurationError(f"setting routes (PLANTAIN_ROUTES): {problem}", field="routes")
