"""Running requests for the HTTP server: off the event loop, in arrival order, cancellable.

This is the seam the durable task queue replaces: dialects call :meth:`ImageService.run` and
never touch engines or threads themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from plantain.engines.base import PreviewCallback, Previews, StepCallback
from plantain.engines.registry import EngineRegistry
from plantain.errors import CancelledError
from plantain.generation import execute, prepare
from plantain.models import engine_for_model
from plantain.types import ImageRequest, ImageResult

DisconnectCheck = Callable[[], Awaitable[bool]]

DISCONNECT_POLL_SECONDS = 0.2


class ImageService:
    """One worker thread runs engine work in FIFO order; decoding and checks run beside it."""

    def __init__(self, registry: EngineRegistry) -> None:
        self.registry = registry
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plantain-engine")
        self.ready = threading.Event()
        self.load_error: str | None = None

    def engine_name(self, model: str | None) -> str:
        return engine_for_model(self.registry, model)

    def load(self, names: list[str]) -> None:
        """Load ``names`` (blocking), then mark the service ready."""
        for name in names:
            self.registry.get(name).load()
        self.ready.set()

    async def run(
        self,
        request: ImageRequest,
        *,
        on_step: StepCallback | None = None,
        is_disconnected: DisconnectCheck | None = None,
        previews: int = 0,
        on_preview: PreviewCallback | None = None,
    ) -> ImageResult:
        """Run ``request`` on its engine; a client that goes away cancels it (queued or running).

        With ``previews`` > 0, up to that many in-progress images of the first output are passed
        to ``on_preview`` (called on the worker thread) while the engine runs."""
        engine = self.registry.get(request.engine)
        job = await asyncio.to_thread(prepare, request, engine)  # decode and validate off the loop
        stop = threading.Event()
        plan = Previews.spread(previews, job.steps, on_preview) if previews and on_preview else None
        future = asyncio.get_running_loop().run_in_executor(
            self._worker, lambda: execute(request, job, engine, on_step, stop.is_set, plan)
        )
        watcher = (
            asyncio.create_task(_watch_disconnect(is_disconnected, stop, future)) if is_disconnected else None
        )
        try:
            return await future
        except asyncio.CancelledError:
            stop.set()
            raise
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)


async def _watch_disconnect(
    is_disconnected: DisconnectCheck, stop: threading.Event, future: asyncio.Future[ImageResult]
) -> None:
    while not future.done():
        if await is_disconnected():
            stop.set()  # a running job stops at its next step
            future.cancel()  # a queued one never starts
            return
        await asyncio.sleep(DISCONNECT_POLL_SECONDS)


__all__ = ["CancelledError", "ImageService"]
