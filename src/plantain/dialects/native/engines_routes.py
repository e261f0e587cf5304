"""``GET /v1/engines``: what this server runs and what each engine takes, for a page or a client
that builds its form from the server (the playground does): the engines served, their tasks,
input limit, preset and previews, and the choices every request has (ratios, tiers, formats).

Only the served engines are listed (``serve_engines``, else the default engine): those a request
runs on without loading another model. Vendor model names are in ``GET /v1/models``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from plantain.dialects.deps import FrontDoorDep
from plantain.dialects.native import errors
from plantain.dialects.routing import dialect_route
from plantain.engines.base import Engine
from plantain.engines.cards import card
from plantain.imaging.sizes import ASPECT_RATIOS, TIERS
from plantain.types import MAX_IMAGES_PER_REQUEST, MEDIA_TYPES

router = APIRouter(tags=["engines"], route_class=dialect_route(errors.error_body))


@router.get("/v1/engines")
async def list_engines(door: FrontDoorDep) -> JSONResponse:
    settings = door.settings
    names = settings.serve_engines or [settings.default_engine]
    return JSONResponse(
        {
            "object": "list",
            "default": settings.default_engine,
            "data": [engine_card(door.registry.get(name), door.limits.max_input_images) for name in names],
            "aspect_ratios": ["auto", *ASPECT_RATIOS],
            "resolutions": list(TIERS),
            "output_formats": list(MEDIA_TYPES),
            "max_num_images": MAX_IMAGES_PER_REQUEST,
            "auth": bool(settings.api_keys),  # whether calls need a key (this one too, then)
        }
    )


def engine_card(engine: Engine, server_max_inputs: int) -> dict[str, Any]:
    """What a form needs of one engine (``plantain engines`` shows more); its input limit is the
    smaller of its own and the server's (``max_input_images``), the one a request meets."""
    caps = engine.capabilities
    return {
        "name": engine.name,
        "description": engine.description,
        "tasks": caps.tasks(),
        "max_input_images": min(caps.max_input_images, server_max_inputs),
        "steps": engine.preset.steps,
        "guidance": engine.preset.guidance,
        "previews": engine.makes_previews,
        "random_weights": engine.random_weights,
        **card(engine),  # licence, presets, LoRAs, step cache, how each tier is made
    }
