"""What a benchmark request runs on: a Plantain server's task API, or an engine in-process.

Each target's ``call(index)`` runs request ``index`` of the workload and returns its
:class:`~plantain.benchmark.stats.Sample`; it is called from several threads at once.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from plantain.benchmark.stats import Sample
from plantain.benchmark.workload import Workload
from plantain.client import Client, Task

if TYPE_CHECKING:
    from plantain.engines.base import Engine

# Long enough for a queue of 4K requests on a CPU; the client waits on the event stream past it.
CLIENT_TIMEOUT = 600.0


class Target(Protocol):
    label: str

    def call(self, index: int) -> Sample: ...


class TaskApiTarget:
    """Requests through the task API (``Prefer: wait``), each output downloaded: the end-to-end
    latency is submit to last byte of the last image, as a user of the API sees it."""

    def __init__(
        self,
        url: str,
        workload: Workload,
        *,
        label: str,
        api_key: str | None = None,
        input_image: bytes | None = None,
    ) -> None:
        self.label = label
        self.url = url
        self.shape: dict[str, Any] | None = None  # size and steps the server chose, once known
        self._workload = workload
        self._api_key = api_key
        self._input_image = input_image
        self._local = threading.local()
        self._clients: list[Client] = []
        self._lock = threading.Lock()

    def call(self, index: int) -> Sample:
        client = self._client()
        started = time.perf_counter()
        task = client.run(self._workload.engine, self._workload.task_input(index, self._input_image))
        for output in task.outputs:
            client.download(output)
        latency = time.perf_counter() - started
        self._remember_shape(task)
        return Sample(
            latency=latency,
            images=len(task.outputs),
            queue_wait=_between(task.created_at, task.started_at),
            run=_between(task.started_at, task.completed_at),
            engine=task.output.seconds if task.output is not None else None,
        )

    def close(self) -> None:
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()

    def _client(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = Client(self.url, api_key=self._api_key, timeout=CLIENT_TIMEOUT)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def _remember_shape(self, task: Task) -> None:
        if self.shape is None and task.outputs and task.output is not None:
            first = task.outputs[0]
            self.shape = {"width": first.width, "height": first.height, "steps": task.output.steps}


class EngineTarget:
    """The engine called in this process (``generation.run_request``: decode, plan, pipeline call,
    encode; no HTTP, queue, provenance or storage). Concurrent calls wait on the engine's lock."""

    def __init__(self, engine: Engine, workload: Workload, input_image: bytes | None = None) -> None:
        self.label = "plantain (engine-only)"
        self._engine = engine
        self._workload = workload
        self._input_image = input_image

    def call(self, index: int) -> Sample:
        from plantain.generation import run_request

        started = time.perf_counter()
        result = run_request(self._workload.image_request(index, self._input_image), self._engine)
        return Sample(latency=time.perf_counter() - started, images=len(result.images), engine=result.seconds)


def _between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()
