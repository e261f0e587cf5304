"""Replicate's predictions API as an engine (a task runner: create, then wait or poll).

One prediction per seed: ``POST /v1/models/{owner}/{name}/predictions`` (or ``POST
/v1/predictions`` with a ``version`` when the model is ``owner/name:version``) with
``Prefer: wait=N``, so a fast model answers in the same request; a prediction that is not finished
yet is polled at its ``urls.get`` until it ends or the provider's ``timeout_seconds`` runs out
(then it is cancelled, and the error is a timeout a route may retry elsewhere).

The input follows ``google/nano-banana``'s schema, which Replicate's Gemini image models share:
``prompt``, ``image_input`` (each input a PNG ``data:`` URI, so nothing needs hosting),
``aspect_ratio`` (``match_input_image`` for an edit that asks for none), ``output_format``
(``jpg`` for JPEG, else ``png``: those models make no other), ``resolution`` for a tier other than
1K (nano-banana-pro's), and ``seed``, which models without one ignore. The output is a URI or a
list of them (the first is this seed's image): a ``data:`` URI is decoded, an http(s) one fetched.

A ``failed`` or ``canceled`` prediction is a refusal (never retried) unless its error says the
run was interrupted or to retry, and an ``aborted`` one (it never started) may pass by itself:
those carry status 503 so the retry policy treats them as the provider's trouble.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import time
from typing import Any
from urllib.parse import unquote_to_bytes

from plantain.errors import ProviderError
from plantain.imaging.sizes import nearest_aspect_ratio
from plantain.providers.base import RemoteEngine, RemoteImage, RemoteJob
from plantain.types import ImageRequest

TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
MAX_WAIT_SECONDS = 60  # what ``Prefer: wait=N`` may ask for
POLL_SECONDS = 0.5  # between polls of an unfinished prediction (the official clients' default)
# Failures worth another prediction ("Prediction interrupted; please retry (code: PA)"); not
# "please try again with different inputs" (E005, flagged as sensitive): that is a refusal.
TRANSIENT = ("interrupted", "please retry")


class ReplicateEngine(RemoteEngine):
    kind = "replicate"
    default_max_inputs = 14  # nano-banana-pro's image_input limit

    def call(self, job: RemoteJob, request: ImageRequest) -> list[RemoteImage]:
        body = self.body(job, request)
        return [self._predict({**body, "input": {**body["input"], "seed": seed}}) for seed in job.seeds]

    def body(self, job: RemoteJob, request: ImageRequest) -> dict[str, Any]:
        """The create body for ``job``, without its seed."""
        fields: dict[str, Any] = {"prompt": job.prompt}
        if job.images:
            fields["image_input"] = [_data_uri(image) for image in self.inputs(job, request)]
        ratio = request.aspect_ratio
        if ratio is None and request.width is not None and request.height is not None:
            ratio = nearest_aspect_ratio(request.width, request.height)
        if ratio is not None:
            fields["aspect_ratio"] = ratio
        elif job.images:
            fields["aspect_ratio"] = "match_input_image"
        fields["output_format"] = "jpg" if request.output_format == "jpeg" else "png"
        if request.size != "1K":
            fields["resolution"] = request.size
        version = self.config.model.partition(":")[2]
        return {"version": version, "input": fields} if version else {"input": fields}

    def _predict(self, body: dict[str, Any]) -> RemoteImage:
        deadline = time.monotonic() + self.config.timeout_seconds
        wait = max(1, min(MAX_WAIT_SECONDS, int(self.config.timeout_seconds) - 5))
        headers = {**self._auth(), "Prefer": f"wait={wait}"}
        model, _, version = self.config.model.partition(":")
        path = "v1/predictions" if version else f"v1/models/{model}/predictions"
        prediction = self._prediction(self.post(path, body, headers))
        while prediction.get("status") not in TERMINAL:
            if time.monotonic() >= deadline:
                self._cancel(prediction)
                raise ProviderError(
                    f"provider {self.name} (replicate) did not finish prediction {prediction.get('id')} "
                    f"within {self.config.timeout_seconds:g} s (its timeout_seconds); it was cancelled"
                )
            self._sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            prediction = self._prediction(self.get_json(self._link(prediction, "get"), self._auth()))
        return self._output(prediction)

    def _output(self, prediction: dict[str, Any]) -> RemoteImage:
        status = prediction.get("status")
        if status != "succeeded":
            error = str(prediction.get("error") or "no error given")
            transient = status == "aborted" or any(word in error.lower() for word in TRANSIENT)
            raise ProviderError(
                f"provider {self.name} (replicate, {self.config.model}): prediction "
                f"{prediction.get('id')} {status}: {error[:300]}",
                upstream_status=503 if transient else 200,
            )
        output = prediction.get("output")
        uri = output[0] if isinstance(output, list) and output else output
        if not isinstance(uri, str) or not uri:
            raise ProviderError(
                f"provider {self.name} (replicate): prediction {prediction.get('id')} succeeded "
                "with no output",
                upstream_status=200,
            )
        if uri.startswith("data:"):
            return self._from_data_uri(uri)
        return self.get_bytes(uri)

    def _prediction(self, answer: Any) -> dict[str, Any]:
        if not isinstance(answer, dict) or not isinstance(answer.get("id"), str):
            raise ProviderError(
                f"provider {self.name} (replicate) answered something that is not a prediction",
                upstream_status=200,
            )
        return answer

    def _link(self, prediction: dict[str, Any], which: str) -> str:
        """The prediction's ``urls`` entry, else the API's own path for it."""
        urls = prediction.get("urls")
        link = urls.get(which) if isinstance(urls, dict) else None
        if isinstance(link, str) and link.startswith(("http://", "https://")):
            return link
        suffix = "/cancel" if which == "cancel" else ""
        return self.url(f"v1/predictions/{prediction['id']}{suffix}")

    def _cancel(self, prediction: dict[str, Any]) -> None:
        """Best effort: a prediction given up on should not run (and bill) on."""
        with contextlib.suppress(ProviderError):
            self._send("POST", self._link(prediction, "cancel"), headers=self._auth())

    def _auth(self) -> dict[str, str]:
        key = self.config.key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _from_data_uri(self, uri: str) -> RemoteImage:
        header, _, payload = uri[len("data:") :].partition(",")
        media_type = header.split(";")[0] or None
        try:
            data = base64.b64decode(payload, validate=True) if header.endswith(";base64") else None
        except (binascii.Error, ValueError):
            data = None
        if data is None and not header.endswith(";base64"):
            data = unquote_to_bytes(payload)
        if not data:
            raise ProviderError(
                f"provider {self.name} (replicate) sent an output data: URI that could not be read",
                upstream_status=200,
            )
        return RemoteImage(data, media_type)


def _data_uri(image: RemoteImage) -> str:
    return f"data:{image.media_type};base64," + base64.b64encode(image.data).decode("ascii")
