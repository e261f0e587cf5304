"""The Gemini API's wire models (``GenerateContentRequest`` and friends), permissive on input.

Proto-JSON accepts ``lowerCamel`` and ``snake_case`` for every field, and google-genai ≥2.34 mixes
them in one body (``"inlineData": {"mime_type": …}``), so every model validates by alias *and* by
name. Unknown fields (functionCall, …) are ignored: real clients send them. ``tools`` is read for
Google Search grounding alone (convert.py); other tools are reported as ignored.
Base64 stays a string here; the converter decodes it so errors can name the part.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

from plantain.dialects.wire import LoraList


class Wire(BaseModel):
    """Both key casings in, camelCase out."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
    )

    def wire(self) -> dict[str, Any]:
        """The JSON body as Gemini writes it: camelCase keys, unset fields left out."""
        return self.model_dump(mode="json", exclude_none=True)


class Blob(Wire):
    mime_type: str | None = None
    data: str = ""  # base64 as sent: URL-safe (google-genai) or standard (JS SDK, REST)


class FileData(Wire):
    mime_type: str | None = None
    file_uri: str = ""


class Part(Wire):
    text: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    thought: bool | None = None
    thought_signature: str | None = None


class Content(Wire):
    role: str | None = None
    parts: list[Part] = []


def _content_from_text(value: Any) -> Any:
    """Some hand-written clients send ``systemInstruction`` as a bare string."""
    return {"parts": [{"text": value}]} if isinstance(value, str) else value


class ImageOutputOptions(Wire):
    mime_type: str | None = None
    compression_quality: int | None = None


class ImageConfig(Wire):
    aspect_ratio: str | None = None
    image_size: str | None = None
    output_mime_type: str | None = None  # Vertex only
    output_compression_quality: int | None = None  # Vertex only
    image_output_options: ImageOutputOptions | None = None  # Vertex only
    background: str | None = None  # Plantain extension: auto, opaque or transparent
    # Plantain extensions (Vertex Imagen's name for the first): false opts out, where allowed.
    add_watermark: bool | None = None
    content_credentials: bool | None = None
    # Plantain extensions (docs/loras.md): LoRAs from the operator's allow-list, and a named preset.
    loras: LoraList = None
    preset: str | None = None


class ThinkingConfig(Wire):
    """A thinking model's settings. The planner stage (docs/planner.md) is this server's thinking,
    so two of them steer it (convert.plan_choice, render's thought part): ``thinkingBudget`` 0
    skips it, ``includeThoughts`` answers the prompt the engine got as a thought summary.
    ``thinkingLevel`` is accepted and has no effect."""

    include_thoughts: bool | None = None
    thinking_budget: int | None = Field(default=None, ge=-1)  # -1: dynamic, 0: off (Gemini's)
    thinking_level: str | None = None


class GenerationConfig(Wire):
    response_modalities: list[str] | None = None
    image_config: ImageConfig | None = None
    candidate_count: int | None = None
    seed: int | None = None
    thinking_config: ThinkingConfig | None = None  # steers the planner stage (ThinkingConfig)
    # Settings of a language model: accepted, no diffusion equivalent, reported as ignored
    # (convert.IGNORED_CONFIG; docs/parameters.md).
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None  # google-genai sends 40.0
    max_output_tokens: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop_sequences: list[str] | None = None
    response_mime_type: str | None = None
    media_resolution: str | None = None


class SafetySetting(Wire):
    category: str | None = None
    threshold: str | None = None
    method: str | None = None


class GenerateContentRequest(Wire):
    contents: list[Content] = []
    system_instruction: Annotated[Content | None, BeforeValidator(_content_from_text)] = None
    generation_config: GenerationConfig | None = None
    safety_settings: list[SafetySetting] = []  # one level for all categories: dialects/gemini/safety.py
    tools: list[dict[str, Any]] = []  # each one tool as sent ({"googleSearch": {}}): convert.py


# --- responses -------------------------------------------------------------------------------


class SafetyRating(Wire):
    category: str  # HARM_CATEGORY_*
    probability: str  # NEGLIGIBLE, LOW, MEDIUM, HIGH
    blocked: bool | None = None


class PromptFeedback(Wire):
    """Why a prompt was refused (``response.prompt_feedback`` in google-genai); no candidates then."""

    block_reason: str  # SAFETY, PROHIBITED_CONTENT, BLOCKLIST, OTHER
    block_reason_message: str | None = None
    safety_ratings: list[SafetyRating] | None = None


class Candidate(Wire):
    content: Content | None = None  # absent when the image was withheld (finishReason IMAGE_SAFETY)
    finish_reason: str | None = None
    finish_message: str | None = None
    safety_ratings: list[SafetyRating] | None = None
    grounding_metadata: dict[str, Any] | None = None  # search grounding's sources (dialects/grounding.py)
    index: int = 0


class ModalityTokenCount(Wire):
    modality: str
    token_count: int


class UsageMetadata(Wire):
    prompt_token_count: int
    candidates_token_count: int
    total_token_count: int
    prompt_tokens_details: list[ModalityTokenCount] = []
    candidates_tokens_details: list[ModalityTokenCount] = []


class GenerateContentResponse(Wire):
    candidates: list[Candidate] | None = None  # none when the prompt was blocked
    prompt_feedback: PromptFeedback | None = None
    usage_metadata: UsageMetadata | None = None
    model_version: str
    response_id: str


class Model(Wire):
    """One entry of ``models.list`` / the body of ``models.get``."""

    name: str  # "models/<id>"
    base_model_id: str
    version: str
    display_name: str
    description: str
    input_token_limit: int
    output_token_limit: int
    supported_generation_methods: list[str]
    temperature: float = 1.0
    max_temperature: float = 2.0
    top_p: float = 0.95
    top_k: int = 64
    # Plantain extension: the provenance marks every image gets (SDKs ignore unknown fields).
    provenance: dict[str, Any] | None = None


class ListModelsResponse(Wire):
    models: list[Model]


# --- batch mode ------------------------------------------------------------------------------

BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"


class InlinedRequest(Wire):
    request: dict[str, Any] | None = None  # validated one by one, so an error can name its index
    metadata: dict[str, Any] | None = None  # echoed back with the request's response


class InlinedRequests(Wire):
    requests: list[InlinedRequest] | None = None


class InputConfig(Wire):
    requests: InlinedRequests | None = None
    file_name: str | None = None  # a Files API upload: refused, files are not served


class BatchSpec(Wire):
    """The ``batch`` of ``batchGenerateContent``; ``priority`` and output-only fields are ignored."""

    display_name: str | None = None
    input_config: InputConfig | None = None


class BatchGenerateContentRequest(Wire):
    batch: BatchSpec | None = None


class RpcStatus(Wire):
    code: int  # a google.rpc.Code, not an HTTP status
    message: str


class InlinedResponse(Wire):
    response: GenerateContentResponse | None = None
    error: RpcStatus | None = None
    metadata: dict[str, Any] | None = None


class InlinedResponses(Wire):
    inlined_responses: list[InlinedResponse]


class BatchOutput(Wire):
    inlined_responses: InlinedResponses


class BatchStats(Wire):
    """Counts are int64, which proto-JSON writes as strings."""

    request_count: str
    successful_request_count: str
    failed_request_count: str
    pending_request_count: str


class GenerateContentBatch(Wire):
    type_: str = Field(default=BATCH_TYPE, alias="@type")
    name: str  # "batches/<id>"
    model: str  # "models/<id>"
    display_name: str
    state: str  # BATCH_STATE_*
    create_time: str
    update_time: str
    end_time: str | None = None
    batch_stats: BatchStats
    output: BatchOutput | None = None  # once the batch has ended


class Operation(Wire):
    """What ``batchGenerateContent`` and ``batches.get`` answer; google-genai reads ``metadata``."""

    name: str
    metadata: GenerateContentBatch
    done: bool
