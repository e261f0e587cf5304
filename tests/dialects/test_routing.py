"""Each dialect renders its own routes' errors: a dialect added through ``server.DIALECTS`` (its
package plus one line) answers in its own envelope, while what no route matches still gets the
server's guess."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Query

from plantain.dialects.routing import dialect_route
from plantain.errors import InvalidRequestError, PlantainError
from plantain.server import app as server
from plantain.settings import Settings
from plantain.testing import LiveServer


def throwaway_error_body(error: PlantainError) -> tuple[int, dict[str, Any]]:
    return 418 if error.status == 400 else error.status, {"oops": {"why": error.message, "what": error.code}}


throwaway = APIRouter(route_class=dialect_route(throwaway_error_body))


@throwaway.get("/v9/throwaway/refuse")
async def refuse() -> dict[str, str]:
    raise InvalidRequestError("this dialect refuses everything", field="anything")


@throwaway.get("/v9/throwaway/count")
async def count(n: Annotated[int, Query(ge=1, le=3)]) -> dict[str, int]:
    return {"n": n}


@throwaway.get("/v9/throwaway/crash")
async def crash() -> dict[str, str]:
    raise RuntimeError("boom")


@pytest.fixture(scope="module")
def base(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(server, "DIALECTS", [*server.DIALECTS, throwaway])  # the one line
        app = server.create_app(server_settings())
    with LiveServer(app) as live:
        yield live.url


def test_a_new_dialects_route_errors_come_in_its_own_envelope(base: str) -> None:
    response = httpx.get(f"{base}/v9/throwaway/refuse")
    assert response.status_code == 418
    assert response.json() == {"oops": {"why": "this dialect refuses everything", "what": "invalid_request"}}


def test_a_refused_parameter_comes_in_the_new_dialects_envelope(base: str) -> None:
    assert httpx.get(f"{base}/v9/throwaway/count", params={"n": 2}).json() == {"n": 2}
    response = httpx.get(f"{base}/v9/throwaway/count", params={"n": 7})
    assert response.status_code == 418
    assert response.json()["oops"]["why"] == "n: '7' is not allowed; must be a whole number between 1 and 3"


def test_an_unexpected_error_comes_in_the_new_dialects_envelope(base: str) -> None:
    response = httpx.get(f"{base}/v9/throwaway/crash")
    assert response.status_code == 500
    assert "internal error: RuntimeError: boom" in response.json()["oops"]["why"]


def test_unrouted_paths_and_methods_still_get_the_global_envelope(base: str) -> None:
    missing = httpx.get(f"{base}/v9/throwaway/nowhere")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "invalid_request_error"  # the OpenAI guess
    assert missing.json()["error"]["code"] == "route_not_found"
    wrong_method = httpx.post(f"{base}/v9/throwaway/refuse")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    gemini = httpx.get(f"{base}/v9/throwaway/nowhere", headers={"x-goog-api-key": "k"})
    assert gemini.json()["error"]["status"] == "NOT_FOUND"


def test_the_other_dialects_keep_their_envelopes(base: str) -> None:
    assert httpx.get(f"{base}/v1/tasks/nope").json()["error"]["status"] == 404
    assert httpx.get(f"{base}/v1beta/batches/nope").json()["error"]["status"] == "NOT_FOUND"
    assert httpx.get(f"{base}/v1/files/nope").json()["error"]["type"] == "invalid_request_error"
