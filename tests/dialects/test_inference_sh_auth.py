"""inference.sh's routes on a server that needs a key: a missing or wrong key is refused in
their problem+json envelope (the SDK reads ``detail``), before any route runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer


@pytest.fixture(scope="module")
def base(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with LiveServer(create_app(server_settings(api_keys=["inf_key"]))) as live:
        yield live.url


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/apps/run"), ("POST", "/v1/apps/google/gemini-2-5-flash-image/run"), ("GET", "/tasks/abc")],
)
@pytest.mark.parametrize(("headers", "status"), [({}, 401), ({"Authorization": "Bearer inf_wrong"}, 403)])
def test_a_missing_or_wrong_key_is_a_problem_document(
    base: str, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    answer = httpx.request(
        method, base + path, json={"app": "google/gemini-2-5-flash-image"}, headers=headers
    )
    assert answer.status_code == status
    problem = answer.json()
    assert problem["status"] == status and problem["detail"] and problem["title"]


def test_the_right_key_reaches_the_route(base: str) -> None:
    answer = httpx.post(
        f"{base}/apps/run",
        json={"app": "nobody/nothing", "input": {}},
        headers={"Authorization": "Bearer inf_key"},
    )
    assert answer.status_code == 404 and "google/gemini-2-5-flash-image" in answer.json()["detail"]
