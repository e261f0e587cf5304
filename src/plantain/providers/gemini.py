"""The Gemini API (``generateContent`` with image output) as an engine.

One call makes one image, so a job of n seeds is n calls, each with its own
``generationConfig.seed``. The request keeps to the Gemini Developer API's public contract
(``x-goog-api-key``, ``/v1beta``), so Google's hosted API and another Plantain server (whose Gemini
dialect speaks the same contract) are both served by swapping the base URL and key:

- inputs travel as ``inlineData`` PNGs, after the prompt, in one user turn;
- ``imageConfig.aspectRatio`` is the request's ratio (an exact size's nearest table ratio); none
  lets the provider choose (1:1, or the input's shape when editing), as Gemini itself does;
- ``imageConfig.imageSize`` is sent only for a tier other than 1K: 1K is every model's default,
  and Gemini 2.5 Flash Image takes no other;
- the output format is the provider's own: ``outputMimeType`` is a Vertex AI field, which the
  Developer API does not take, and the provider's bytes are handed out as they came anyway;
- ``seed`` is an int32 in Gemini's schema, so a larger seed is folded into it (``seed % 2**31``):
  the same seed still asks for the same image.

A candidate without an image (``finishReason`` IMAGE_SAFETY, PROHIBITED_CONTENT, a text-only
refusal) or a blocked prompt (``promptFeedback.blockReason``) is a refusal: a
:class:`~plantain.errors.ProviderError` with status 200, never retried, that names the reason.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import quote

from plantain.errors import ProviderError
from plantain.imaging.sizes import nearest_aspect_ratio
from plantain.providers.base import RemoteEngine, RemoteImage, RemoteJob
from plantain.types import ImageRequest

SEED_MODULUS = 2**31  # generationConfig.seed is an int32


class GeminiEngine(RemoteEngine):
    kind = "gemini"
    default_max_inputs = 14  # Gemini 3 Pro Image's limit; 2.5 Flash Image takes 3 "best"

    def call(self, job: RemoteJob, request: ImageRequest) -> list[RemoteImage]:
        body = self.body(job, request)
        path = (
            f"v1beta/models/{quote(self.config.model.removeprefix('models/'), safe='-._~')}:generateContent"
        )
        key = self.config.key()
        headers = {"x-goog-api-key": key} if key else {}
        made = []
        for seed in job.seeds:
            body["generationConfig"]["seed"] = seed % SEED_MODULUS
            made.append(self.image_of(self.post(path, body, headers)))
        return made

    def body(self, job: RemoteJob, request: ImageRequest) -> dict[str, Any]:
        """The ``generateContent`` body for ``job``, without its seed."""
        parts: list[dict[str, Any]] = [{"text": job.prompt}]
        for image in self.inputs(job, request):
            data = base64.b64encode(image.data).decode("ascii")
            parts.append({"inlineData": {"mimeType": image.media_type, "data": data}})
        image_config: dict[str, str] = {}
        ratio = request.aspect_ratio
        if ratio is None and request.width is not None and request.height is not None:
            ratio = nearest_aspect_ratio(request.width, request.height)
        if ratio is not None:
            image_config["aspectRatio"] = ratio
        if request.size != "1K":
            image_config["imageSize"] = request.size
        config: dict[str, Any] = {"responseModalities": ["IMAGE"]}
        if image_config:
            config["imageConfig"] = image_config
        return {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}

    def image_of(self, answer: Any) -> RemoteImage:
        """The image of a ``GenerateContentResponse``: the first image part of the first candidate
        that is not a thought (Gemini 3 Pro Image sends its drafts as ``thought`` parts first)."""
        if not isinstance(answer, dict):
            raise self._refusal("answered something that is not a GenerateContentResponse")
        feedback = answer.get("promptFeedback") or {}
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            message = feedback.get("blockReasonMessage")
            raise self._refusal(
                f"blocked the prompt ({feedback['blockReason']}{': ' + message if message else ''})"
            )
        candidates = answer.get("candidates")
        if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
            raise self._refusal("answered no candidate")
        candidate = candidates[0]
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        texts = []
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict) or part.get("thought"):
                continue
            blob = part.get("inlineData") or part.get("inline_data")
            if isinstance(blob, dict) and isinstance(blob.get("data"), str):
                mime_type = blob.get("mimeType") or blob.get("mime_type")
                return RemoteImage(self._decode_base64(blob["data"]), mime_type or None)
            if isinstance(part.get("text"), str):
                texts.append(part["text"].strip())
        reason = candidate.get("finishReason") or "no reason given"
        said = candidate.get("finishMessage") or " ".join(text for text in texts if text)
        raise self._refusal(f"made no image (finishReason {reason}{': ' + said[:300] if said else ''})")

    def _decode_base64(self, data: str) -> bytes:
        """Standard or URL-safe base64, padded or not (Google sends standard; others vary)."""
        text = data.strip().replace("-", "+").replace("_", "/")
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise self._refusal("sent an image part whose data is not base64") from None

    def _refusal(self, what: str) -> ProviderError:
        """Not retried: the same request would be refused the same way."""
        return ProviderError(
            f"provider {self.name} (gemini, {self.config.model}) {what}", upstream_status=200
        )
