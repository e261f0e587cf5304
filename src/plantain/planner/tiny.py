"""``planner_model=tiny``: a Qwen3 causal language model at tiny size with random weights.

Built offline with the real transformers classes (the byte-level Qwen2 tokenizer the tiny engines
use, whose minimal ChatML template is all the planner needs of a chat template) and saved with
``save_pretrained``, it loads through :class:`~plantain.planner.model.PlannerModel` exactly as a
downloaded Qwen3 checkpoint does: ``AutoTokenizer``/``AutoModelForCausalLM.from_pretrained`` and
``apply_chat_template``. Its words are random bytes, but loading, templating, greedy decoding and
token counting all run for real, in well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from plantain.engines.checkpoints import SavedTogether, save_atomically
from plantain.engines.loading import quiet_libraries
from plantain.engines.tiny_tokenizers import tiny_qwen2_tokenizer, tiny_qwen3_config

CHECKPOINT_DIR_NAME = "tiny-planner-qwen3"


def build_checkpoint(directory: Path, seed: int = 0) -> None:
    """Build the tiny planner model into ``directory`` (hidden size 32, two layers)."""
    from transformers import Qwen3ForCausalLM

    quiet_libraries()
    torch.manual_seed(seed)
    tokenizer = tiny_qwen2_tokenizer()
    config = tiny_qwen3_config(
        tokenizer,
        hidden_size=32,
        intermediate_size=64,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=4096,
        tie_word_embeddings=True,  # as the small Qwen3 checkpoints (and klein's text encoder) do
    )
    model = Qwen3ForCausalLM(config)
    silence_blank_tokens(model, tokenizer)
    save_atomically(SavedTogether(model, tokenizer), directory)


def silence_blank_tokens(model: Any, tokenizer: Any) -> None:
    """Zero the (tied) embedding rows of tokens that decode to nothing visible: whitespace, control
    characters, a lone byte of a multi-byte character, and the special tokens (the end of turn
    among them). Greedy decoding of a random model repeats its likeliest token, and when that was
    a newline or the end of turn every rewrite came out empty, so tests and demos never saw the
    planner's text; with those rows at zero their logit is 0, below the best random one, and the
    noise it writes is printable. The output head's rows are zeroed too, which is the same tensor
    when the embeddings are tied and keeps the rule true if a model does not tie them."""
    special = set(tokenizer.all_special_ids)
    blank = [token for token in range(len(tokenizer)) if token in special or not _visible(tokenizer, token)]
    with torch.no_grad():
        model.get_input_embeddings().weight[blank] = 0.0
        model.get_output_embeddings().weight[blank] = 0.0


def _visible(tokenizer: Any, token: int) -> bool:
    text = tokenizer.decode([token], skip_special_tokens=True)
    return bool(text.strip()) and text.isprintable() and "\ufffd" not in text
