"""Imagen's ``:predict`` (``models.generate_images`` and ``models.edit_image`` in google-genai;
``google.image('imagen-…')`` in the Vercel AI SDK; LiteLLM's ``gemini/imagen-…`` and
``vertex_ai/imagen-…``): the same image requests as ``generateContent``, in Vertex's
``instances``/``parameters``/``predictions`` wire form.

Served on every prefix ``generateContent`` is (Gemini API and Vertex AI paths). ``edit_image``'s
raw reference images become the request's input images; mask, control, style and subject
references ask for features this server does not have and are refused naming the field, as is
upscaling (``upscale_image``, whose ``mode`` is ``upscale``).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import AliasGenerator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from plantain.dialects.deps import CallerKey, FrontDoorDep
from plantain.dialects.gemini.convert import FIELD_NAMES
from plantain.dialects.report import answer_headers
from plantain.dialects.wire import ImageAnswer, decode_base64, encode_base64, load_json, validate
from plantain.errors import InvalidRequestError
from plantain.limits import DEFAULT_LIMITS, Limits
from plantain.scheduler.frontdoor import Submission
from plantain.types import ImageRequest, ImageResult, InputImage, ProvenanceChoice

RAW_REFERENCE = "REFERENCE_TYPE_RAW"
IGNORED_PARAMETERS = (  # accepted, not acted on: named in the task's `ignored`
    "negativePrompt",
    "guidanceScale",
    "personGeneration",
    "safetySetting",
    "includeSafetyAttributes",
    "includeRaiReason",
    "language",
    "enhancePrompt",
    "storageUri",
    "editMode",
    "editConfig",
)


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=AliasGenerator(validation_alias=to_camel), extra="ignore")


class ImageBytes(_Wire):
    bytes_base64_encoded: str | None = None
    mime_type: str | None = None
    gcs_uri: str | None = None


class ReferenceImage(_Wire):
    reference_type: str = RAW_REFERENCE
    reference_id: int | None = None
    reference_image: ImageBytes | None = None


class Instance(_Wire):
    prompt: str = ""
    reference_images: list[ReferenceImage] = Field(default_factory=list)
    image: ImageBytes | None = None  # upscale_image's input


class OutputOptions(_Wire):
    mime_type: str | None = None
    compression_quality: int | None = None


class Parameters(_Wire):
    model_config = ConfigDict(alias_generator=AliasGenerator(validation_alias=to_camel), extra="allow")

    sample_count: int | None = None
    aspect_ratio: str | None = None
    seed: int | None = None
    sample_image_size: str | None = None
    output_options: OutputOptions | None = None
    add_watermark: bool | None = None
    mode: str | None = None


class PredictRequest(_Wire):
    instances: list[Instance] = Field(min_length=1, max_length=1)
    parameters: Parameters = Field(default_factory=Parameters)


async def predict(request: Request, door: FrontDoorDep, caller: CallerKey, model: str) -> JSONResponse:
    body = validate(PredictRequest, load_json(await request.body()))
    image_request = to_image_request(body, engine=door.engine_name(model), limits=door.limits)
    submission = Submission(model=model, source="gemini", api_key_id=caller)
    task, result = await door.run(image_request, submission, is_disconnected=request.is_disconnected)
    return ImageAnswer(to_predictions(result), headers=answer_headers(task, image_request, result))


def to_image_request(body: PredictRequest, *, engine: str, limits: Limits = DEFAULT_LIMITS) -> ImageRequest:
    """The core request of an Imagen ``:predict`` body."""
    instance, parameters = body.instances[0], body.parameters
    if parameters.mode == "upscale" or instance.image is not None:
        raise InvalidRequestError(
            f"parameters.mode: {parameters.mode or 'an input image'!r} asks for upscaling "
            "(upscale_image), which is not served here; generate at the size you need with "
            "parameters.sampleImageSize (1K, 2K or 4K)",
            field="parameters.mode",
        )
    fields: dict[str, Any] = {
        "prompt": instance.prompt,
        "engine": engine,
        "images": _reference_images(instance.reference_images, limits),
        "num_images": parameters.sample_count,
        "aspect_ratio": parameters.aspect_ratio,
        "size": parameters.sample_image_size,
        "seed": parameters.seed,
        "output_format": _output_format(parameters.output_options),
        "output_quality": parameters.output_options.compression_quality
        if parameters.output_options
        else None,
        "provenance": ProvenanceChoice(
            watermark=parameters.add_watermark, watermark_field="parameters.addWatermark"
        ),
        "ignored": tuple(name for name in IGNORED_PARAMETERS if name in (parameters.model_extra or {})),
    }
    try:
        return ImageRequest.create(**{name: value for name, value in fields.items() if value is not None})
    except InvalidRequestError as exc:
        raise exc.renamed({**FIELD_NAMES, **PREDICT_FIELDS}) from None


PREDICT_FIELDS = {
    "prompt": "instances[0].prompt",
    "num_images": "parameters.sampleCount",
    "aspect_ratio": "parameters.aspectRatio",
    "size": "parameters.sampleImageSize",
    "seed": "parameters.seed",
    "output_format": "parameters.outputOptions.mimeType",
    "output_quality": "parameters.outputOptions.compressionQuality",
}


def _reference_images(references: list[ReferenceImage], limits: Limits) -> tuple[InputImage, ...]:
    limits.check_input_count(len(references), field="instances[0].referenceImages")  # before decoding
    images = []
    for index, reference in enumerate(references):
        field = f"instances[0].referenceImages[{index}]"
        if reference.reference_type != RAW_REFERENCE:
            raise InvalidRequestError(
                f"{field}.referenceType: {reference.reference_type!r} is not served here (no mask, "
                f"control, style or subject editing); send the images to edit as {RAW_REFERENCE}",
                field=f"{field}.referenceType",
            )
        data = reference.reference_image.bytes_base64_encoded if reference.reference_image else None
        if not data:
            raise InvalidRequestError(
                f"{field}.referenceImage.bytesBase64Encoded: missing; a reference image's bytes must "
                "be inline (gcsUri is not served here)",
                field=f"{field}.referenceImage.bytesBase64Encoded",
            )
        label = f"reference image {index + 1}"
        name = f"{field}.referenceImage.bytesBase64Encoded"
        images.append(InputImage(data=decode_base64(data, name, limits=limits, label=label), label=label))
    return tuple(images)


def _output_format(options: OutputOptions | None) -> str | None:
    chosen = options.mime_type if options else None
    return chosen.lower().removeprefix("image/") if chosen else None


def to_predictions(result: ImageResult) -> dict[str, Any]:
    """Vertex's answer: one prediction per image, its bytes in standard base64."""
    return {
        "predictions": [
            {"bytesBase64Encoded": encode_base64(image.data), "mimeType": image.media_type}
            for image in result.images
        ]
    }
