"""The arena's API under ``/v1/arena`` (docs/arena.md), in the task API's error envelope.

``POST /v1/arena/pairs`` runs one prompt on two contestants and answers the pair with its sides
by position only; ``GET`` it again to see them finish; ``POST …/vote`` records the pair's one
vote and names the contestants. ``/leaderboard`` rates them, ``/prompts`` imports and lists
prompt sets, ``/export`` gives every vote as JSON or CSV. The web page at ``/arena`` is built on
these and nothing else.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plantain.arena import export
from plantain.arena.prompt_sets import SUGGESTED_CATEGORIES, normalize_category, parse_prompt_set
from plantain.arena.rating import CHOICES
from plantain.arena.service import Arena, PairSpec
from plantain.dialects import openapi
from plantain.dialects.deps import CallerKey, FrontDoorDep
from plantain.dialects.native import convert, errors
from plantain.dialects.routing import dialect_route
from plantain.dialects.wire import load_json, validation_error
from plantain.errors import InvalidRequestError, PlantainError
from plantain.storage.arena import ArenaPair

# A pair's fields are named as its body names them: a core check's ``size`` is ``resolution``.
ARENA_FIELDS = {"size": "resolution", "options.steps": "steps"}


def error_body(error: PlantainError) -> tuple[int, dict[str, Any]]:
    return errors.envelope(error.renamed(ARENA_FIELDS))


router = APIRouter(tags=["arena"], route_class=dialect_route(error_body))

EXPORT_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8"}
PROMPT_FILE_TYPES = ("application/json", "application/x-ndjson", "text/csv", "text/plain")
DEFAULT_SET = "imported"
MAX_SET_NAME = 80
Body = TypeVar("Body", bound=BaseModel)


class PairCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str | None = None  # absent: the next prompt of the imported sets
    category: str | None = None  # absent: general, or the imported prompt's
    images: list[str] = Field(default_factory=list)  # base64, data: URIs or URLs, as the task API's
    aspect_ratio: str | None = None
    resolution: str | None = None


class VoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    choice: str  # left, right, tie or both_bad


@router.get("/v1/arena")
async def arena_summary(door: FrontDoorDep) -> JSONResponse:
    arena = Arena(door)
    used = [name for name, _ in arena.store.categories() if name not in SUGGESTED_CATEGORIES]
    return JSONResponse(
        {
            "object": "arena",
            "contestants": [contestant.name for contestant in arena.contestants()],
            "categories": [*SUGGESTED_CATEGORIES, *used],  # and any a prompt set or voter added
            "prompts": {"total": arena.store.prompt_count()},
            "votes": arena.store.vote_count(),
        }
    )


@router.post("/v1/arena/pairs", status_code=201, openapi_extra=openapi.json_body(PairCreate))
async def create_pair(request: Request, door: FrontDoorDep, caller: CallerKey) -> JSONResponse:
    body = _parse(PairCreate, await request.body())
    spec = PairSpec(body.prompt, body.category, body.images, body.aspect_ratio, body.resolution)
    arena = Arena(door)
    pair = await arena.start(spec, caller)
    return JSONResponse(_pair_body(request, arena, pair), status_code=201)


@router.get("/v1/arena/pairs/{pair_id}")
async def get_pair(request: Request, door: FrontDoorDep, pair_id: str) -> JSONResponse:
    arena = Arena(door)
    return JSONResponse(_pair_body(request, arena, arena.store.pair(pair_id)))


@router.post("/v1/arena/pairs/{pair_id}/vote", openapi_extra=openapi.json_body(VoteCreate))
async def vote(request: Request, door: FrontDoorDep, caller: CallerKey, pair_id: str) -> JSONResponse:
    body = _parse(VoteCreate, await request.body())
    if body.choice not in CHOICES:
        raise InvalidRequestError(
            f"choice: {body.choice!r} is not a vote; send one of {', '.join(CHOICES)}", field="choice"
        )
    arena = Arena(door)
    return JSONResponse(_pair_body(request, arena, arena.vote(pair_id, body.choice, caller)))


@router.get("/v1/arena/leaderboard")
async def get_leaderboard(door: FrontDoorDep, category: str | None = None) -> JSONResponse:
    wanted = normalize_category(category, "category") if category else None
    arena = Arena(door)
    standings = arena.leaderboard(wanted)
    return JSONResponse(
        {
            "object": "arena.leaderboard",
            "category": wanted,
            "votes": arena.store.vote_count(wanted),
            "method": "elo",
            "data": [standing.to_json() for standing in standings],
            "categories": [{"name": name, "votes": votes} for name, votes in arena.store.categories()],
        }
    )


@router.post(
    "/v1/arena/prompts",
    status_code=201,
    openapi_extra=openapi.merge(
        openapi.form_body(None, {"file": openapi.BINARY}, ["file"], raw_types=PROMPT_FILE_TYPES),
        openapi.query_parameters({"set": {"type": "string"}}),
    ),
)
async def import_prompts(request: Request, door: FrontDoorDep) -> JSONResponse:
    data, content_type = await _read_prompt_file(request)
    name = _set_name(request.query_params.get("set"))
    entries = parse_prompt_set(data, content_type, max_prompt_chars=door.settings.max_prompt_chars)
    arena = Arena(door)
    imported = arena.store.add_prompts(name, [(entry.prompt, entry.category) for entry in entries])
    total = arena.store.prompt_count()
    body = {"object": "arena.prompt_import", "set": name, "imported": imported, "total": total}
    return JSONResponse(body, status_code=201)


@router.get("/v1/arena/prompts")
async def list_prompts(door: FrontDoorDep) -> JSONResponse:
    prompts = Arena(door).store.prompts()
    data = [
        {"id": p.id, "set": p.set_name, "prompt": p.prompt, "category": p.category, "pairs": p.pairs}
        for p in prompts
    ]
    return JSONResponse({"object": "list", "data": data})


@router.get("/v1/arena/export")
async def export_votes(
    door: FrontDoorDep,
    format: Annotated[str, Query(json_schema_extra={"enum": list(EXPORT_TYPES)})] = "json",
) -> Response:
    if format not in EXPORT_TYPES:
        raise InvalidRequestError(
            f"format: {format!r} is not an export format; use json or csv", field="format"
        )
    rows = Arena(door).export_rows()
    text = export.to_csv(rows) if format == "csv" else export.to_json(rows)
    disposition = f'attachment; filename="plantain-arena-votes.{format}"'
    return Response(text, media_type=EXPORT_TYPES[format], headers={"content-disposition": disposition})


def _parse(model: type[Body], raw: bytes) -> Body:
    try:
        return model.model_validate(load_json(raw))
    except ValidationError as exc:
        raise validation_error(exc) from None


def _set_name(sent: str | None) -> str:
    """``?set=``, stripped; absent or blank: the default set. Too long is refused, never cut."""
    name = (sent or "").strip() or DEFAULT_SET
    if len(name) > MAX_SET_NAME:
        raise InvalidRequestError(
            f"set: {name[:40]!r}... is {len(name)} characters; a set name takes at most {MAX_SET_NAME}",
            field="set",
        )
    return name


async def _read_prompt_file(request: Request) -> tuple[bytes, str | None]:
    """The prompt file: the raw body (its content type says the format, or it is sniffed) or a
    multipart form's ``file``."""
    content_type = request.headers.get("content-type")
    if content_type and content_type.startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=4) as form:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise InvalidRequestError("upload the prompt set as the file field 'file'", field="file")
            return await upload.read(), upload.content_type
    return await request.body(), content_type


def _pair_body(request: Request, arena: Arena, pair: ArenaPair) -> dict[str, Any]:
    """The pair as a voter sees it: the contestants' names only once it has its vote."""

    def file_url(file_id: str) -> str:
        return str(request.url_for("file_content", file_id=file_id))

    sides = {}
    for side, task_id, contestant in (
        ("left", pair.left_task, pair.left_contestant),
        ("right", pair.right_task, pair.right_contestant),
    ):
        shown = arena.side(task_id, file_url)
        sides[side] = {**shown, "contestant": contestant if pair.voted else None}
    vote = {"choice": pair.choice, "voted_at": convert.iso(pair.voted_at)} if pair.voted else None
    return {
        "id": pair.id,
        "object": "arena.pair",
        "prompt": pair.prompt,
        "category": pair.category,
        "seed": pair.seed,
        "created_at": convert.iso(pair.created_at),
        **sides,
        "vote": vote,
    }
