"""A Python client for Plantain's task API: :class:`Client` (blocking) and :class:`AsyncClient`.

It needs only ``httpx`` and pydantic (no torch), so a machine that only talks to a server
installs light. Both clients speak the same methods::

    with Client("http://gpu-box:8000", api_key="...") as client:
        task = client.run("flux2-klein-4b", {"prompt": "a red bicycle", "images": [Path("in.png")]})
        data = client.download(task.outputs[0])

``input`` is the task API's ``input`` object (see docs/tasks.md); its ``images`` may hold raw
``bytes`` or a :class:`~pathlib.Path` (sent as ``data:`` URIs) besides the strings the API takes.
Server errors come back as the matching :class:`~plantain.errors.PlantainError` subclass.

The package: :mod:`.wire` (what both clients send and read), :mod:`.blocking` (:class:`Client`),
:mod:`.asynchronous` (:class:`AsyncClient`); import the names from here.
"""

from plantain.client.asynchronous import AsyncClient
from plantain.client.blocking import Client

# The names imported `as` themselves were public when the client was one module: they stay
# importable from here, outside __all__.
from plantain.client.wire import CODES_BY_STATUS as CODES_BY_STATUS
from plantain.client.wire import DEFAULT_SERVER as DEFAULT_SERVER
from plantain.client.wire import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from plantain.client.wire import IMAGE_SIGNATURES as IMAGE_SIGNATURES
from plantain.client.wire import MAX_RECONNECTS as MAX_RECONNECTS
from plantain.client.wire import NO_MORE_EVENTS as NO_MORE_EVENTS
from plantain.client.wire import STREAM_IDLE_SECONDS as STREAM_IDLE_SECONDS
from plantain.client.wire import VERIFY_FIELD as VERIFY_FIELD
from plantain.client.wire import VERIFY_PATH as VERIFY_PATH
from plantain.client.wire import (
    ErrorInfo,
    Event,
    Output,
    Page,
    Task,
    TaskOutput,
    encode_input,
    finished_task,
    raise_for_error,
)
from plantain.client.wire import SubmitOptions as SubmitOptions

__all__ = [
    "AsyncClient",
    "Client",
    "ErrorInfo",
    "Event",
    "Output",
    "Page",
    "Task",
    "TaskOutput",
    "encode_input",
    "finished_task",
    "raise_for_error",
]
