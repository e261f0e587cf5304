"""Tokenizers for the tiny random-weight checkpoints, built in code (no hub access).

transformers v5 tokenizer classes accept an in-memory vocabulary, so the real classes are used:
they ``save_pretrained`` as ``tokenizer.json`` and load back through the normal loaders, exactly
like a downloaded checkpoint's tokenizer. Byte-level vocabularies with no merges make every byte
a token, which keeps the models' prompt-template logic valid at the cost of long sequences.
"""

from __future__ import annotations

from typing import Any

from transformers import CLIPTokenizer, Qwen2Tokenizer, Qwen3Config, T5Tokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

BYTE_SYMBOLS: list[str] = list(bytes_to_unicode().values())

QWEN_SPECIAL_TOKENS = [
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# A minimal chat template: FLUX.2-klein and Z-Image wrap the prompt with apply_chat_template.
QWEN_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

T5_CHARACTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()"


def tiny_qwen2_tokenizer() -> Qwen2Tokenizer:
    """Byte-level BPE with no merges: 257 byte tokens plus Qwen's special tokens."""
    vocab = {symbol: index for index, symbol in enumerate(BYTE_SYMBOLS)}
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=[],
        extra_special_tokens=QWEN_SPECIAL_TOKENS,
        model_max_length=32768,
    )
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    return tokenizer


def tiny_clip_tokenizer() -> CLIPTokenizer:
    """Every byte as a word piece and as a word end: 514 tokens."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in BYTE_SYMBOLS:
        vocab.setdefault(symbol, len(vocab))
        vocab.setdefault(symbol + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_t5_tokenizer() -> T5Tokenizer:
    """A unigram vocabulary of single characters: 150 tokens."""
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -5.0) for c in T5_CHARACTERS]
    pieces += [("\u2581" + c, -4.0) for c in T5_CHARACTERS]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=512)


def token_id(tokenizer: Qwen2Tokenizer, token: str) -> int:
    """The id of one token (``convert_tokens_to_ids`` is typed to maybe return a list)."""
    value = tokenizer.convert_tokens_to_ids(token)
    assert isinstance(value, int), f"{token!r} is not a single token"
    return value


def tiny_qwen3_config(tokenizer: Qwen2Tokenizer, **sizes: Any) -> Qwen3Config:
    """A tiny Qwen3 configuration on ``tokenizer``'s vocabulary and special ids (Qwen's default
    ids lie outside a tiny vocabulary and warn); a chat turn ends at ``<|im_end|>``. ``sizes``
    override the smallest shape that runs (hidden 16, two layers)."""
    pad_id = token_id(tokenizer, "<|endoftext|>")
    shape: dict[str, Any] = {
        "hidden_size": 16,
        "intermediate_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "max_position_embeddings": 512,
    }
    return Qwen3Config(
        **{**shape, **sizes},
        vocab_size=len(tokenizer),
        bos_token_id=pad_id,
        eos_token_id=token_id(tokenizer, "<|im_end|>"),
        pad_token_id=pad_id,
    )
