"""What a benchmark runs: one request shape, how many in flight, and when to stop.

Each request gets its own seed (``seed + index × images``) and, unless ``repeat_prompt``, its own
prompt, so neither a cache of prompt embeddings nor of outputs flatters the figures. Every check
names the command-line option at fault, as ``plantain bench`` spells it.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from plantain.errors import InvalidRequestError
from plantain.imaging.sizes import ASPECT_RATIOS, TABLE_1K, TIER_SCALE, TIERS
from plantain.types import ImageRequest, InputImage

DEFAULT_PROMPT = "a red bicycle leaning on a sunlit wall"
FORMATS = ("png", "jpeg", "webp")
MAX_IMAGES = 10  # per request, as every dialect allows
MAX_CONCURRENCY = 256
REQUESTS_PER_SLOT = 4  # the default stop rule: this many requests per concurrent slot


@dataclass(frozen=True)
class Workload:
    """One benchmark workload; build it with :meth:`create`, which checks every value."""

    engine: str
    tier: str = "1K"
    aspect_ratio: str = "1:1"
    steps: int | None = None  # None: the checkpoint's preset
    images: int = 1  # per request
    concurrency: int = 1  # requests in flight at once
    requests: int | None = None  # stop after this many measured requests…
    duration: float | None = None  # …or after this many seconds (requests then in flight finish)
    warmup: int | None = None  # requests run first, left out of the figures; None: concurrency
    repeats: int = 1
    seed: int = 0
    prompt: str = DEFAULT_PROMPT
    repeat_prompt: bool = False  # the same prompt every time (prompt caches then hit)
    output_format: str = "png"
    input_image: Path | None = None  # an edit of this image (or of a made-up one: ``edit``)
    edit: bool = False

    @classmethod
    def create(cls, **fields: Any) -> Workload:
        """A checked workload. By default it stops after 4 requests per concurrent slot and warms
        up with one request per slot (so each batch size a server forms has run once)."""
        fields = {name: value for name, value in fields.items() if value is not None}
        if "tier" in fields:
            fields["tier"] = _tier(str(fields["tier"]))
        workload = cls(**fields)
        workload.check()
        defaults: dict[str, Any] = {"warmup": workload.concurrency}
        if workload.requests is None and workload.duration is None:
            defaults["requests"] = REQUESTS_PER_SLOT * workload.concurrency
        return cls(**{**defaults, **fields})

    def check(self) -> None:
        _check_choice("--aspect-ratio", self.aspect_ratio, ASPECT_RATIOS)
        _check_choice("--format", self.output_format, FORMATS)
        _at_least("--steps", self.steps, 1)
        _within("--images", self.images, 1, MAX_IMAGES)
        _within("--concurrency", self.concurrency, 1, MAX_CONCURRENCY)
        _at_least("--requests", self.requests, 1)
        _at_least("--warmup", self.warmup, 0)
        _at_least("--repeats", self.repeats, 1)
        if self.duration is not None and not self.duration > 0:
            raise InvalidRequestError(
                f"--duration: must be more than 0 seconds; got {self.duration:g}", field="--duration"
            )
        if self.requests is not None and self.duration is not None:
            raise InvalidRequestError(
                "--requests and --duration are two stop rules; give one of them", field="--duration"
            )
        if not self.prompt.strip():
            raise InvalidRequestError("--prompt: must not be empty", field="--prompt")
        if self.input_image is not None and not self.input_image.is_file():
            raise InvalidRequestError(
                f"--input-image: no such file: {self.input_image}", field="--input-image"
            )

    @property
    def edits(self) -> bool:
        return self.edit or self.input_image is not None

    def seed_for(self, index: int) -> int:
        return self.seed + index * self.images

    def prompt_for(self, index: int) -> str:
        return self.prompt if self.repeat_prompt else f"{self.prompt}, take {index}"

    def input_bytes(self) -> bytes | None:
        """The edit's input: ``input_image``, else a made-up picture at the nominal output size;
        None for text-to-image."""
        if self.input_image is not None:
            return self.input_image.read_bytes()
        return synthetic_picture(*self.nominal_size()) if self.edit else None

    def nominal_size(self) -> tuple[int, int]:
        """The tier's size for the aspect ratio (multiples of 16; an engine may round otherwise)."""
        width, height = TABLE_1K[self.aspect_ratio]
        scale = TIER_SCALE[self.tier]
        return round(width * scale / 16) * 16, round(height * scale / 16) * 16

    def task_input(self, index: int, input_image: bytes | None = None) -> dict[str, Any]:
        """Request ``index`` as the task API's ``input``."""
        fields: dict[str, Any] = {
            "prompt": self.prompt_for(index),
            "resolution": self.tier,
            "aspect_ratio": self.aspect_ratio,
            "num_images": self.images,
            "seed": self.seed_for(index),
            "output_format": self.output_format,
        }
        if self.steps is not None:
            fields["steps"] = self.steps
        if input_image is not None:
            fields["images"] = [input_image]
        return fields

    def image_request(self, index: int, input_image: bytes | None = None) -> ImageRequest:
        """Request ``index`` as the core model, for the engine in-process."""
        images = [InputImage(data=input_image, label="input image")] if input_image is not None else []
        return ImageRequest.create(
            prompt=self.prompt_for(index),
            images=images,
            aspect_ratio=self.aspect_ratio,
            size=self.tier,
            num_images=self.images,
            seed=self.seed_for(index),
            output_format=self.output_format,
            engine=self.engine,
            options={"steps": self.steps},
        )

    def describe(self) -> str:
        stop = f"{self.requests} requests" if self.requests is not None else f"{self.duration:g} s"
        steps = f"{self.steps} steps" if self.steps is not None else "preset steps"
        kind = "edit" if self.edits else "text-to-image"
        return (
            f"{self.engine} {kind}, {self.tier} {self.aspect_ratio}, {steps}, {self.images} image(s) "
            f"per request, concurrency {self.concurrency}, {stop} (+{self.warmup or 0} warm-up), "
            f"{self.repeats} repeat(s)"
        )

    def record(self) -> dict[str, Any]:
        """The workload as JSON values."""
        values = asdict(self)
        values["input_image"] = str(self.input_image) if self.input_image is not None else None
        return values


def synthetic_picture(width: int, height: int) -> bytes:
    """A PNG with some structure (a gradient), so encoders and VAEs do real work on it."""
    ramp = Image.linear_gradient("L").resize((width, height))
    rings = Image.radial_gradient("L").resize((width, height))
    picture = Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.FLIP_TOP_BOTTOM), rings))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _tier(value: str) -> str:
    tier = value.upper()
    if tier not in TIERS:
        raise InvalidRequestError(f"--tier: must be one of {', '.join(TIERS)}; got {value!r}", field="--tier")
    return tier


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidRequestError(
            f"{option}: must be one of {', '.join(choices)}; got {value!r}", field=option
        )


def _at_least(option: str, value: int | None, low: int) -> None:
    if value is not None and value < low:
        raise InvalidRequestError(f"{option}: must be at least {low}; got {value}", field=option)


def _within(option: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise InvalidRequestError(f"{option}: must be from {low} to {high}; got {value}", field=option)
