"""``GET /openapi.json`` shows every route's request body, so that a generated client, Swagger UI's
"Try it out" and a schema fuzzer (tests/server/test_openapi_fuzz.py, slower) know what to send.

Routes read their bodies themselves and declare them with ``openapi_extra``
(``plantain.dialects.openapi``); these tests catch a POST route that forgets to, and a body schema
that refers to a component the document does not hold."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from plantain.server.app import DIALECTS, create_app
from plantain.settings import Settings
from plantain.testing import LiveServer

KEY = "openapi-test-key"
UNBODIED = (":cancel", "/cancel")  # cancelling takes no body


@pytest.fixture(scope="module")
def served(server_settings: Callable[..., Settings]) -> Iterator[tuple[str, list[APIRoute]]]:
    app = create_app(server_settings(api_keys=[KEY]))
    every = [route for router in DIALECTS for route in router.routes]  # each dialect's own
    routes = [route for route in every if isinstance(route, APIRoute) and route.include_in_schema]
    with LiveServer(app) as server:
        yield server.url, routes


@pytest.fixture(scope="module")
def document(served: tuple[str, list[APIRoute]]) -> dict[str, Any]:
    response = httpx.get(f"{served[0]}/openapi.json", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200
    found: dict[str, Any] = response.json()
    return found


def body_schema(document: dict[str, Any], path: str, media_type: str) -> dict[str, Any]:
    """The schema of ``path``'s POST body as ``media_type``, its ``$ref`` followed."""
    schema: dict[str, Any] = document["paths"][path]["post"]["requestBody"]["content"][media_type]["schema"]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def test_every_post_route_of_the_app_declares_its_body(
    served: tuple[str, list[APIRoute]], document: dict[str, Any]
) -> None:
    posts = [route.path for route in served[1] if "POST" in route.methods]
    assert len(posts) >= 30
    missing = [
        path
        for path in posts
        if not path.endswith(UNBODIED) and "requestBody" not in document["paths"][path]["post"]
    ]
    assert missing == []
    for path in posts:
        body = document["paths"][path]["post"].get("requestBody")
        assert body is None or (body["required"] and body["content"]), path


def test_each_dialect_shows_the_fields_its_clients_send(document: dict[str, Any]) -> None:
    for path in (
        "/v1beta/models/{model}:generateContent",
        "/v1beta/models/{model}:streamGenerateContent",
        "/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent",
    ):
        assert {"contents", "generationConfig"} <= set(
            body_schema(document, path, "application/json")["properties"]
        )
    batch = body_schema(document, "/v1beta/models/{model}:batchGenerateContent", "application/json")
    assert "batch" in batch["properties"]
    generations = body_schema(document, "/v1/images/generations", "application/json")
    assert {"prompt", "model", "size", "n"} <= set(generations["properties"])
    edits = body_schema(document, "/v1/images/edits", "multipart/form-data")
    assert {"image", "image[]", "prompt", "size", "n"} <= set(edits["properties"])
    assert edits["properties"]["image"] == {"type": "string", "format": "binary"}
    tasks = body_schema(document, "/v1/tasks", "application/json")
    assert {"model", "input", "webhook"} <= set(tasks["properties"])


def test_every_schema_a_body_refers_to_is_in_the_document(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    dangling: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.rsplit("/", 1)[-1] not in components:
                dangling.append(ref)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert dangling == []


def test_the_document_needs_the_key_a_server_with_keys_asks_for(
    served: tuple[str, list[APIRoute]], server_settings: Callable[..., Settings]
) -> None:
    assert httpx.get(f"{served[0]}/openapi.json").status_code == 401
    with LiveServer(create_app(server_settings())) as open_server:  # no keys: open, like every route
        assert httpx.get(f"{open_server.url}/openapi.json").status_code == 200
