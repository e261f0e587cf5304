"""The OpenAPI document (``GET /openapi.json``) on a live server: complete enough for schema-driven
clients (every body, every path parameter), and a schema fuzzer (schemathesis) driven by it finds
no server error on any operation — every bad input is a 4xx in the dialect's envelope.

The run is bounded (about 40 s on 2 CPU cores): a fixed number of examples per operation and mode
(positive: what the schema allows; negative: what it does not), derandomized (the same cases every
run), no shrinking. Outputs are capped at 512x512 so that an accepted generation is cheap, and path
parameters name a model, task, file and batch that exist, so that the rest reaches the routes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import APIOperation

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer

pytestmark = pytest.mark.slow

EXAMPLES = {GenerationMode.POSITIVE: 20, GenerationMode.NEGATIVE: 10}  # per operation
UNBODIED_POSTS = re.compile(r"(:cancel|/cancel)$")  # cancel routes take no body


@pytest.fixture(scope="module")
def base(server_settings: Callable[..., Settings]) -> Iterator[str]:
    fuzzed = server_settings(
        max_output_pixels=512 * 512,  # the 512 tier only: an accepted generation is cheap
        fetch_timeout_seconds=2.0,
        drain_seconds=1.0,
    )
    with LiveServer(create_app(fuzzed)) as server:
        yield server.wait_ready()


@pytest.fixture(scope="module")
def document(base: str) -> dict[str, Any]:
    response = httpx.get(f"{base}/openapi.json")
    assert response.status_code == 200
    found: dict[str, Any] = response.json()
    return found


def operations_of(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def test_every_post_route_that_takes_a_body_declares_it(document: dict[str, Any]) -> None:
    posts = [(path, op) for method, path, op in operations_of(document) if method == "POST"]
    bodied = [(path, op) for path, op in posts if not UNBODIED_POSTS.search(path)]
    assert len(bodied) >= 25  # 21 Gemini/Vertex, 3 batch, 2 OpenAI, tasks, provenance
    assert [path for path, op in bodied if "requestBody" not in op] == []
    tasks = document["paths"]["/v1/tasks"]["post"]["requestBody"]["content"]["application/json"]
    task_schema = document["components"]["schemas"][tasks["schema"]["$ref"].rsplit("/", 1)[-1]]
    assert {"model", "input", "webhook"} <= set(task_schema["properties"])
    edits = document["paths"]["/v1/images/edits"]["post"]["requestBody"]["content"]
    assert {"image", "image[]", "prompt", "n"} <= set(edits["multipart/form-data"]["schema"]["properties"])
    verify = document["paths"]["/v1/provenance/verify"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "image/*"} <= set(verify)


def test_every_path_parameter_is_declared(document: dict[str, Any]) -> None:
    undeclared = []
    for method, path, operation in operations_of(document):
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        undeclared += [f"{method} {path}: {n}" for n in re.findall(r"{(\w+)}", path) if n not in declared]
    assert undeclared == []


def test_the_document_validates_and_promises_400_not_422(base: str, document: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    schema.validate()  # against the OpenAPI 3.1 meta-schema
    assert all(result.ok() for result in schema.get_all_operations())
    statuses = {status for _, _, op in operations_of(document) for status in op.get("responses", {})}
    assert "422" not in statuses and "400" in statuses


@pytest.fixture(scope="module")
def existing(base: str) -> dict[str, str]:
    """Path parameters that name things that exist (a model, a task, its file, a batch, an arena
    pair), so that the fuzzed bodies, queries and headers reach the routes rather than a 404 for a
    random id."""
    body = {"model": "tiny", "input": {"prompt": "a boat", "resolution": "512"}}
    task = httpx.post(f"{base}/v1/tasks", json=body, headers={"Prefer": "wait=60"}, timeout=90).json()
    assert task["status"] == "succeeded", task
    request = {
        "contents": [{"parts": [{"text": "a"}]}],
        "generationConfig": {"imageConfig": {"imageSize": "512"}},
    }
    batch = {"batch": {"inputConfig": {"requests": {"requests": [{"request": request}]}}}}
    operation = httpx.post(f"{base}/v1beta/models/tiny:batchGenerateContent", json=batch).json()
    assert "name" in operation, operation
    kite = {"prompt": "a kite", "resolution": "512"}
    pair = httpx.post(f"{base}/v1/arena/pairs", json=kite, timeout=60).json()
    assert pair["object"] == "arena.pair", pair
    return {
        "model": "tiny",
        "task_id": task["id"],
        "file_id": task["output"]["images"][0]["url"].rsplit("/", 1)[-1],
        "batch_id": operation["name"].rsplit("/", 1)[-1],
        "pair_id": pair["id"],
    }


def test_fuzzing_every_operation_from_the_document_finds_no_server_error(
    base: str, existing: dict[str, str]
) -> None:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    exercised: Counter[str] = Counter()
    for operation in operations:
        for mode, examples in EXAMPLES.items():
            fuzz(operation, mode, examples, base, existing, exercised)
    assert sorted(exercised) == sorted(operation.label for operation in operations)


def fuzz(
    operation: APIOperation,
    mode: GenerationMode,
    examples: int,
    base: str,
    existing: dict[str, str],
    exercised: Counter[str],
) -> None:
    pinned = {name: value for name, value in existing.items() if f"{{{name}}}" in operation.path}

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=pinned))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],  # no shrinking: its time is not bounded
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case) -> None:
        response = case.call(base_url=base, timeout=120)
        case.validate_response(response, checks=[not_a_server_error])
        if 400 <= response.status_code < 500:  # the dialect's envelope, never FastAPI's {"detail"}
            assert "error" in response.json(), (case.as_curl_command(), response.text[:500])
        exercised[operation.label] += 1

    try:
        run()
    except Unsatisfiable:  # nothing to send wrong: no body, no query, and the path is pinned
        assert mode is GenerationMode.NEGATIVE
