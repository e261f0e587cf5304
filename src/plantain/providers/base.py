"""The contract of a remote provider: an engine whose images another service makes.

A :class:`RemoteEngine` plans like any engine (the same checks, the same exact sizes from the
tier table), then, instead of a pipeline call, sends each job to its provider through one
``httpx`` client (injected, or made from the provider's settings) and returns the images the
provider sent. Each image keeps the provider's bytes as they came (:class:`Origin`, in the
image's ``info``): finishing hands those bytes out unchanged, so a provider's content credentials
survive and this server never watermarks or signs an image it did not make (docs/providers.md).

A family of providers (``gemini.py``, ``openai.py``, ``replicate.py``) implements :meth:`call`:
one job in, its images out, with :meth:`RemoteEngine.post` and :meth:`RemoteEngine.get_bytes`
turning every failure into a :class:`~plantain.errors.ProviderError` that says whether a retry may
help (429, 5xx, no answer) or not (a refusal).
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import io
import threading
import time
import warnings
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image

from plantain.engines.base import Capabilities, Engine, EngineJob, Preset, Previews, StepCallback, StopFlag
from plantain.engines.loading import WeightsSource, WeightsStatus
from plantain.errors import ProviderError, TaskCancelledError
from plantain.imaging.codecs import encode_image, sniff_media_type
from plantain.imaging.sizes import TABLE_1K, TIER_SCALE, SizeLimits
from plantain.providers.retry import Backoff, with_retries
from plantain.settings import Settings
from plantain.settings.providers import ProviderConfig
from plantain.types import ImageRequest

ORIGIN = "plantain.origin"  # PIL ``info`` key: the Origin of an image a provider made
SERVED_BY = "plantain.served_by"  # PIL ``info`` key: the engine that made an image (routes, providers)

# What a provider may be asked for: the tier table up to 4K at every ratio (the provider refuses
# what it does not make, and a route then tries its next engine).
_LARGEST_4K = max(width * height for width, height in TABLE_1K.values()) * int(TIER_SCALE["4K"]) ** 2
REMOTE_SIZES = SizeLimits(multiple=16, min_side=64, max_pixels=_LARGEST_4K, max_aspect=8.0)
PASSED_INPUT_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})  # sent as the caller sent them
MAX_OUTPUT_PIXELS = 8192 * 8192  # a provider's image larger than this is refused, not decoded


@dataclass(frozen=True)
class Origin:
    """Where an image came from when a provider made it: the bytes it sent, kept as they are."""

    engine: str  # this server's name for the provider (a key of the ``providers`` setting)
    kind: str  # gemini, openai, replicate
    data: bytes = dataclasses.field(repr=False)
    media_type: str
    price_per_image: float  # the provider's price, in the server's currency


@dataclass(frozen=True)
class RemoteJob(EngineJob):
    """A job for a provider: the request it came from, for what the tier table does not carry
    (aspect ratio, tier, output format)."""

    request: ImageRequest | None = None

    def with_prompt(self, prompt: str) -> EngineJob:
        """The provider reads the request's prompt too (OpenAI's), so both change."""
        request = None if self.request is None else self.request.model_copy(update={"prompt": prompt})
        return dataclasses.replace(self, prompt=prompt, request=request)


@dataclass(frozen=True)
class RemoteImage:
    """One image as a provider answered it."""

    data: bytes = dataclasses.field(repr=False)
    media_type: str | None = None  # None: sniffed from the bytes


def origin_of(image: Image.Image) -> Origin | None:
    origin = image.info.get(ORIGIN)
    return origin if isinstance(origin, Origin) else None


def served_by(image: Image.Image) -> str | None:
    name = image.info.get(SERVED_BY)
    return name if isinstance(name, str) else None


class RemoteEngine(Engine):
    """A provider as an engine. Subclasses set ``kind`` and ``default_max_inputs`` and implement
    :meth:`call`."""

    upscales = False  # its run is its own: no upscaler after it (engines/upscaling.py)

    kind: str = ""
    family = "remote"
    default_max_inputs: int = 0

    def __init__(
        self,
        name: str,
        settings: Settings,
        config: ProviderConfig,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        max_inputs = (
            config.max_input_images if config.max_input_images is not None else self.default_max_inputs
        )
        super().__init__(
            name,
            settings,
            description=f"{config.model} through the {self.kind} API at {config.base_url}",
            source=WeightsSource(engine=name),
            capabilities=Capabilities(
                text_to_image=True,
                edit=max_inputs > 0,
                max_input_images=max_inputs,
                sizes=REMOTE_SIZES,
                batchable=False,  # one provider call per job
            ),
            preset=Preset(steps=1, guidance=0.0),
        )
        self.config = config
        self.pipeline_class = f"{self.kind} API"
        self.backoff = Backoff(config.retries, config.backoff_seconds, config.max_backoff_seconds)
        self._client = client
        self._running = threading.local()  # the client of the run going on in this thread
        self._sleep = sleep

    # --- what a provider family implements ---------------------------------------------------

    @abstractmethod
    def call(self, job: RemoteJob, request: ImageRequest) -> list[RemoteImage]:
        """Ask the provider for ``job``'s images (``len(job.seeds)`` of them, in seed order)."""

    # --- the engine contract -------------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        """The injected client, else the one :meth:`run` opened for its jobs."""
        client = self._client or getattr(self._running, "client", None)
        if client is None:
            raise RuntimeError(f"engine {self.name}: provider calls are made inside run()")
        return client

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        """A client for one run when none was injected, closed after it: an engine lives as long
        as its server, and a client left open would hold its connections until then."""
        if self._client is not None:
            yield
            return
        with httpx.Client(timeout=self.config.timeout_seconds, follow_redirects=True) as client:
            self._running.client = client
            try:
                yield
            finally:
                self._running.client = None

    def weights_status(self) -> WeightsStatus:
        return WeightsStatus(present=True, location=self.config.base_url)

    @property
    def loaded(self) -> bool:
        return True

    def load(self) -> None:
        """Nothing to load: the provider holds the weights."""

    def _load(self) -> Any:
        return None

    def _generate(
        self, pipeline: Any, jobs: Sequence[EngineJob], callback: Callable[..., Any]
    ) -> list[Image.Image]:
        raise NotImplementedError("a remote engine runs through call(), not a pipeline")

    def plan(
        self,
        request: ImageRequest,
        images: Sequence[Image.Image],
        seed: int,
        *,
        max_output_pixels: int | None = None,
        mask: Image.Image | None = None,
    ) -> EngineJob:
        job = super().plan(request, images, seed, max_output_pixels=max_output_pixels, mask=mask)
        return RemoteJob(**job.fields(), request=request)

    def run(
        self,
        jobs: Sequence[EngineJob],
        on_step: StepCallback | None = None,
        should_stop: StopFlag | None = None,
        previews: Previews | None = None,
    ) -> list[list[Image.Image]]:
        """Each job sent to the provider in turn (retried on 429, 5xx or no answer); one
        "step" per job, since a provider reports none."""
        with self._session():
            return self._run(jobs, on_step, should_stop or (lambda: False))

    def _run(
        self, jobs: Sequence[EngineJob], on_step: StepCallback | None, stop: StopFlag
    ) -> list[list[Image.Image]]:
        made = []
        for done, job in enumerate(jobs, start=1):
            if stop():
                raise TaskCancelledError("cancelled before the provider was asked", step=0)
            if not isinstance(job, RemoteJob) or job.request is None:
                raise ValueError(f"engine {self.name} runs jobs it planned itself")
            request = job.request
            retries = request.options.retries
            answered = with_retries(
                lambda job=job, request=request: self.call(job, request),  # type: ignore[misc]
                self.backoff if retries is None else dataclasses.replace(self.backoff, retries=retries),
                what=f"provider {self.name}",
                should_stop=stop,
                sleep=self._sleep,
            )
            if len(answered) < len(job.seeds):
                raise ProviderError(
                    f"provider {self.name} sent {len(answered)} images for {len(job.seeds)} asked",
                    upstream_status=200,
                )
            made.append([self._decode(image) for image in answered[: len(job.seeds)]])
            if on_step is not None:
                on_step(done, len(jobs))
        return made

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        for local_only in ("fast_path", "text_embedding_cache"):
            described.pop(local_only, None)
        return {
            **described,
            "weights": "remote",
            "provider": {"kind": self.kind, "model": self.config.model, "base_url": self.config.base_url},
            "price_per_image": self.config.price_per_image,
        }

    # --- helpers for provider families ----------------------------------------------------------

    def inputs(self, job: RemoteJob, request: ImageRequest) -> list[RemoteImage]:
        """Each input image as the provider is sent it: the caller's own bytes when they are a PNG,
        JPEG or WebP (every kind reads those as they are: no decode and PNG re-encode of up to 14
        photos per call, and a JPEG is not inflated into a PNG), else the decoded image as PNG.
        A provider's planned inputs are the caller's unresized: a remote engine's input limits
        enlarge nothing."""
        sent = []
        for source, decoded in zip(request.images, job.images, strict=True):
            media_type = sniff_media_type(source.data)
            if media_type in PASSED_INPUT_TYPES:
                sent.append(RemoteImage(source.data, media_type))
            else:
                sent.append(RemoteImage(encode_image(decoded, "png"), "image/png"))
        return sent

    def url(self, path: str) -> str:
        return self.config.base_url.rstrip("/") + "/" + path.lstrip("/")

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        """POST ``body`` as JSON to ``path`` under the base URL; the decoded JSON answer."""
        return self._json(self._send("POST", self.url(path), json=body, headers=headers))

    def get_json(self, url: str, headers: dict[str, str] | None = None) -> Any:
        return self._json(self._send("GET", url, headers=headers))

    def get_bytes(self, url: str, headers: dict[str, str] | None = None) -> RemoteImage:
        """An image the provider links to (its output URL)."""
        answer = self._send("GET", url, headers=headers)
        media_type = answer.headers.get("content-type", "").split(";")[0].strip() or None
        return RemoteImage(
            answer.content, media_type if media_type and media_type.startswith("image/") else None
        )

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            answer = self.client.request(method, url, timeout=self.config.timeout_seconds, **kwargs)
        except httpx.TimeoutException:
            raise ProviderError(
                f"provider {self.name} did not answer within {self.config.timeout_seconds:g} s "
                "(its timeout_seconds)"
            ) from None
        except httpx.HTTPError as exc:
            raise ProviderError(f"provider {self.name} could not be reached: {exc}") from None
        if answer.status_code >= 400:
            raise ProviderError(
                f"provider {self.name} answered {answer.status_code}: {_detail(answer)}",
                upstream_status=answer.status_code,
                retry_after=retry_after(answer.headers.get("retry-after")),
            )
        return answer

    def _json(self, answer: httpx.Response) -> Any:
        try:
            return answer.json()
        except ValueError:
            raise ProviderError(
                f"provider {self.name} answered {answer.status_code} with a body that is not JSON",
                upstream_status=answer.status_code,
            ) from None

    def _decode(self, image: RemoteImage) -> Image.Image:
        """The provider's image decoded for screening, its bytes kept in ``info`` for finishing."""
        media_type = sniff_media_type(image.data) or image.media_type
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                opened = Image.open(io.BytesIO(image.data))
                if opened.width * opened.height > MAX_OUTPUT_PIXELS:
                    raise ValueError(f"{opened.width}x{opened.height} is larger than this server takes")
                opened.load()
        except Exception as exc:
            raise ProviderError(
                f"provider {self.name} sent an image that could not be read: {exc}", upstream_status=200
            ) from None
        decoded = opened.convert("RGBA" if "A" in opened.getbands() else "RGB")
        decoded.info[ORIGIN] = Origin(
            engine=self.name,
            kind=self.kind,
            data=image.data,
            media_type=media_type or "application/octet-stream",
            price_per_image=self.config.price_per_image,
        )
        decoded.info[SERVED_BY] = self.name
        return decoded


def retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds: delta-seconds or an HTTP date (None: absent or unreadable)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _detail(answer: httpx.Response) -> str:
    """The provider's own error message, shortened: ``error.message`` (Gemini, OpenAI), ``detail``
    (Replicate, fal), else the start of the body."""
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:300] or answer.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:300]
        for key in ("detail", "message", "title", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])[:300]
    return str(body)[:300]
