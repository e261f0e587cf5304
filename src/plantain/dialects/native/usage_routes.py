"""``GET /v1/usage``: the caller's own totals from the usage ledger (docs/usage.md).

A caller sees only the totals of the API key it sends (its key id); with no keys configured,
every caller is ``anonymous`` and sees everything. ``since``/``until`` (unix seconds or ISO 8601)
pick the tasks that ended in [since, until); ``group_by`` splits the totals by ``model``,
``engine`` and/or ``dialect``. Costs in different currencies are never added: each currency is
its own entry. ``quota`` says what the key has used of its quotas and what remains.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from plantain.dialects.deps import CallerKey, FrontDoorDep
from plantain.dialects.native import errors
from plantain.dialects.routing import dialect_route
from plantain.errors import InvalidRequestError
from plantain.storage.engine_stats import OUTCOMES, EngineTotals
from plantain.storage.ledger import Totals
from plantain.usage import COST_DECIMALS, SECONDS_DECIMALS

router = APIRouter(tags=["usage"], route_class=dialect_route(errors.error_body))

# The names a caller groups by -> the ledger's columns.
GROUPS = {"model": "model", "engine": "engine", "dialect": "source"}
WIRE_NAMES = {column: name for name, column in GROUPS.items()}
EARLIEST, LATEST = "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"  # what a datetime can hold
# Read as text (parse_time), documented as what it takes: unix seconds or an ISO 8601 time.
Time = Annotated[
    str | None,
    Query(json_schema_extra={"anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]}),
]


@router.get("/v1/usage")
async def get_usage(
    door: FrontDoorDep,
    key_id: CallerKey,
    since: Time = None,
    until: Time = None,
    group_by: str | None = None,
) -> JSONResponse:
    start, end = parse_time(since, "since"), parse_time(until, "until")
    if start is not None and end is not None and end < start:
        raise InvalidRequestError(f"until: {until!r} is before since ({since!r})", field="until")
    columns = parse_group_by(group_by)
    totals = await asyncio.to_thread(
        door.store.ledger.totals, key_id=key_id, since=start, until=end, group_by=columns
    )
    if not totals and not columns:  # nothing yet: the totals are zero, in today's currency
        totals = [Totals(group={}, currency=door.price.currency)]
    body = {
        "object": "usage",
        "key_id": key_id,
        "since": _iso(start),
        "until": _iso(end),
        "group_by": [WIRE_NAMES[column] for column in columns],
        "data": [usage_entry(entry) for entry in totals],
        # What the key may still do (docs/usage.md, "Quotas"): a limit of null is no limit.
        "quota": door.quotas.allowance(key_id, await asyncio.to_thread(door.store.quota_use, key_id)),
        # Every engine's tries on this server, every caller's (docs/providers.md, "Statistics").
        "engines": [engine_entry(entry) for entry in await asyncio.to_thread(door.store.engine_stats.totals)],
    }
    return JSONResponse(body)


def parse_time(value: str | None, field: str) -> float | None:
    """Unix seconds (``1767225600``) or ISO 8601 (``2026-01-01T00:00:00Z``; no zone is UTC)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            seconds = math.nan
        else:
            seconds = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    if not math.isfinite(seconds):
        raise InvalidRequestError(
            f"{field}: {value!r} is not a time; send unix seconds (1767225600) or ISO 8601 "
            "(2026-01-01T00:00:00Z)",
            field=field,
        )
    try:  # the answer echoes it as a date, which has years 1 to 9999 only
        datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, ValueError, OSError):
        raise InvalidRequestError(
            f"{field}: {value!r} is out of range; send a time from {EARLIEST} to {LATEST}",
            field=field,
        ) from None
    return seconds


def parse_group_by(value: str | None) -> list[str]:
    """``model,engine`` -> the ledger columns, in the order given."""
    names = [name.strip().lower() for name in (value or "").split(",") if name.strip()]
    for name in names:
        if name not in GROUPS:
            raise InvalidRequestError(
                f"group_by: {name!r} is not allowed; use any of {', '.join(GROUPS)}, comma-separated",
                field="group_by",
            )
    return [GROUPS[name] for name in dict.fromkeys(names)]


def usage_entry(totals: Totals) -> dict[str, Any]:
    """One group's totals, in the shape a task's ``usage`` has, plus request counts."""
    tokens_in = totals.input_text_tokens + totals.input_image_tokens
    return {
        **{WIRE_NAMES[column]: value for column, value in totals.group.items()},
        "requests": totals.requests,
        "succeeded": totals.succeeded,
        "failed": totals.failed,
        "cancelled": totals.cancelled,
        "images": totals.images,
        "tokens": {
            "input": tokens_in,
            "output": totals.output_tokens,
            "total": tokens_in + totals.output_tokens,
            "input_text": totals.input_text_tokens,
            "input_image": totals.input_image_tokens,
        },
        "device_seconds": round(totals.device_seconds, SECONDS_DECIMALS),
        "cost": {"amount": round(totals.cost, COST_DECIMALS), "currency": totals.currency},
        "planner": {
            "seconds": round(totals.planner_seconds, SECONDS_DECIMALS),
            "input_tokens": totals.planner_input_tokens,
            "output_tokens": totals.planner_output_tokens,
        },
        "search": {"seconds": round(totals.search_seconds, SECONDS_DECIMALS), "searches": totals.searches},
    }


def engine_entry(totals: EngineTotals) -> dict[str, Any]:
    """One engine's tries: a route's members each count their own, so a failover shows."""
    p50, p95 = totals.quantile(0.5), totals.quantile(0.95)
    rate = totals.success_rate
    return {
        "engine": totals.engine,
        "attempts": totals.tries,
        **{outcome: totals.attempts.get(outcome, 0) for outcome in OUTCOMES},
        "success_rate": None if rate is None else round(rate, 4),
        "images": totals.images,
        "p50_seconds": None if p50 is None else round(p50, SECONDS_DECIMALS),
        "p95_seconds": None if p95 is None else round(p95, SECONDS_DECIMALS),
        "cost": {"amount": round(totals.cost, COST_DECIMALS), "currency": totals.currency},
    }


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


__all__ = ["engine_entry", "parse_group_by", "parse_time", "router", "usage_entry"]
