"""Write docs/models.md from plantain.engines.model_names.MODELS (tests/dialects/test_model_names.py
checks it is current): every vendor model name served, and what it runs on by default."""

from __future__ import annotations

from pathlib import Path

from plantain.engines.model_names import MODELS, hub_organisation
from plantain.engines.registry import FAMILIES
from plantain.settings import Settings

APIS = {
    "gemini": "Gemini `generateContent`, `streamGenerateContent`, batches",
    "imagen": "Gemini `:predict` (Imagen)",
    "openai": "OpenAI `images/generations`, `images/edits`",
}
INTRO = """\
# Model names

Generated from `plantain.engines.model_names.MODELS` by `python scripts/model_table.py`; do not
edit by hand.

Every image model name in the `openai` and `google-genai` SDKs' own model lists is served (a test
fails when an SDK release adds one), with older names clients still send. A name may also be
written with its vendor in front, as routers and gateways (LiteLLM, OpenRouter, the Vercel AI
Gateway) write ids: `google/gemini-2.5-flash-image`, `openai/gpt-image-1`; a leading `models/` is
dropped too. Any name works on every API: the column *API* says where the vendor serves it.

Each runs on the default engine (`default_engine`, `{default}` unless set) unless the `models`
setting maps it to another, e.g. `PLANTAIN_MODELS='{{"gemini-3-pro-image": "qwen-image-edit"}}'`;
a name listed there that is not below is served too. `GET /v1/models` (OpenAI)
and `GET /v1beta/models` (Gemini) list what a running server serves.
"""
ENGINES = """
## Engine names

An engine's own name is a model name as well, and runs on that engine; it may be written with
`plantain/` or its checkpoint's hub organisation in front.

| model | also accepted as |
|---|---|
"""


def render() -> str:
    default = Settings.model_fields["default_engine"].default
    lines = [
        INTRO.format(default=default),
        "| model | vendor | also accepted as | API | runs on by default | note |",
    ]
    lines.append("|---|---|---|---|---|---|")
    for model in MODELS:
        lines.append(
            f"| `{model.name}` | {model.vendor} | `{model.vendor}/{model.name}` | {APIS[model.api]} "
            f"| `{default}` | {model.note} |"
        )
    table = "\n".join(lines) + "\n"
    engines = ENGINES + "".join(
        f"| `{family.engine}` | {_prefixed(family.engine)} |\n" for family in FAMILIES
    )
    return table + engines


def _prefixed(engine: str) -> str:
    organisation = hub_organisation(engine)
    other = f", `{organisation}/{engine}`" if organisation else ""
    return f"`plantain/{engine}`{other}"


if __name__ == "__main__":
    Path(__file__).resolve().parent.parent.joinpath("docs", "models.md").write_text(render())
