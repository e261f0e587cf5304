"""An httpx client that records what a provider sent and what it was answered, as on the wire."""

from __future__ import annotations

import json
from typing import Any

import httpx


class Recorder:
    """``client`` keeps each request (``requests``; ``sent``: JSON bodies decoded) and each JSON
    answer (``answers``), so a test can check the exact bytes a provider handed back."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answers: list[Any] = []
        self.client = httpx.Client(event_hooks={"request": [self._request], "response": [self._response]})

    @property
    def sent(self) -> list[Any]:
        return [
            json.loads(request.content)
            for request in self.requests
            if request.headers.get("content-type", "").startswith("application/json")
        ]

    def _request(self, request: httpx.Request) -> None:
        request.read()
        self.requests.append(request)

    def _response(self, response: httpx.Response) -> None:
        response.read()
        if response.headers.get("content-type", "").startswith("application/json"):
            self.answers.append(response.json())
