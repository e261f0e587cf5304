"""CORS over plain HTTP, as a browser speaks it: preflights answered for every route before the API
key is asked for, the answers (results and refusals alike) readable by an allowed origin with the
headers clients read exposed, other origins refused, and the default by the address served.
The same from a real browser page: tests/browser/test_browser_sdks.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from plantain.errors import ConfigurationError
from plantain.server.app import create_app
from plantain.settings import Settings, load_settings
from plantain.testing import LiveServer

KEY = "cors-test-key"
APP = "https://app.example.com"
SDK_HEADERS = (
    "authorization",
    "content-type",
    "x-goog-api-key",
    "x-goog-api-client",
    "x-stainless-os",
    "x-stainless-retry-count",
    "idempotency-key",
    "last-event-id",
)
ROUTES = (
    ("POST", "/v1beta/models/gemini-2.5-flash-image:generateContent"),
    ("POST", "/v1/images/generations"),
    ("POST", "/v1/images/edits"),
    ("POST", "/v1/tasks"),
    ("GET", "/v1/tasks/some-task/events"),
    ("DELETE", "/v1/batches/some-batch"),
    ("GET", "/v1/files/some-file"),
    ("GET", "/v1/models"),
    ("GET", "/no/such/route"),
)
EXPOSED = {
    "x-request-id",
    "retry-after",
    "x-plantain-seeds",
    "x-plantain-provenance",
    "x-plantain-ignored-parameters",
    "x-plantain-device-seconds",
    "x-plantain-cost",
    "x-plantain-cost-currency",
    "x-goog-upload-url",
    "x-goog-upload-status",
}


def preflight(base: str, path: str, origin: str, method: str = "POST") -> httpx.Response:
    """What a browser sends before a cross-origin call with an SDK's headers: no credentials."""
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": ",".join(SDK_HEADERS),
    }
    return httpx.options(f"{base}{path}", headers=headers)


def exposed(response: httpx.Response) -> set[str]:
    return {
        name.strip().lower() for name in response.headers.get("access-control-expose-headers", "").split(",")
    }


@pytest.fixture(scope="module")
def base(server_settings: Callable[..., Settings]) -> Iterator[str]:
    settings = server_settings(api_keys=[KEY], cors_origins=[APP, "http://localhost:*"], max_body_bytes=4096)
    with LiveServer(create_app(settings)) as server:
        yield server.wait_ready()


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_preflight_is_answered_for_every_route_without_a_key(base: str, method: str, path: str) -> None:
    response = preflight(base, path, APP, method)
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == APP
    assert method in response.headers["access-control-allow-methods"]
    allowed = {name.strip() for name in response.headers["access-control-allow-headers"].split(",")}
    assert set(SDK_HEADERS) <= allowed
    assert "Origin" in response.headers["vary"]


def test_a_public_page_may_call_a_server_on_a_private_network(base: str) -> None:
    headers = {
        "Origin": APP,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Private-Network": "true",  # Chrome's Private Network Access
    }
    response = httpx.options(f"{base}/v1/images/generations", headers=headers)
    assert response.status_code == 200
    assert response.headers["access-control-allow-private-network"] == "true"


def test_an_origin_matches_by_scheme_host_and_port(base: str) -> None:
    assert preflight(base, "/v1/tasks", "http://localhost:5173").headers["access-control-allow-origin"] == (
        "http://localhost:5173"  # a port written as *
    )
    for other in ("https://evil.example.com", "http://app.example.com", "https://app.example.com:8443"):
        response = preflight(base, "/v1/tasks", other)
        assert response.status_code == 400
        assert "access-control-allow-origin" not in response.headers


def test_a_result_carries_the_headers_clients_read(base: str) -> None:
    response = httpx.post(
        f"{base}/v1/images/generations",
        json={"prompt": "a red kite", "size": "512x512"},
        headers={"Origin": APP, "Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == APP
    assert exposed(response) >= EXPOSED
    for name in ("x-request-id", "x-plantain-seeds", "x-plantain-device-seconds", "x-plantain-cost"):
        assert response.headers[name], name  # exposed, and there to read


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"x-goog-api-key": "wrong"}, 403)],
    ids=["no key", "wrong key"],
)
def test_a_refused_key_is_readable_by_the_page(base: str, headers: dict[str, str], status: int) -> None:
    path = "/v1beta/models/gemini-2.5-flash-image:generateContent"
    response = httpx.post(f"{base}{path}", json={}, headers={"Origin": APP, **headers})
    assert response.status_code == status
    assert response.headers["access-control-allow-origin"] == APP
    assert response.json()["error"]["code"] == status  # Gemini's envelope, which the SDK reads


def test_a_body_too_large_and_a_bad_request_are_readable_by_the_page(base: str) -> None:
    too_large = httpx.post(
        f"{base}/v1/images/generations",
        content=b"{" + b" " * 8192 + b"}",
        headers={"Origin": APP, "Authorization": f"Bearer {KEY}", "content-type": "application/json"},
    )
    assert too_large.status_code == 413
    assert too_large.headers["access-control-allow-origin"] == APP
    bad = httpx.post(
        f"{base}/v1/images/generations",
        json={"prompt": ""},
        headers={"Origin": APP, "Authorization": f"Bearer {KEY}"},
    )
    assert bad.status_code == 400
    assert bad.headers["access-control-allow-origin"] == APP
    assert "x-request-id" in exposed(bad) and bad.headers["x-request-id"]


def test_a_refused_origin_gets_no_cors_headers_on_a_call(base: str) -> None:
    response = httpx.get(
        f"{base}/v1/models", headers={"Origin": "https://evil.example.com", "Authorization": f"Bearer {KEY}"}
    )
    assert response.status_code == 200  # answered, but a browser keeps it from the page
    assert "access-control-allow-origin" not in response.headers


def test_unset_allows_loopback_origins_when_the_server_listens_on_loopback(
    server_settings: Callable[..., Settings],
) -> None:
    with LiveServer(create_app(server_settings(host="127.0.0.1"))) as server:
        for origin in (
            "http://localhost:5173",
            "http://127.0.0.1:3000",
            "http://[::1]:8080",
            "http://localhost",
        ):
            response = preflight(server.url, "/v1/images/generations", origin)
            assert response.headers.get("access-control-allow-origin") == origin, origin
        remote = preflight(server.url, "/v1/images/generations", APP)
        assert "access-control-allow-origin" not in remote.headers


def test_unset_allows_no_origin_when_the_server_listens_beyond_loopback(
    server_settings: Callable[..., Settings],
) -> None:
    with LiveServer(create_app(server_settings(host="0.0.0.0", api_keys=[KEY]))) as server:
        for origin in ("http://localhost:5173", APP):
            response = preflight(server.url, "/v1/images/generations", origin)
            assert response.status_code == 401  # no CORS: the preflight is a request without a key
            assert "access-control-allow-origin" not in response.headers
        call = httpx.get(f"{server.url}/v1/models", headers={"Origin": APP, "Authorization": f"Bearer {KEY}"})
        assert "access-control-allow-origin" not in call.headers


def test_any_origin_and_none(server_settings: Callable[..., Settings]) -> None:
    with LiveServer(create_app(server_settings(host="0.0.0.0", cors_origins=["*"]))) as server:
        response = preflight(server.url, "/v1/tasks", "https://anywhere.example.org")
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "*"
        assert exposed(httpx.get(f"{server.url}/v1/models", headers={"Origin": APP})) >= EXPOSED
    with LiveServer(create_app(server_settings(cors_origins=[]))) as server:  # loopback, turned off
        response = preflight(server.url, "/v1/tasks", "http://localhost:5173")
        assert "access-control-allow-origin" not in response.headers


def test_the_setting_takes_origins_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTAIN_CORS_ORIGINS", '["https://app.example.com", "http://localhost:*"]')
    assert load_settings().cors_origins == [APP, "http://localhost:*"]
    for wrong in ("https://app.example.com/", "app.example.com", "https://app.example.com/ui"):
        with pytest.raises(ConfigurationError, match=r"cors_origins.*not an origin"):
            load_settings(cors_origins=[wrong])
