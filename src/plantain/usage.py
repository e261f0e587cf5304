"""Usage and cost: the tokens, images, device seconds and estimated cost of every result.

Tokens are counted as Gemini counts them, whatever door a request came in by, so one request
costs the same number of tokens in every dialect: output tokens per image by model name and size
tier (:data:`IMAGE_TOKENS`), input tokens estimated from the prompt's length and the number of
input images (no tokenizer runs). Device seconds are the engine's wall time; the cost is an
estimate from the operator's ``price_per_device_hour``, not a bill.

Who used it is a key id: the first 8 hex digits of the SHA-256 of the API key (never the key
itself), or ``anonymous`` when the server needs no key.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plantain.imaging.sizes import TIER_SCALE
from plantain.types import Cost, GroundingResult, PlanResult, Task, TokenUsage, Usage

if TYPE_CHECKING:
    from plantain.settings import Settings

# Output tokens per image as Gemini bills them, by model family and imageSize.
# 2.5 Flash Image: 1290 at its one size. 3 Pro Image: 1120 at 1K/2K, 2000 at 4K (api-surfaces §1.8).
# 3.1 Flash Image: 2520 at 4K is §1.8's "up to 2520"; 1120 at 1K matches the $0.067 a 1K image costs
# at $60 per million output tokens; 747 (512) and 1680 (2K) follow Google's pricing page (not captured).
IMAGE_TOKENS: dict[str, dict[str, int]] = {
    "gemini-3-pro-image": {"512": 1120, "1K": 1120, "2K": 1120, "4K": 2000},
    "gemini-3.1-flash-image": {"512": 747, "1K": 1120, "2K": 1680, "4K": 2520},
}
DEFAULT_IMAGE_TOKENS = 1290  # gemini-2.5-flash-image*, nano-banana, OpenAI and engine names

# Prompt tokens are an estimate (no tokenizer runs): ~4 characters per text token, and Gemini's
# 258 tokens per input image (560 for 3 Pro Image, §1.8). Clients use them for display only.
CHARS_PER_TOKEN = 4
INPUT_IMAGE_TOKENS = 258
INPUT_IMAGE_TOKENS_3_PRO = 560

ANONYMOUS = "anonymous"  # the key id of every caller when the server needs no key
KEY_ID_HEX_DIGITS = 8
COST_DECIMALS = 9  # a 0.1 s run at 2 USD an hour costs 0.000055556
SECONDS_DECIMALS = 3

# Plantain's own response headers on Gemini and OpenAI answers: their bodies stay exactly what the
# SDKs parse, and a header breaks no client.
DEVICE_SECONDS_HEADER = "X-Plantain-Device-Seconds"
COST_HEADER = "X-Plantain-Cost"
CURRENCY_HEADER = "X-Plantain-Cost-Currency"
SERVED_BY_HEADER = "X-Plantain-Served-By"  # the engine that made the images (a route's member)


# --- tokens -----------------------------------------------------------------------------------


def base_name(model: str) -> str:
    """``models/<id>``, ``google/<id>`` or ``<id>`` -> ``<id>`` (a router's vendor prefix counts
    the same tokens as the bare name)."""
    name = model.removeprefix("models/")
    vendor, _, rest = name.partition("/")
    return rest if rest and vendor.lower() in ("google", "openai") else name


def token_tier(request: Mapping[str, Any]) -> str:
    """The size tier a stored request's images are counted at: its own, or, for exact pixels
    (OpenAI's ``size``), the tier nearest their pixel count (512x512 counts as the 512 tier)."""
    width, height = request.get("width"), request.get("height")
    if not (isinstance(width, int) and isinstance(height, int)):
        return str(request.get("size", "1K"))
    side = math.sqrt(width * height) / 1024
    return min(TIER_SCALE, key=lambda tier: abs(math.log(side / TIER_SCALE[tier])))


def prompt_tokens(text: str) -> int:
    """The estimate of a prompt's text tokens."""
    return len(text) // CHARS_PER_TOKEN


def input_image_tokens(model: str) -> int:
    """Tokens Gemini counts for one input image of ``model``."""
    if base_name(model).startswith("gemini-3-pro-image"):
        return INPUT_IMAGE_TOKENS_3_PRO
    return INPUT_IMAGE_TOKENS


def output_image_tokens(model: str, size: str) -> int:
    """Tokens Gemini counts for one output image of ``model`` at ``size``."""
    for family, by_size in IMAGE_TOKENS.items():
        if base_name(model).startswith(family):
            return by_size[size]
    return DEFAULT_IMAGE_TOKENS


def count_tokens(prompt: str, input_images: int, size: str, output_images: int, model: str) -> TokenUsage:
    """The tokens of one request: its prompt and input images in, its images out."""
    text = prompt_tokens(prompt)
    image = input_image_tokens(model) * input_images
    output = output_image_tokens(model, size) * output_images
    return TokenUsage(input_text=text, input_image=image, output=output)


# --- cost -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    """What an hour of device time is estimated to cost."""

    per_device_hour: float = 2.0
    currency: str = "USD"

    @classmethod
    def from_settings(cls, settings: Settings) -> Price:
        return cls(settings.price_per_device_hour, settings.price_currency)

    def cost(self, device_seconds: float) -> Cost:
        amount = round(device_seconds / 3600 * self.per_device_hour, COST_DECIMALS)
        return Cost(amount=amount, currency=self.currency)

    def amount(self, amount: float) -> Cost:
        """A price already in this currency (a provider's per-image price), rounded as costs are."""
        return Cost(amount=round(amount, COST_DECIMALS), currency=self.currency)


def task_usage(
    task: Task,
    *,
    images: int,
    device_seconds: float,
    price: Price,
    provenance_seconds: float = 0.0,
    served_by: str | None = None,
    provider_cost: float | None = None,
    plan: PlanResult | None = None,
    grounding: GroundingResult | None = None,
) -> Usage:
    """The usage of ``task`` once it has run: tokens only for a run that made images (a failed or
    cancelled one is billed no tokens, as Gemini bills none), device time whatever the outcome.
    ``served_by`` names the engine that made the images (a route's member); ``provider_cost``,
    when a remote provider made them, is its price, which replaces the device-time estimate;
    ``plan`` and ``grounding``, what the planner stage and search grounding did (planner/,
    search/), are reported apart like provenance's time: their seconds, tokens and searches."""
    seconds = round(device_seconds, SECONDS_DECIMALS)
    tokens = (
        count_tokens(
            str(task.request.get("prompt", "")),
            task.input_count,
            token_tier(task.request),
            images,
            task.model,
        )
        if images
        else TokenUsage()
    )
    return Usage(
        tokens=tokens,
        images=images,
        device_seconds=seconds,
        cost=price.cost(seconds) if provider_cost is None else price.amount(provider_cost),
        provenance_seconds=round(provenance_seconds, SECONDS_DECIMALS),
        served_by=served_by,
        planner_seconds=round(plan.seconds if plan else 0.0, SECONDS_DECIMALS),
        planner_input_tokens=plan.input_tokens if plan else 0,
        planner_output_tokens=plan.output_tokens if plan else 0,
        search_seconds=round(grounding.seconds if grounding else 0.0, SECONDS_DECIMALS),
        searches=grounding.searches if grounding else 0,
    )


def no_usage(currency: str) -> Usage:
    """The usage of a task that never ran (cancelled while queued, or given up after restarts)."""
    return Usage(tokens=TokenUsage(), images=0, device_seconds=0.0, cost=Cost(amount=0.0, currency=currency))


def cost_of(task: Task) -> float | None:
    """A finished task's cost in the server's currency (None: it has no usage yet), as gateways
    report it in ``usage.cost``."""
    return None if task.usage is None else task.usage.cost.amount


def usage_headers(usage: Usage | None) -> dict[str, str]:
    """Device seconds and cost as response headers (none for a task without usage)."""
    if usage is None:
        return {}
    headers = {
        DEVICE_SECONDS_HEADER: f"{usage.device_seconds:.{SECONDS_DECIMALS}f}",
        COST_HEADER: f"{usage.cost.amount:.{COST_DECIMALS}f}",
        CURRENCY_HEADER: usage.cost.currency,
    }
    if usage.served_by is not None:
        headers[SERVED_BY_HEADER] = usage.served_by
    return headers


# --- who ----------------------------------------------------------------------------------------


def key_id(key: str) -> str:
    """A non-secret id for an API key, stable across restarts: the start of its SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()[:KEY_ID_HEX_DIGITS]


__all__ = [
    "ANONYMOUS",
    "CHARS_PER_TOKEN",
    "DEFAULT_IMAGE_TOKENS",
    "IMAGE_TOKENS",
    "Price",
    "cost_of",
    "count_tokens",
    "input_image_tokens",
    "key_id",
    "no_usage",
    "output_image_tokens",
    "prompt_tokens",
    "task_usage",
    "usage_headers",
]
