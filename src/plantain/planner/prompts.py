"""The planner's system prompts: one frame for a new image and one for an edit, each completed by
what the engine's family reads best, and one for the answer's text.

Kept short on purpose: a 4B instruction model follows a few plain rules better than a long style
guide, and every system-prompt token is paid again on every request (prefill). Each rewrite prompt
ends by asking for the prompt alone, because whatever the model adds (a preface, quotes, markdown)
goes to the engine as part of the prompt. A text-only model sees no image, so its edit frame forbids
describing the inputs beyond what the user said; a vision-language model gets a frame that asks it
to read them.

Three smaller tasks share the model: writing web-search queries for grounding, using what the
search found in the rewrite, and deciding which earlier image of a conversation an edit means.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from plantain.types import ConversationTurn

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

# An edit by a model that sees the inputs: it can now name what must survive the edit, which the
# engine keeps better when told (a label's exact words, a sketch's layout), instead of guessing.
VISION_EDIT_FRAME = (
    "You turn a user's request to edit one or more input images, which you can see, into an "
    "instruction for an image-editing model. Read any text, labels, diagrams or sketches in them. "
    "State the change precisely, then describe briefly what the edit must preserve (people, faces, "
    "pose, composition, lighting, background, and any text exactly as written). Do not describe "
    "what the request does not concern. Turn 'don't do X' into 'keep X'."
)

# A new image with images beside it (grounding's reference photos): what they show is better than
# what the model remembers, and text in them is copied, not paraphrased.
SEES_IMAGES = (
    "You can see the images given with the request: read any text, labels, diagrams or sketches "
    "in them and use what they show rather than guessing."
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


def rewrite_system(family: str, *, edit: bool, sees: bool = False, facts: bool = False) -> str:
    """The system prompt that rewrites a request for an engine of ``family``: the edit frame when
    the request has input images, the new-image frame otherwise; their seeing variant when the
    model is shown the images (``sees``), and the facts rule when a web search found some."""
    if edit:
        parts = [VISION_EDIT_FRAME if sees else EDIT_FRAME]
    else:
        parts = [GENERATE_FRAME, SEES_IMAGES] if sees else [GENERATE_FRAME]
    if facts:
        parts.append(USE_THE_FACTS)
    parts += [FAMILY_STYLE.get(family, DEFAULT_STYLE), ONLY_THE_PROMPT]
    return "\n\n".join(parts)


def rewrite_user(prompt: str, *, input_images: int, facts: Sequence[str] = ()) -> str:
    """The user turn of the rewrite: the request, for an edit how many images it refers to ('the
    second image' must stay meaningful, seen or not), and what a web search found, if anything."""
    if input_images == 0:
        user = prompt
    else:
        images = "1 input image" if input_images == 1 else f"{input_images} input images"
        user = f"Edit request ({images}): {prompt}"
    found = numbered(facts, most=MAX_FACTS, chars=MAX_FACT_CHARS)
    return f"{user}\n\nWhat a web search found:\n{found}" if found else user


def answer_system(*, facts: bool = False) -> str:
    """The answer's system prompt, with leave to mention the search when facts were looked up."""
    return f"{ANSWER_SYSTEM} {ANSWER_FACTS}" if facts else ANSWER_SYSTEM


def answer_user(original: str, revised: str, facts: Sequence[str] = ()) -> str:
    """The user turn of the answer: the request in the user's words (its language sets the answer's)
    and the prompt the engine was given (what the image will actually show); then, briefly, what was
    looked up (the answer only names it, so a few short lines are enough)."""
    user = f"Request: {original}\n\nPrompt: {revised}"
    found = numbered(facts, most=MAX_ANSWER_FACTS, chars=MAX_ANSWER_FACT_CHARS)
    return f"{user}\n\nLooked up:\n{found}" if found else user


# --- what a web search found -------------------------------------------------------------------

# A search returns many results, each a title and a snippet; a few short ones carry what the real
# things look like, and every fact's tokens are prefill paid before the first word of the rewrite.
MAX_FACTS = 8
MAX_FACT_CHARS = 300
MAX_ANSWER_FACTS = 3
MAX_ANSWER_FACT_CHARS = 120

# Search results are evidence about appearance, not content to paint: a model shown a snippet
# tends to copy its words into the picture as captions, or to embellish beyond it.
USE_THE_FACTS = (
    "A web search found the facts listed after the request. Use them for what the real things named "
    "in it look like (shape, colours, materials, setting); do not invent other facts, and do not "
    "add any of their words to the image as text."
)

ANSWER_FACTS = "If something was looked up, you may say in a few words what."


def numbered(lines: Sequence[str], *, most: int, chars: int) -> str:
    """``lines`` as a numbered list: whitespace collapsed, blanks dropped, at most ``most`` of
    them, each cut to ``chars`` at a word boundary; empty when none is left."""
    kept = [shorten(line, chars) for line in lines]
    kept = [line for line in kept if line][:most]
    return "\n".join(f"{number}. {line}" for number, line in enumerate(kept, 1))


def shorten(text: str, chars: int) -> str:
    """``text`` with its whitespace collapsed and cut to at most ``chars`` characters at a word
    boundary (mid-word only when its first word alone is longer)."""
    text = " ".join(text.split())
    if len(text) <= chars:
        return text
    head = text[: chars + 1]  # one more, so a word ending exactly at the limit is kept whole
    cut = head.rsplit(" ", 1)[0] if " " in head else text[:chars]
    return cut.rstrip(" ,;:-")


# --- search queries for grounding --------------------------------------------------------------


def queries_system(limit: int) -> str:
    """The system prompt that asks for at most ``limit`` web-search queries, one per line. They look
    for the real things a picture depends on (a landmark, a product, a species), since what those
    look like is what the engine may not know; style words would only find other people's images."""
    most = "one short web-search query" if limit == 1 else f"up to {limit} short web-search queries"
    return (
        f"You write {most} for an image request: queries that would find the facts and reference "
        "photos of the real, named things the request depends on (places, buildings, products, "
        "people, species, artworks, events). Name them specifically; leave out style, mood and "
        "composition. Reply with one query per line and nothing else: no numbering, no quotes, no "
        "explanation."
    )


def queries_user(prompt: str) -> str:
    return f"Request: {prompt}"


# --- which earlier image a conversational edit means --------------------------------------------

# The model reads the whole listing before its one-number answer (prefill): a long chat would cost
# more than the answer is worth, and the image being edited is nearly always in the last few turns.
MAX_TURNS = 12
MAX_TURN_CHARS = 200
MAX_REQUEST_CHARS = 500

RESOLVE_SYSTEM = (
    "You read a chat with an image assistant. Images were sent by the user and made by the "
    "assistant; they are numbered in order. The new message asks for an image. If it asks to change, "
    "continue or reuse an earlier image, answer with that image's number; if it asks for a new image "
    "not based on an earlier one, answer 0. Reply with the number only."
)


def resolve_user(turns: Sequence[ConversationTurn], request: str) -> str:
    """The chat as numbered lines, each turn's role, text and images (``[image 2]``: numbered over
    the whole chat, even when its start is left out, so the answer indexes every earlier image),
    then the new message."""
    first = max(0, len(turns) - MAX_TURNS)
    images_before = sum(turn.images for turn in turns[:first])
    lines = [f"({first} earlier messages left out)"] if first else []
    for number, turn in enumerate(turns[first:], first + 1):
        shown = [f"[image {images_before + index}]" for index in range(1, turn.images + 1)]
        images_before += turn.images
        said = shorten(turn.text, MAX_TURN_CHARS)
        parts = [f'"{said}"'] if said else []
        parts.append(" ".join(shown) or "[no image]")
        lines.append(f"{number}. {turn.role}: {' '.join(parts)}")
    chat = "\n".join(lines) or "(no earlier messages)"
    return f'Chat:\n{chat}\n\nNew message: "{shorten(request, MAX_REQUEST_CHARS)}"'


# The answer's number: a standalone one ("2", "Image 2.", "#2"), so that digits inside a word of
# noise (a random model's "x7Q") are not read as a choice.
_NUMBER = re.compile(r"\b\d+\b")


def first_number(text: str) -> int | None:
    """The first standalone integer in ``text``, or None."""
    found = _NUMBER.search(text)
    return int(found.group()) if found else None
