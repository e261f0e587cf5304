"""One Settings object: every knob, read from ``PLANTAIN_*`` environment variables or passed in.

Each field is documented in docs/settings.md (a test checks that none is missing). The checks of
single fields and the defaults that need code are in :mod:`plantain.settings.checks`; the
scale-out settings are in :mod:`plantain.settings.scaleout`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic_settings import SettingsConfigDict, SettingsError

from plantain.errors import ConfigurationError
from plantain.limits import INPUT_FORMATS, InputFormat
from plantain.settings.checks import REGIONAL_CUDA_GRAPHS as REGIONAL_CUDA_GRAPHS
from plantain.settings.checks import (
    check_cuda_graphs,
    check_warmup_sizes,
    check_webhook_secret,
    default_data_dir,
    refuse_hub_kernels,
)
from plantain.settings.extras import ExtrasSettings
from plantain.settings.planner import PlannerSettings
from plantain.settings.providers import ProviderSettings
from plantain.settings.scaleout import ScaleOutSettings
from plantain.settings.search import SearchSettings

CORS_ORIGIN = re.compile(r"https?://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:(\d{1,5}|\*))?")


def check_cors_origins(origins: list[str] | None) -> list[str] | None:
    """Each entry of ``cors_origins`` is ``*`` or an origin as browsers send it (no path, no
    trailing slash), whose port may be ``*``."""
    for origin in origins or []:
        if origin != "*" and not CORS_ORIGIN.fullmatch(origin):
            raise ValueError(f"{origin!r} is not an origin: write scheme://host[:port] (port may be *), or *")
    return origins


# Never echoed in an error.
SECRET_SETTINGS = frozenset(
    {"api_keys", "webhook_secret", "s3_secret_access_key", "providers", "search_api_key"}
)
AttentionBackend = Literal["auto", "sdpa", "cudnn", "flash", "flash3", "sage", "xformers", "flex"]


class Settings(ScaleOutSettings, ProviderSettings, PlannerSettings, SearchSettings, ExtrasSettings):
    """Server and CLI configuration."""

    model_config = SettingsConfigDict(env_prefix="PLANTAIN_", extra="forbid")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where Plantain keeps its own files: the tiny checkpoints, the task database and "
        "result files.",
    )
    default_engine: str = Field(
        default="flux2-klein-4b", description="Engine used when a request names none."
    )
    device: str = Field(
        default="auto",
        description="Torch device for engines: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps.",
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto",
        description="Weights dtype: auto is each checkpoint's own choice (bfloat16 for real "
        "checkpoints, float32 for the tiny ones).",
    )
    offload: Literal["auto", "none", "model", "sequential"] = Field(
        default="auto",
        description="CPU offload on a GPU: auto turns on model offload when the checkpoint does not "
        "fit in free GPU memory; model and sequential force diffusers' offload modes.",
    )
    hub_cache: Path | None = Field(
        default=None,
        description="Hugging Face hub cache to load checkpoints from and pull them into "
        "(default: the hub library's own, e.g. HF_HOME or HF_HUB_CACHE).",
    )
    weights: dict[str, Path] = Field(
        default_factory=dict,
        description='Local checkpoint directory per engine, e.g. {"qwen-image": "/models/qwen"}; '
        "overrides the hub id.",
    )
    repos: dict[str, str] = Field(
        default_factory=dict,
        description="Hub id per engine, overriding the built-in one (a mirror or a fine-tune), "
        'e.g. {"flux2-klein-4b": "my-org/klein-finetune"}.',
    )

    host: str = Field(default="127.0.0.1", description="Address `plantain serve` listens on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port `plantain serve` listens on.")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="How `plantain serve` writes its log lines on stderr: `text`, or `json` (one "
        "object per line, with the task and request ids).",
    )
    api_keys: list[str] = Field(
        default_factory=list,
        description="API keys the server accepts (JSON list). Empty: no key needed, which "
        "`plantain serve` allows only on a loopback address.",
    )
    cors_origins: Annotated[list[str] | None, AfterValidator(check_cors_origins)] = Field(
        default=None,
        description="Browser origins (scheme://host[:port], port may be *) whose pages may call the "
        'server (CORS), a JSON list; ["*"]: any origin; []: none. Unset: the loopback origins '
        "(http://localhost:*, http://127.0.0.1:*, http://[::1]:*) when host is a loopback address, "
        "none otherwise.",
    )
    models: dict[str, str] = Field(
        default_factory=dict,
        description='Engine per vendor model name, e.g. {"gemini-3-pro-image-preview": "qwen-image-edit"}; '
        "names not listed map to the default engine.",
    )
    serve_engines: list[str] = Field(
        default_factory=list,
        description="Engines `plantain serve` loads at start (default: the default engine); others "
        "load on first use.",
    )
    arena_contestants: list[str] = Field(
        default_factory=list,
        description="What the arena compares (docs/arena.md): engine names, each optionally with "
        'its own step count, e.g. ["flux2-klein-4b", "qwen-image", "z-image-turbo:4-steps"]. Default: '
        "the served engines; one served engine is compared with itself at half its steps.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts, host:port pairs or networks (CIDR) that outbound requests (webhooks) may "
        'reach although they are loopback, private or link-local, e.g. ["127.0.0.1", "10.0.0.0/8"].',
    )
    # --- request limits (each refused with an error naming the limit) ---
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Largest request body, in bytes (base64 images included); larger bodies get 413.",
    )
    max_image_bytes: int = Field(
        default=7 * 1024 * 1024,
        ge=1024,
        description="Largest input image, in bytes once decoded from base64 or fetched by URL "
        "(7 MiB, as Vertex AI allows inline).",
    )
    max_input_images: int = Field(
        default=14,
        ge=1,
        le=14,
        description="Most input images in one request; an engine that takes fewer refuses more with "
        "its own limit.",
    )
    max_input_pixels: int = Field(
        default=50_000_000,
        ge=4096,
        description="Most pixels in one input image (width x height), read from its header before "
        "its pixels are decoded, so a decompression bomb costs no memory.",
    )
    max_prompt_chars: int = Field(
        default=32_000,
        ge=1,
        description="Longest prompt, in characters (OpenAI's limit for GPT image models).",
    )
    max_output_pixels: int | None = Field(
        default=None,
        ge=4096,
        description="Most pixels in one output image; unset, each engine's own maximum applies.",
    )
    input_formats: list[InputFormat] = Field(
        default_factory=lambda: list(INPUT_FORMATS),
        min_length=1,
        description="Input image formats accepted, recognised from the bytes (JSON list); drop "
        '"heic" to keep libheif, the decoder with the most recent CVEs, out of reach.',
    )
    fetch_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        description="How long fetching one input image by URL may take, redirects included.",
    )
    retention_seconds: int = Field(
        default=86400,
        ge=60,
        description="How long a finished task, its events and its output files (including images "
        "returned as URLs) are kept before they are deleted.",
    )
    max_queued_tasks: int = Field(
        default=1000,
        ge=1,
        description="Tasks that may wait in the queue; beyond it submissions get 429 with Retry-After.",
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        description="Runs a task gets when the server is killed while it runs; then it fails "
        "(attempts_exhausted).",
    )
    drain_seconds: float = Field(
        default=30.0,
        ge=0,
        description="On SIGTERM, how long the running task may finish before it is stopped and queued "
        "again for the next start; the port stays open meanwhile for reads and downloads, and the drain "
        "ends as soon as the running task does.",
    )

    # --- batching and post-processing (scheduler/) ---
    batch_max_images: int = Field(
        default=8,
        ge=1,
        description="Most images one engine run makes for compatible queued tasks (same engine, "
        "size, steps, guidance and input images) run together; 1 turns batching off.",
    )
    batch_window_ms: float = Field(
        default=10.0,
        ge=0,
        le=1000,
        description="How long after a task is submitted its batch may wait for compatible tasks to "
        "join (a lone task waits at most this); 0: only tasks already queued join.",
    )
    postprocess_workers: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Threads that screen, encode, mark, sign and store finished images, beside the "
        "next engine run.",
    )

    # --- safety (safety/) ---
    safety_level: Literal["strict", "standard", "relaxed", "off"] = Field(
        default="standard",
        description="Safety level of a request that asks for none (docs/safety.md has the table of "
        "what each level screens).",
    )
    safety_min_level: Literal["strict", "standard", "relaxed", "off"] = Field(
        default="relaxed",
        description="The most permissive level a request may ask for; a looser one is raised to it. "
        "Must be at least as permissive as safety_level.",
    )
    safety_terms: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Prompt term list per category, replacing the built-in list of that category or "
        'adding a new one, e.g. {"violence": ["gore", "decapitat*"], "brand": ["acme"]}; [] turns a '
        "category's term screening off.",
    )
    safety_category_levels: dict[str, Literal["strict", "standard", "relaxed"]] = Field(
        default_factory=dict,
        description="The most permissive level at which a category is still screened, overriding the "
        'built-in table, e.g. {"violence": "standard"}; a new category defaults to standard.',
    )
    safety_classifier: str | None = Field(
        default=None,
        description="Image-classification checkpoint (hub id in the hub cache, or a directory) that "
        "screens output images; unset, outputs are not screened.",
    )
    safety_image_thresholds: dict[str, float] = Field(
        default_factory=lambda: {"strict": 0.3, "standard": 0.5, "relaxed": 0.85},
        description="Per level, the classifier score of an unsafe label at or above which an output "
        "image is blocked (0 blocks everything, above 1 nothing); levels left out keep their default.",
    )
    safety_unsafe_labels: list[str] = Field(
        default_factory=lambda: ["nsfw"],
        description="Labels of the safety classifier that count as unsafe; each is reported as the "
        "category of a blocked image.",
    )

    # --- usage and cost (usage.py) ---
    price_per_device_hour: float = Field(
        default=2.0,
        ge=0,
        description="Estimated cost of one hour of device time, which every result reports as "
        "device_seconds / 3600 x this price: an operator-set estimate (the default is a round "
        "figure for a rented GPU), not a bill.",
    )
    price_currency: str = Field(
        default="USD",
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code of price_per_device_hour (e.g. USD, EUR); costs in different "
        "currencies are never added together.",
    )

    # --- provenance (provenance/) ---
    watermark: bool = Field(
        default=True,
        description="Embed the invisible watermark (this server's tag and an image serial that "
        "`plantain verify` maps back to its task) in every output image.",
    )
    watermark_tag: int | None = Field(
        default=None,
        ge=0,
        le=0xFFFF,
        description="The 16-bit tag the watermark names this server by. Unset: one is generated into "
        "<data_dir>/provenance/watermark-tag on first start and kept; servers that should count as "
        "one (a fleet) set the same tag.",
    )
    content_credentials: bool = Field(
        default=True,
        description="Sign a C2PA manifest (made by a trained algorithm, the model, the edit's "
        "ingredients) into every output (PNG, JPEG, WebP and AVIF).",
    )
    provenance_opt_out: bool = Field(
        default=False,
        description="Let a request turn the watermark or the content credentials off for its own "
        "images; when false such a request is refused with a 400 naming the field.",
    )
    c2pa_cert: Path | None = Field(
        default=None,
        description="PEM certificate chain (signing certificate first) for content credentials. "
        "Unset: a local CA and a signing certificate are generated into <data_dir>/provenance/ on "
        "first start and kept.",
    )
    c2pa_key: Path | None = Field(
        default=None, description="PEM private key of c2pa_cert; set both or neither."
    )
    c2pa_trust_anchors: Path | None = Field(
        default=None,
        description="PEM file of CA certificates whose content credentials `verify` reports as "
        "trusted (e.g. the C2PA trust list); the generated local CA is always trusted by this server.",
    )
    c2pa_tsa_url: str | None = Field(
        default=None,
        description="RFC 3161 time-stamp authority that countersigns each manifest (none offline).",
    )

    public_url: str | None = Field(
        default=None,
        description="Base URL at which webhook receivers reach this server, used for the links in "
        "webhook bodies (default: http://<host>:<port>).",
    )
    webhook_secret: Annotated[str | None, AfterValidator(check_webhook_secret)] = Field(
        default=None,
        description="Standard Webhooks signing secret (whsec_ and base64). Unset: one is generated "
        "into <data_dir>/webhook_secret on first start and kept; `plantain webhook-secret` prints it.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long one webhook delivery may take before it counts as failed."
    )
    webhook_max_attempts: int = Field(
        default=12,
        ge=1,
        description="Deliveries of one webhook before it is given up (spread over 1.2 to 2.4 hours "
        "with the default backoff).",
    )
    webhook_retry_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Backoff before the second delivery of a webhook; it doubles for each further "
        "one, up to webhook_retry_max_seconds, less a random part of up to half (jitter).",
    )
    webhook_retry_max_seconds: float = Field(
        default=3600.0, gt=0, description="The longest wait between two deliveries of a webhook."
    )

    # --- speed (engines/fastpath.py) ---
    torch_compile: Literal["auto", "off", "regional", "full"] = Field(
        default="auto",
        description="torch.compile of each engine's transformer at load: regional compiles its "
        "repeated blocks (seconds to a minute), full the whole transformer and the VAE decoder (minutes, "
        "a little faster); auto is regional on a CUDA GPU (full with cuda_graphs) and off elsewhere.",
    )
    cuda_graphs: Annotated[bool, AfterValidator(check_cuda_graphs)] = Field(
        default=False,
        description="Capture the compiled transformer as CUDA graphs (static shapes: one capture per "
        "served size and batch, more GPU memory). Needs a CUDA GPU and torch_compile full or auto "
        "(which is then full).",
    )
    attention_backend: Annotated[AttentionBackend, BeforeValidator(refuse_hub_kernels)] = Field(
        default="auto",
        description="Attention kernel of the transformer (diffusers' attention backends): auto picks "
        "FlashAttention 3, then 2, where installed on a CUDA GPU and the model needs no attention "
        "mask, else PyTorch's scaled dot-product attention (sdpa). For Z-Image, flash, flash3 and "
        "sage run as their variable-length variants; Qwen-Image takes auto, sdpa, cudnn or flex.",
    )
    quantization: Literal["none", "fp8"] = Field(
        default="none",
        description="fp8 quantizes the transformer's linear layers (torchao, dynamic activations, "
        "per-row scales): faster with torch_compile, slightly different images. Needs the fp8 extra "
        "(torchao 0.18.0, torch 2.11 or later) and a CUDA GPU of compute capability 8.9 or more "
        "(Ada, Hopper).",
    )
    vae_channels_last: bool = Field(
        default=True,
        description="Keep the 2D VAE's weights in channels_last memory format on CUDA (faster "
        "convolutions; no gain on the CPU, where it stays off; 3D video VAEs such as Qwen-Image's "
        "are left as they are).",
    )
    text_embedding_cache: int = Field(
        default=64,
        ge=0,
        description="Prompts whose text embeddings each engine keeps on its device (least recently "
        "used dropped first), so a repeated prompt skips the text encoder; 0 turns the cache off.",
    )
    warmup_sizes: Annotated[list[str] | None, AfterValidator(check_warmup_sizes)] = Field(
        default=None,
        description="Sizes each engine runs once at load, before the server reports ready, as "
        '"TIER:RATIO" (e.g. ["1K:1:1", "1K:16:9"]); unset: ["1K:1:1"] on a CUDA GPU, none elsewhere.',
    )

    @property
    def base_url(self) -> str:
        """Where this server is reached, for links that leave it (webhook bodies)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def models_dir(self) -> Path:
        """Where checkpoints built locally (the tiny ones) are saved."""
        return self.data_dir / "models"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment plus ``overrides``; a bad value is one ConfigurationError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "settings"
        shown = "the value" if name in SECRET_SETTINGS else repr(error.get("input"))
        raise ConfigurationError(
            f"setting {name} (PLANTAIN_{name.upper()}): {shown} is not allowed; "
            f"{error['msg'][0].lower()}{error['msg'][1:]}"
        ) from None
    except SettingsError as exc:  # e.g. a dictionary setting that is not JSON
        raise ConfigurationError(
            f'{exc}; dictionary settings are JSON, e.g. \'{{"tiny": "/models/tiny"}}\''
        ) from None
