"""The OpenAI Images API as an engine: ``/images/generations``, and ``/images/edits`` for inputs.

The request keeps to OpenAI's public contract, so OpenAI's hosted API and another Plantain server
(whose OpenAI dialect speaks it) are both served by swapping the base URL and key. One call makes
all of a job's images (``n``). What does not map one to one:

- **Sizes.** OpenAI makes a few fixed sizes, one tier: the planned size is sent when the model
  makes it as it is, else the model's size nearest in shape (GPT image models: 1024x1024,
  1536x1024, 1024x1536; dall-e-3: 1024x1024, 1792x1024, 1024x1792; dall-e-2: 1024x1024). The
  image's real size is read from the bytes it sends.
- **Seeds.** OpenAI takes none and refuses parameters it does not know, so the seed goes only to
  an API other than OpenAI's own (``seed``, the Plantain extension: another Plantain server then
  makes ``seed, seed+1, ...`` as this one would). Through api.openai.com an image is not
  reproducible from its seed.
- **Output format.** GPT image models take ``output_format`` (png, jpeg, webp; avif is asked as
  png) and ``output_compression``; dall-e models take neither and answer PNG. Every model is asked
  for ``b64_json`` where it takes ``response_format`` (dall-e); an answer with a ``url`` instead is
  fetched.
- **Background.** ``transparent`` or ``opaque`` goes as ``background`` (GPT image models), with
  the caller's own prompt (not the one steered for keying out): the provider makes the transparency.
- **Quality.** A steps scale (what Plantain's own OpenAI dialect makes of ``quality``) goes back
  as ``quality``: below 1 ``low``, above 1 ``high`` (dall-e-3: ``hd``); none or 1 leaves the
  provider's default.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any
from urllib.parse import urlsplit

from plantain.errors import ProviderError
from plantain.imaging.background import STEER_SUFFIX
from plantain.providers.base import RemoteEngine, RemoteImage, RemoteJob
from plantain.types import ImageRequest

HOSTED_HOST = "api.openai.com"  # refuses unknown parameters, Plantain's seed among them

GPT_IMAGE_SIZES = ((1024, 1024), (1536, 1024), (1024, 1536))
DALL_E_3_SIZES = ((1024, 1024), (1792, 1024), (1024, 1792))
DALL_E_2_SIZES = ((1024, 1024),)
FORMATS = {"png": "png", "jpeg": "jpeg", "webp": "webp", "avif": "png"}  # OpenAI makes no AVIF


class OpenAIEngine(RemoteEngine):
    kind = "openai"
    default_max_inputs = 16  # gpt-image-1's edits take up to 16 images

    def call(self, job: RemoteJob, request: ImageRequest) -> list[RemoteImage]:
        fields = self.fields(job, request)
        key = self.config.key()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # dall-e-3 makes one image a call (n=1): one call per seed, each with its own seed.
        calls = [fields]
        if fields["n"] > 1 and self._model.startswith("dall-e-3"):
            calls = [{**fields, "n": 1} | ({"seed": seed} if "seed" in fields else {}) for seed in job.seeds]
        made = []
        for sent in calls:
            if not job.images:
                answer = self.post("images/generations", sent, headers)
            else:
                answer = self._post_form("images/edits", sent, self._files(job, request), headers)
            made.extend(self.images_of(answer))
        return made

    @property
    def _model(self) -> str:
        return self.config.model.removeprefix("openai/")

    def fields(self, job: RemoteJob, request: ImageRequest) -> dict[str, Any]:
        """The request's parameters, the same for a generation (JSON) and an edit (form fields)."""
        model = self._model
        width, height = self.size_for(job.width, job.height)
        fields: dict[str, Any] = {
            "model": model,
            "prompt": request.prompt.removesuffix(STEER_SUFFIX),
            "n": len(job.seeds),
            "size": f"{width}x{height}",
        }
        quality = _quality(model, request.options.steps_scale)
        if quality is not None:
            fields["quality"] = quality
        if model.startswith("dall-e"):
            fields["response_format"] = "b64_json"
        else:
            fields["output_format"] = FORMATS[request.output_format]
            if request.output_quality is not None and fields["output_format"] != "png":
                fields["output_compression"] = request.output_quality
            if request.background != "auto":
                fields["background"] = request.background
        if urlsplit(self.config.base_url).hostname != HOSTED_HOST:
            fields["seed"] = job.seeds[0]
        return fields

    def size_for(self, width: int, height: int) -> tuple[int, int]:
        """``width x height`` if the model makes it, else its size nearest in shape (log ratio)."""
        model = self._model
        sizes = (
            DALL_E_2_SIZES
            if model.startswith("dall-e-2")
            else DALL_E_3_SIZES
            if model.startswith("dall-e-3")
            else GPT_IMAGE_SIZES
        )
        if (width, height) in sizes:
            return width, height
        shape = math.log(width / height)
        return min(sizes, key=lambda size: abs(math.log(size[0] / size[1]) - shape))

    def images_of(self, answer: Any) -> list[RemoteImage]:
        """The images of an ``ImagesResponse``, in order: ``b64_json``, or a ``url`` fetched."""
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list) or not data:
            raise ProviderError(
                f"provider {self.name} (openai, {self.config.model}) answered no images", upstream_status=200
            )
        media_type = _media_type(answer.get("output_format"))
        images = []
        for item in data:
            if isinstance(item, dict) and isinstance(item.get("b64_json"), str):
                images.append(RemoteImage(self._decode_base64(item["b64_json"]), media_type))
            elif isinstance(item, dict) and isinstance(item.get("url"), str):
                images.append(self.get_bytes(item["url"]))
            else:
                raise ProviderError(
                    f"provider {self.name} (openai) answered an image with neither b64_json nor url",
                    upstream_status=200,
                )
        return images

    def _files(self, job: RemoteJob, request: ImageRequest) -> list[tuple[str, tuple[str, bytes, str]]]:
        """Each input as a file field: ``image[]`` (OpenAI's name for several; one works too)."""
        return [
            (
                "image[]",
                (f"image-{index}.{_EXTENSIONS[str(image.media_type)]}", image.data, str(image.media_type)),
            )
            for index, image in enumerate(self.inputs(job, request), start=1)
        ]

    def _post_form(
        self,
        path: str,
        fields: dict[str, Any],
        files: list[tuple[str, tuple[str, bytes, str]]],
        headers: dict[str, str],
    ) -> Any:
        """A multipart POST (edits take a form, not JSON); every form field is a string."""
        data = {name: str(value) for name, value in fields.items()}
        return self._json(self._send("POST", self.url(path), data=data, files=files, headers=headers))

    def _decode_base64(self, data: str) -> bytes:
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ProviderError(
                f"provider {self.name} (openai) sent b64_json that is not base64", upstream_status=200
            ) from None


def _quality(model: str, steps_scale: float | None) -> str | None:
    """OpenAI's ``quality`` for a steps scale (None: the provider's default)."""
    if steps_scale is None or steps_scale == 1.0 or model.startswith("dall-e-2"):
        return None
    if model.startswith("dall-e"):
        return "hd" if steps_scale > 1 else "standard"
    return "high" if steps_scale > 1 else "low"


def _media_type(output_format: Any) -> str | None:
    """The answer's ``output_format`` as a media type (None: sniffed from the bytes)."""
    if output_format in {"png", "jpeg", "webp", "avif"}:
        return f"image/{output_format}"
    return None


_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}  # a file name's, by type
