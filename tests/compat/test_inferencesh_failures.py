"""inference.sh runs that do not succeed, through their SDK and over HTTP: a run whose engine
fails ends FAILED with the reason (the SDK raises it), and a route that falls over serves the
run and names the engine in ``output_meta``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from inferencesh import inference

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer

FAILED, COMPLETED = 11, 10


@pytest.fixture(scope="module")
def base(server_settings: Callable[..., Settings]) -> Iterator[str]:
    # flux2-klein-4b has no weights here: "broken" always fails, "fallback" falls over to tiny.
    routes = {"broken": ["flux2-klein-4b"], "fallback": ["flux2-klein-4b", "tiny"]}
    with LiveServer(create_app(server_settings(routes=routes))) as server:
        yield server.wait_ready()


def test_a_failed_run_is_failed_with_its_reason(base: str) -> None:
    answer = httpx.post(f"{base}/v1/apps/plantain/broken/run", json={"prompt": "a heron"}, timeout=120)
    task = answer.json()["data"]
    assert answer.status_code == 200 and task["status"] == FAILED and task["status_text"] == "failed"
    assert "flux2-klein-4b" in task["error"] and task["output"] is None


def test_the_sdk_raises_a_failed_runs_reason(base: str) -> None:
    client: Any = inference(api_key="inf_any", base_url=base)
    with pytest.raises(Exception, match="flux2-klein-4b"):
        client.run({"app": "plantain/broken", "input": {"prompt": "a heron", "resolution": "0.5K"}})


def test_a_route_that_falls_over_names_the_engine_that_served(base: str) -> None:
    answer = httpx.post(
        f"{base}/v1/apps/plantain/fallback/run", json={"prompt": "a heron", "resolution": "0.5K"}, timeout=120
    )
    task = answer.json()["data"]
    assert task["status"] == COMPLETED
    assert task["output"]["output_meta"]["served_by"] == "tiny"
