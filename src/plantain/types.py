"""The internal model: one request type every front door converts into, one result type back.

Vendor formats (Gemini, OpenAI, task API) live at the edges and convert to and from these.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    model_validator,
)

from plantain.errors import ContentBlockedError, InvalidRequestError, PlantainError
from plantain.imaging.sizes import ASPECT_RATIOS, TIERS

MAX_IMAGES_PER_REQUEST = 10
MAX_PREVIEWS = 3  # previews per request: OpenAI's partial_images allows 0-3
MAX_LORAS = 4  # LoRAs one request may combine (docs/loras.md)
MAX_SEED = 2**63 - 1 - MAX_IMAGES_PER_REQUEST  # seed + index must stay a valid torch seed

OutputFormat = Literal["png", "jpeg", "webp", "avif"]

MEDIA_TYPES: dict[str, str] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "avif": "image/avif",
}

# auto: whatever the engine makes (opaque); transparent needs a format with alpha (png, webp, avif).
Background = Literal["auto", "opaque", "transparent"]

# How strictly the safety stage screens prompts and images (safety/policy.py), strictest first. None in
# a request means the server's default level (setting ``safety_level``).
SafetyLevel = Literal["strict", "standard", "relaxed", "off"]
SAFETY_LEVELS: tuple[str, ...] = get_args(SafetyLevel)


def _normalise_format(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip().lower()
        return "jpeg" if value == "jpg" else value
    return value


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _normalise_tier(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip().upper()
        return "512" if value in {"0.5K", "512PX"} else value
    return value


def _check_aspect_ratio(value: Any) -> Any:
    if value is None or value in ASPECT_RATIOS:
        return value
    raise ValueError(f"must be one of {', '.join(ASPECT_RATIOS)}")


class InputImage(BaseModel):
    """An input image as the caller sent it: raw bytes, decoded and checked later; or an http(s)
    ``url`` that the scheduler fetches only once the request has passed every check that needs
    no bytes (``FrontDoor.check``), so that a refused request fetches nothing."""

    model_config = ConfigDict(frozen=True)

    data: bytes = Field(default=b"", repr=False)  # empty until a ``url`` is fetched
    label: str = "input image"  # how errors name it: a file name, or "image 2"
    url: str | None = None  # still to be fetched


class LoraChoice(BaseModel):
    """One LoRA a request asks for: a name from the operator's allow-list for its engine (setting
    ``loras``), never a path, and its scale (None: the allow-list's default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    scale: float | None = Field(default=None, ge=-4.0, le=4.0)


class EngineOptions(BaseModel):
    """Sampler settings that override the engine's preset for its checkpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int | None = Field(default=None, ge=1, le=200)
    guidance: float | None = Field(default=None, ge=0.0, le=30.0)
    # A multiple of the preset's steps (OpenAI `quality`), rounded, at least 1; `steps` wins.
    steps_scale: float | None = Field(default=None, gt=0.0, le=4.0)
    # Tries after the first when a remote provider answers 429 or 5xx or not at all (inference.sh's
    # retry_count); None: the provider's own ``retries`` setting. A local engine has none to make.
    retries: int | None = Field(default=None, ge=0, le=10)
    # A named preset of the engine (its card lists them, e.g. qwen-image-edit's "lightning"): its
    # steps, guidance and LoRAs replace the default preset's; explicit steps and guidance still win.
    preset: str | None = Field(default=None, min_length=1, max_length=64)


class ProvenanceChoice(BaseModel):
    """What a request asked of the provenance marks: ``None`` is the server's default; ``False``
    an opt-out, refused unless the operator allows it (setting ``provenance_opt_out``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    watermark: bool | None = None
    content_credentials: bool | None = None
    # How the caller's dialect names each choice, for the error that refuses an opt-out.
    watermark_field: str = "watermark"
    content_credentials_field: str = "content_credentials"


class ConversationTurn(BaseModel):
    """One earlier turn of a conversation (Gemini ``contents``, chat ``messages``) as the planner
    reads it to resolve which earlier image an edit means."""

    model_config = ConfigDict(frozen=True)

    role: Literal["user", "model"]
    text: str
    images: int = 0  # images the turn carried, in order


class ImageRequest(BaseModel):
    """One request to make or edit images, whatever door it came in by."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(min_length=1)
    images: tuple[InputImage, ...] = ()
    # Where to edit the first image (inpainting): a greyscale PNG the same size as it, white where
    # to repaint and black where to keep (diffusers' convention; a dialect converts its own). Only
    # engines that inpaint take one (``Capabilities.inpaint``).
    mask: InputImage | None = None
    aspect_ratio: Annotated[str | None, BeforeValidator(_check_aspect_ratio)] = None
    size: Annotated[Literal["512", "1K", "2K", "4K"], BeforeValidator(_normalise_tier)] = "1K"
    # An exact output size in pixels (OpenAI's ``size="1536x1024"``), both or neither: it wins
    # over ``aspect_ratio`` and ``size``, and the engine refuses it unless it makes it as it is.
    width: int | None = Field(default=None, ge=1, le=65536)
    height: int | None = Field(default=None, ge=1, le=65536)
    num_images: int = Field(default=1, ge=1, le=MAX_IMAGES_PER_REQUEST)
    output_format: Annotated[OutputFormat, BeforeValidator(_normalise_format)] = "png"
    output_quality: int | None = Field(default=None, ge=0, le=100)  # JPEG/WebP/AVIF quality; PNG is lossless
    background: Annotated[Background, BeforeValidator(_lower)] = "auto"
    safety: SafetyLevel | None = None
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    engine: str | None = None  # None: the server's default engine
    options: EngineOptions = EngineOptions()
    provenance: ProvenanceChoice = ProvenanceChoice()
    # Intermediate images to stream while it runs (OpenAI's partial_images): the worker sends
    # them on the event channel to the caller watching, and records none.
    previews: int = Field(default=0, ge=0, le=MAX_PREVIEWS)
    # LoRAs from the operator's allow-list for the engine (docs/loras.md), applied for this request.
    loras: tuple[LoraChoice, ...] = Field(default=(), max_length=MAX_LORAS)
    # Parameters the caller sent that nothing here uses, as the caller named them: reported back
    # (docs/parameters.md), never applied.
    ignored: tuple[str, ...] = ()
    # The planner stage (planner/, docs/planner.md): None follows the server's ``planner`` setting;
    # False skips it for this request; True asks for it (refused when no planner is configured).
    plan: bool | None = None
    # Search grounding (search/, docs/grounding.md): True looks the request up with the server's
    # search provider before the engine runs (refused at the door when none is configured).
    grounding: bool = False
    # A conversation's earlier turns (Gemini contents, chat messages) when they hold more than one
    # image, so the planner can resolve which one an edit means (docs/planner.md): the turns, their
    # images in order, and how many of ``images`` (the first ones) the dialect's own rule took from
    # them (the newest earlier turn with images). Empty when there is no choice to make.
    history: tuple[ConversationTurn, ...] = ()
    earlier: tuple[InputImage, ...] = ()
    from_history: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _exact_size_is_a_pair(self) -> ImageRequest:
        if (self.width is None) != (self.height is None):
            raise InvalidRequestError(
                "width and height: give both for an exact size, or neither", field="size"
            )
        return self

    @model_validator(mode="after")
    def _mask_needs_an_image(self) -> ImageRequest:
        if self.mask is not None and not self.images:
            raise InvalidRequestError(
                "mask: a mask marks where to edit an input image; send the image with it", field="mask"
            )
        return self

    @model_validator(mode="after")
    def _transparency_needs_alpha(self) -> ImageRequest:
        if self.background == "transparent" and self.output_format == "jpeg":
            raise InvalidRequestError(
                "background: 'transparent' needs an output format with an alpha channel, and JPEG "
                "has none; ask for PNG, WebP or AVIF output, or for an opaque background",
                field="background",
            )
        return self

    @classmethod
    def create(cls, **fields: Any) -> ImageRequest:
        """Validate ``fields``; a bad value raises InvalidRequestError naming field and limit."""
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise _teaching_error(exc) from None


class Provenance(BaseModel):
    """The provenance marks one output image carries."""

    model_config = ConfigDict(frozen=True)

    watermark: bool = False
    content_credentials: bool = False
    # The remote provider (engine name) that made the image (docs/providers.md): its bytes are
    # handed out as it sent them, so ``content_credentials`` is whether the provider's own
    # manifest is in them, and this server added no watermark. None: made here.
    provider: str | None = None

    @property
    def applied(self) -> tuple[str, ...]:
        """The marks by name, for the ``X-Plantain-Provenance`` header."""
        names = ("watermark", "content-credentials")
        marks = (self.watermark, self.content_credentials)
        return tuple(name for name, on in zip(names, marks, strict=True) if on)


class GeneratedImage(BaseModel):
    """One encoded output image and the seed that reproduces it."""

    model_config = ConfigDict(frozen=True)

    data: bytes = Field(repr=False)
    media_type: str
    width: int
    height: int
    seed: int
    provenance: Provenance = Provenance()


class PlanResult(BaseModel):
    """What the planner stage made of a request before the engine ran (planner/): the prompt the
    engine got instead of the caller's, and the text that goes beside the images."""

    model_config = ConfigDict(frozen=True)

    model: str  # the planner's checkpoint
    original_prompt: str
    revised_prompt: str  # what the engine was given
    text: str  # the answer's text part (Gemini text part, chat content, inference.sh description)
    seconds: float
    input_tokens: int
    output_tokens: int
    # Which earlier image of the conversation the edit was resolved to (its label), when the
    # planner chose one other than the dialect's rule would have; None: the rule's choice stood.
    edited: str | None = None


class GroundingSource(BaseModel):
    """A web page the search returned, whose words went into the rewrite."""

    model_config = ConfigDict(frozen=True)

    uri: str
    title: str
    snippet: str = ""


class GroundingReference(BaseModel):
    """An image the search returned, fetched and ranked by image-text similarity."""

    model_config = ConfigDict(frozen=True)

    image_uri: str
    source_uri: str  # the page it is on
    title: str
    score: float  # similarity to the prompt (the reranker's; higher is closer)
    used: bool  # given to the engine as a reference image


class GroundingResult(BaseModel):
    """What search grounding found for a request before the engine ran (search/)."""

    model_config = ConfigDict(frozen=True)

    provider: str  # the search provider's kind (searxng, brave)
    queries: tuple[str, ...]
    sources: tuple[GroundingSource, ...]
    references: tuple[GroundingReference, ...]  # best first
    seconds: float
    searches: int  # calls made to the search API

    @property
    def facts(self) -> list[str]:
        """The sources as lines for the planner's rewrite."""
        return [f"{source.title}: {source.snippet}".strip(": ") for source in self.sources]


class Upscaled(BaseModel):
    """How an image larger than its engine makes was made (docs/upscaling.md): at the engine's
    native ``from_width`` x ``from_height``, then enlarged by ``upscaler`` to ``width`` x ``height``
    and, when ``refine_strength`` > 0, repainted tile by tile by the engine at that strength."""

    model_config = ConfigDict(frozen=True)

    from_width: int
    from_height: int
    width: int
    height: int
    upscaler: str
    refine_strength: float = 0.0

    def describe(self) -> str:
        """``1344x768 upscaled to 5376x3072 by ESRGAN 4x (x4.pth)``, and the refine if any."""
        text = (
            f"{self.from_width}x{self.from_height} upscaled to {self.width}x{self.height} by {self.upscaler}"
        )
        return text + (f", refined at strength {self.refine_strength:g}" if self.refine_strength else "")


class ImageResult(BaseModel):
    """What a request produced."""

    model_config = ConfigDict(frozen=True)

    engine: str
    images: tuple[GeneratedImage, ...]
    steps: int
    guidance: float
    seconds: float  # wall time of the engine run
    plan: PlanResult | None = None  # None: no planner ran
    grounding: GroundingResult | None = None  # None: not grounded
    upscaled: Upscaled | None = None  # None: made at the asked size


# --- tasks: every request, whichever door it came in by, runs as one -------------------------

TaskStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TASK_STATUSES: tuple[str, ...] = get_args(TaskStatus)
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
EventType = Literal["queued", "started", "progress", "completed", "failed", "cancelled"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
TERMINAL_EVENTS: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


class TaskOutput(BaseModel):
    """One stored output image: fetched at ``/v1/files/{file_id}``."""

    model_config = ConfigDict(frozen=True)

    file_id: str
    media_type: str
    width: int
    height: int
    seed: int
    provenance: Provenance = Provenance()


class TaskResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    engine: str
    outputs: tuple[TaskOutput, ...]
    steps: int
    guidance: float
    seconds: float  # wall time of the engine run
    plan: PlanResult | None = None  # None: no planner ran
    grounding: GroundingResult | None = None  # None: not grounded
    upscaled: Upscaled | None = None  # None: made at the asked size


class TaskError(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    message: str
    status: int
    field: str | None = None
    category: str | None = None  # content_blocked: the safety category that matched

    @classmethod
    def of(cls, error: PlantainError) -> TaskError:
        """``error`` as a task stores it (``errors.error_from_code`` raises it again)."""
        category = error.category if isinstance(error, ContentBlockedError) else None
        return cls(
            code=error.code, message=error.message, status=error.status, field=error.field, category=category
        )


class TokenUsage(BaseModel):
    """Tokens as Gemini counts them for the model asked for (usage.py); the prompt's are an
    estimate, since no tokenizer runs."""

    model_config = ConfigDict(frozen=True)

    input_text: int = 0
    input_image: int = 0
    output: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def input(self) -> int:
        return self.input_text + self.input_image

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> int:
        return self.input + self.output


class Cost(BaseModel):
    """An estimate: device time at the operator's ``price_per_device_hour``, not a bill."""

    model_config = ConfigDict(frozen=True)

    amount: float
    currency: str


class Usage(BaseModel):
    """What one task used: tokens, images made, device seconds and their estimated cost."""

    model_config = ConfigDict(frozen=True)

    tokens: TokenUsage
    images: int
    device_seconds: float
    cost: Cost
    provenance_seconds: float = 0.0  # watermarking and signing, not in device_seconds or the cost
    # The engine that made the images: for a route (providers/routing.py), the member that served
    # after any failover; else the task's own engine. None: it never ran.
    served_by: str | None = None
    planner_seconds: float = 0.0  # the planner stage (planner/), not in device_seconds or the cost
    planner_input_tokens: int = 0  # tokens the planner's model read and wrote (not in ``tokens``,
    planner_output_tokens: int = 0  # which counts as Gemini does for the image model)
    search_seconds: float = 0.0  # search grounding (search/): searching, fetching, reranking
    searches: int = 0  # calls made to the search provider


class Task(BaseModel):
    """A request and everything that happened to it, as stored."""

    model_config = ConfigDict(frozen=True)

    id: str
    status: TaskStatus
    model: str  # the name the caller asked for
    engine: str
    source: str  # the front door: tasks, gemini, openai, batch
    request: dict[str, Any]  # the ImageRequest's fields, input images left out
    input_count: int
    attempts: int
    cancel_requested: bool
    webhook_url: str | None
    webhook_events: tuple[str, ...] | None
    result: TaskResult | None
    error: TaskError | None
    created_at: float
    started_at: float | None
    completed_at: float | None
    expires_at: float | None
    api_key_id: str = "anonymous"  # who submitted it: a hash of the key, never the key (usage.py)
    usage: Usage | None = None  # once it has ended

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


class TaskEvent(BaseModel):
    """One numbered event of a task (numbers start at 1 and have no gaps): what SSE replays."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    seq: int
    type: EventType
    data: dict[str, Any]
    created_at: float


def _teaching_error(exc: ValidationError) -> InvalidRequestError:
    """Turn pydantic's first error into one sentence naming the field, the value and the limit."""
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"]) or "request"
    shown = "missing" if error["type"] == "missing" else f"{error.get('input')!r} is not allowed"
    return InvalidRequestError(f"{field}: {shown}; {_describe_limit(error)}", field=field)


def _describe_limit(error: Any) -> str:
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind in {"greater_than_equal", "less_than_equal"}:
        low, high = _field_bounds(error["loc"])
        return f"must be between {low} and {high}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return str(error["msg"]).lower()


def _field_bounds(loc: tuple[Any, ...]) -> tuple[object, object]:
    """The ge/le bounds declared on the field at ``loc`` (nested models followed)."""
    model: Any = ImageRequest
    info = None
    for part in loc:
        info = model.model_fields[part]
        model = info.annotation
    metadata = info.metadata if info else []
    low = next((m.ge for m in metadata if hasattr(m, "ge")), None)
    high = next((m.le for m in metadata if hasattr(m, "le")), None)
    return low, high


__all__ = [
    "MAX_IMAGES_PER_REQUEST",
    "MEDIA_TYPES",
    "SAFETY_LEVELS",
    "TIERS",
    "Background",
    "EngineOptions",
    "GeneratedImage",
    "ImageRequest",
    "ImageResult",
    "InputImage",
    "OutputFormat",
    "SafetyLevel",
]
