"""What every dialect reports back the same way: the seed of each image, the parameters that were
accepted but ignored (docs/parameters.md), the provenance marks each image carries
(docs/provenance.md), and whether an image came out transparent.

Gemini and OpenAI bodies stay what their SDKs parse, so the seeds and ignored parameters travel
as response headers (a header breaks no client); the task API shows them in its body.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from plantain.imaging.codecs import has_alpha
from plantain.types import GeneratedImage, ImageRequest, ImageResult, Task
from plantain.usage import usage_headers

SEEDS_HEADER = "X-Plantain-Seeds"  # "7, 8, 9": image k's seed, to make it again
IGNORED_HEADER = "X-Plantain-Ignored-Parameters"  # "temperature, topP": sent, accepted, unused
# "watermark, content-credentials": the marks image k carries, ";" between images ("none": no mark).
PROVENANCE_HEADER = "X-Plantain-Provenance"
# "1344x768 upscaled to 5376x3072 by ESRGAN 4x (x4.safetensors)": the images were made smaller and
# enlarged (docs/upscaling.md); absent when they were made at the size asked.
UPSCALED_HEADER = "X-Plantain-Upscaled"


def ignored(sent: Mapping[str, object]) -> tuple[str, ...]:
    """The names, as the caller wrote them, of the ignored parameters that were sent (not None)."""
    return tuple(name for name, value in sent.items() if value is not None)


def report_headers(request: ImageRequest, result: ImageResult | None = None) -> dict[str, str]:
    """The headers of a synchronous answer: the seeds made (once there is a result) and the
    parameters ``request`` ignored (when there are any)."""
    headers: dict[str, str] = {}
    if result is not None:
        headers[SEEDS_HEADER] = seeds_value(result.images)
        headers[PROVENANCE_HEADER] = provenance_value(result.images)
        if result.upscaled is not None:
            headers[UPSCALED_HEADER] = result.upscaled.describe()
    if request.ignored:
        headers[IGNORED_HEADER] = ", ".join(request.ignored)
    return headers


def answer_headers(task: Task, request: ImageRequest, result: ImageResult) -> dict[str, str]:
    """Every Plantain header of a finished synchronous answer (Gemini and OpenAI): device
    seconds and cost (usage.py), then seeds and ignored parameters."""
    return {**usage_headers(task.usage), **report_headers(request, result)}


def seeds_value(images: Iterable[GeneratedImage]) -> str:
    return ", ".join(str(image.seed) for image in images)


def provenance_value(images: Iterable[GeneratedImage]) -> str:
    return "; ".join(", ".join(image.provenance.applied) or "none" for image in images)


def background_made(image: GeneratedImage) -> str:
    """``transparent`` when the encoded image has an alpha channel, else ``opaque``: a transparent
    background that could not be keyed out comes back opaque (background.py)."""
    return "transparent" if has_alpha(image.data) else "opaque"
