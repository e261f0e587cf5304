"""The planner stage's added latency per request: a rewrite and an answer, each forced to
``--max-tokens`` new tokens, on a real-size Qwen3 with random weights (no download).

    python bench/planner_latency.py                          # Qwen3-0.6B's shape, on the CPU
    python bench/planner_latency.py --shape qwen3-4b --device cuda --requests 5

The model is built from ``Qwen3Config`` at the named checkpoint's shape, randomly initialised, and
handed to :class:`~plantain.planner.model.PlannerModel` with ``adopt``; from there the real stage
runs (:class:`~plantain.planner.stage.Planner`: system prompts, chat template, greedy decoding),
except that ``min_new_tokens`` equals ``max_new_tokens``, since random weights may end a turn at
once: the figures are the worst case of ``planner_max_tokens`` per generation. The tokenizer is the
tiny byte-level one (a real Qwen tokenizer cannot be fetched here), so prompts are about four times
more tokens than Qwen's BPE makes of them: the prefill figure printed is an overestimate. Prints the
build time, the rewrite's prefill, then each request's seconds, min/median/max, and output tokens
per second of stage time.

Measured (2-core CPU, default arguments: Qwen3-0.6B's shape, float32, 200 + 200 tokens, 3
requests): 57.8 / 58.5 / 60.4 s per request, 6.8 tokens/s; rewrite prefill 2.7 s for 668 tokens.

Expected on a GPU (not measured here): Qwen's published speed benchmark (QwenLM/Qwen3, formerly
QwenLM/Qwen2.5, docs/source/getting_started/speed_benchmark.md, "Qwen3-4B (Transformers)": NVIDIA
H20, bf16, batch 1, flash-attention 2, transformers 4.51) gives 45.94 tokens/s for plain
``generate`` from a 1-token input; SGLang on the same card gives 133.13. Plain HF ``generate`` at
batch 1 is bound by Python and kernel launches, not by the GPU (the same table has 58.57 tokens/s
for 0.6B and 45.32 for 8B), so an H100 gives about the same, 40-60 tokens/s, far below the ~400
tokens/s its 3.35 TB/s memory bandwidth allows for 8 GB of bf16 weights. The planner uses plain
``generate``: a request costs about (rewrite + answer tokens) / 46 s, i.e. 400 forced tokens about
8-9 s, a typical rewrite of ~120 tokens and answer of ~40 about 3.5 s, plus well under 0.1 s of
prefill. A serving engine would cut that about three times (SGLang: 133 / 46 in the same table).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from plantain.engines.loading import pick_device
from plantain.engines.tiny_tokenizers import tiny_qwen2_tokenizer, token_id
from plantain.planner.model import PlannerModel
from plantain.planner.stage import Planner
from plantain.settings import Settings
from plantain.types import ImageRequest, PlanResult

# Shapes of the published Qwen3 checkpoints (their config.json), all with vocab 151936.
SHAPES: dict[str, dict[str, int]] = {
    "qwen3-0.6b": {"hidden_size": 1024, "num_hidden_layers": 28, "num_attention_heads": 16,
                   "num_key_value_heads": 8, "intermediate_size": 3072},
    "qwen3-1.7b": {"hidden_size": 2048, "num_hidden_layers": 28, "num_attention_heads": 16,
                   "num_key_value_heads": 8, "intermediate_size": 6144},
    "qwen3-4b": {"hidden_size": 2560, "num_hidden_layers": 36, "num_attention_heads": 32,
                 "num_key_value_heads": 8, "intermediate_size": 9728},
}  # fmt: skip

PROMPTS = [
    "a red fox asleep in fresh snow at dawn",
    'a bakery storefront with a hand-painted sign that says "Fresh Bread"',
    "an astronaut reading a newspaper on a park bench, 1970s film photo",
    "isometric illustration of a tiny island with a lighthouse",
]


def build_model(shape: str, device: torch.device) -> tuple[Any, Any]:
    """The tiny tokenizer and a random-weight Qwen3 of ``shape``, built on ``device`` (bfloat16 on
    CUDA, float32 elsewhere, as the planner loads real checkpoints)."""
    from transformers import AutoModelForCausalLM, Qwen3Config

    tokenizer = tiny_qwen2_tokenizer()
    config = Qwen3Config(
        **SHAPES[shape],
        head_dim=128,
        vocab_size=151936,
        tie_word_embeddings=True,  # as these three checkpoints do
        eos_token_id=token_id(tokenizer, "<|im_end|>"),
        pad_token_id=token_id(tokenizer, "<|endoftext|>"),
    )
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    with device:
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return tokenizer, model


class Forced(PlannerModel):
    """The real model, with every generation forced to its full ``max_new_tokens``."""

    def generate(
        self,
        system: str,
        user: str,
        *,
        images: Sequence[Any] = (),
        max_new_tokens: int,
        min_new_tokens: int = 0,
    ) -> Any:
        return super().generate(
            system, user, images=images, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens
        )


def prefill_seconds(model: PlannerModel, planner: Planner, family: str) -> tuple[float, int]:
    """Seconds to read the rewrite's system and user turns and write one token."""
    from plantain.planner import prompts

    started = time.perf_counter()
    generated = model.generate(prompts.rewrite_system(family, edit=False), PROMPTS[0], max_new_tokens=1)
    return time.perf_counter() - started, generated.input_tokens


def report(results: list[PlanResult]) -> None:
    seconds = [result.seconds for result in results]
    rate = statistics.median(result.output_tokens / result.seconds for result in results)
    first = results[0]
    print("each request: " + ", ".join(f"{value:.2f} s" for value in seconds))
    print(
        f"per request (rewrite + answer): min {min(seconds):.2f} s, "
        f"median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s; "
        f"{first.input_tokens} input + {first.output_tokens} output tokens; "
        f"{rate:.1f} output tokens per second of stage time (median)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen3-0.6b")
    parser.add_argument("--requests", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=200, help="planner_max_tokens")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--family", default="flux2-klein")
    args = parser.parse_args()

    settings = Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="planner-bench-")),
        planner_device=args.device,
        planner_max_tokens=args.max_tokens,
    )
    device = pick_device(args.device)
    print(f"{args.shape} (random weights) on {device}, torch threads {torch.get_num_threads()}")
    started = time.perf_counter()
    model = Forced(settings)
    model.adopt(*build_model(args.shape, device))
    print(f"built in {time.perf_counter() - started:.1f} s")
    planner = Planner(settings, model)
    prefill, tokens = prefill_seconds(model, planner, args.family)
    print(f"rewrite prefill: {prefill:.2f} s for {tokens} byte-level tokens (Qwen's BPE: about a quarter)")
    results = [
        planner.plan(ImageRequest(prompt=PROMPTS[index % len(PROMPTS)]), args.family)
        for index in range(args.requests)
    ]
    report(results)


if __name__ == "__main__":
    main()
