"""Routes take the scheduler, the batch store and the caller's key id as typed dependencies
(plantain.dialects.deps): none reaches into app.state or request.state, and a dependency
overridden on the app is what every route gets."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

import plantain
from plantain.dialects import deps
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer

SOURCE = Path(plantain.__file__).parent
APP = SOURCE / "server" / "app.py"
# request.state / request.app.state anywhere; app.state in a dialect (server/app.py creates it)
REACH_INS = re.compile(r"\brequest\.(app\.)?state\b")
DIALECT_REACH_INS = re.compile(r"\bapp\.state\b")
PROMPT = "a lighthouse on a cliff at dusk, oil paint"


def route_modules() -> list[Path]:
    dialects = sorted((SOURCE / "dialects").rglob("*.py"))
    return [path for path in dialects if path.name != "deps.py"] + [APP]


def test_no_route_module_reaches_into_state() -> None:
    found = []
    for path in route_modules():
        pattern = DIALECT_REACH_INS if path != APP else REACH_INS
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(SOURCE)}:{number}: {line.strip()}")
    assert not found, "take deps.FrontDoorDep / BatchesDep / CallerKey instead:\n" + "\n".join(found)


@pytest.fixture(scope="module")
def app(server_settings: Callable[..., Settings]) -> FastAPI:
    return create_app(server_settings())  # no keys: every caller is anonymous


@pytest.fixture(scope="module")
def base(app: FastAPI) -> Iterator[str]:
    with LiveServer(app) as live:
        yield live.wait_ready()


def test_an_overridden_caller_key_is_whose_usage_is_recorded(app: FastAPI, base: str) -> None:
    async def someone() -> str:
        return "someone"

    app.dependency_overrides[deps.caller_key] = someone
    try:
        submitted = httpx.post(
            f"{base}/v1/tasks",
            json={"model": "tiny", "input": {"prompt": PROMPT, "resolution": "512"}},
            headers={"Prefer": "wait=60"},
            timeout=120,
        )
        assert submitted.status_code == 201, submitted.text
        generated = httpx.post(
            f"{base}/v1/images/generations", json={"model": "tiny", "prompt": PROMPT}, timeout=120
        )
        assert generated.status_code == 200, generated.text
        theirs = httpx.get(f"{base}/v1/usage").json()  # the usage route takes the override too
    finally:
        del app.dependency_overrides[deps.caller_key]
    anonymous = httpx.get(f"{base}/v1/usage").json()
    assert theirs["key_id"] == "someone" and theirs["data"][0]["requests"] == 2
    assert anonymous["key_id"] == "anonymous" and anonymous["data"][0]["requests"] == 0
