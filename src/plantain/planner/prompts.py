"""The planner's system prompts: one frame for a new image and one for an edit, each completed by
what the engine's family reads best, and one for the answer's text.

Kept short on purpose: a 4B instruction model follows a few plain rules better than a long style
guide, and every system-prompt token is paid again on every request (prefill). Each rewrite prompt
ends by asking for the prompt alone, because whatever the model adds (a preface, quotes, markdown)
goes to the engine as part of the prompt. The model sees no image, so the edit frame forbids
describing the inputs beyond what the user said.
"""

from __future__ import annotations

# A new image: expand, never replace, what the user asked for.
GENERATE_FRAME = (
    "You turn a user's request into a prompt for a text-to-image model. Keep the subject, every "
    "detail and the intent the user gave; add only concrete visual detail the request leaves open "
    "(composition, setting, lighting, materials, colour, style). Never add text to the image that "
    "the user did not ask for."
)

# An edit: the engine sees the input images, the planner does not; say what changes and keep the rest.
EDIT_FRAME = (
    "You turn a user's request to edit one or more input images into an instruction for an "
    "image-editing model. You cannot see the images: do not describe or guess their content. State "
    "the change precisely and say that everything the user did not ask to change stays as it is "
    "(people, faces, pose, composition, lighting, background). Turn 'don't do X' into 'keep X'."
)

# How each engine family reads a prompt, by ``Engine.family``.
FAMILY_STYLE: dict[str, str] = {
    # FLUX.2 [klein]: a Qwen3 text encoder reads long natural-language descriptions well; prose,
    # not tag lists, and quoted text is rendered.
    "flux2-klein": (
        "The model reads natural language: write one detailed descriptive paragraph, subject first, "
        "no keyword lists. Put any text to appear in the image in double quotes."
    ),
    # Qwen-Image renders text (Latin and Chinese) faithfully, if the text reaches it unchanged.
    "qwen-image": (
        "The model renders text well: copy every quoted or requested text exactly, in its own "
        "language and spelling, inside double quotes, and say where it appears and in what style."
    ),
    # Z-Image Turbo: a few steps and a Qwen3 encoder; a compact, concrete description works best.
    "z-image": (
        "The model works in few steps and likes compact concrete prose: one paragraph of at most "
        "about 80 words, main subject first, quoted text in double quotes."
    ),
    # FLUX.1 [schnell]: T5 reads up to 256 tokens and CLIP only 77, so the start must carry it.
    "flux1": (
        "Put the essential subject and style in the first sentence (only its start is read by one "
        "encoder), then details; at most about 120 words."
    ),
}
FAMILY_STYLE["qwen-image-edit"] = FAMILY_STYLE["qwen-image"]  # same text renderer, edit-only

# Any other family (a remote provider, a future one): plain, faithful detail.
DEFAULT_STYLE = "Write one clear descriptive paragraph of at most about 100 words."

# Asked last, so it is what the model reads just before it answers.
ONLY_THE_PROMPT = (
    "Keep the language of the request. Reply with the rewritten prompt only: no preface, no "
    "explanation, no quotes around it, no markdown."
)

# The text beside the images (Gemini's text part, chat content, inference.sh's description): the
# user reads it, so their language, and plain text, because not every client renders markdown.
ANSWER_SYSTEM = (
    "You are an image generation assistant. The image for the user's request is being made from the "
    "prompt shown. Write one or two short sentences to the user about what the image shows or what "
    "was changed, in the language of the user's request. Plain text only, no markdown, no "
    "questions, do not mention prompts or models."
)


def rewrite_system(family: str, *, edit: bool) -> str:
    """The system prompt that rewrites a request for an engine of ``family``: the edit frame when
    the request has input images, the new-image frame otherwise."""
    frame = EDIT_FRAME if edit else GENERATE_FRAME
    return "\n\n".join((frame, FAMILY_STYLE.get(family, DEFAULT_STYLE), ONLY_THE_PROMPT))


def rewrite_user(prompt: str, *, input_images: int) -> str:
    """The user turn of the rewrite: the request, and for an edit how many images it refers to (the
    model cannot see them, but 'the second image' must stay meaningful)."""
    if input_images == 0:
        return prompt
    images = "1 input image" if input_images == 1 else f"{input_images} input images"
    return f"Edit request ({images}): {prompt}"


def answer_user(original: str, revised: str) -> str:
    """The user turn of the answer: the request in the user's words (its language sets the answer's)
    and the prompt the engine was given (what the image will actually show)."""
    return f"Request: {original}\n\nPrompt: {revised}"
