"""The fast path on the tiny engine: cached text embeddings, warm-up at load, the knobs that apply
on a CPU, and clear refusals of the ones that cannot (fp8). CUDA-only checks carry the gpu marker."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from plantain.engines.base import Engine, EngineJob
from plantain.engines.registry import EngineRegistry
from plantain.errors import ConfigurationError
from plantain.settings import Settings, load_settings
from plantain.types import ImageRequest


def tiny(data_dir: Path, **fields: Any) -> Engine:
    return EngineRegistry(Settings(data_dir=data_dir, **fields)).get("tiny")


def job(engine: Engine, prompt: str, seed: int = 3) -> EngineJob:
    request = ImageRequest.create(prompt=prompt, aspect_ratio="1:1", size="512", options={"steps": 2})
    return engine.plan(request, [], seed)


def pixels(engine: Engine, *prompts: str) -> list[bytes]:
    """Run one job per prompt in one pipeline call; each image's raw pixels."""
    runs = engine.run([job(engine, prompt) for prompt in prompts])
    return [image.tobytes() for images in runs for image in images]


class EncoderCalls:
    """Counts the real text encoder's forward calls (the module itself runs unchanged)."""

    def __init__(self, engine: Engine) -> None:
        engine.load()
        self.module = engine._pipeline.text_encoder
        self.count = 0
        forward = self.module.forward

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return forward(*args, **kwargs)

        self.module.forward = counted


@pytest.fixture(scope="module")
def cached(data_dir: Path) -> Engine:
    return tiny(data_dir, text_embedding_cache=2)


@pytest.fixture(scope="module")
def uncached(data_dir: Path) -> Engine:
    return tiny(data_dir, text_embedding_cache=0)


@pytest.fixture
def calls(cached: Engine) -> Iterator[EncoderCalls]:
    counter = EncoderCalls(cached)
    yield counter
    del counter.module.forward  # back to the class's forward


# --- cached text embeddings --------------------------------------------------------------------


def test_a_cached_prompt_gives_the_same_image_as_an_encoded_one(cached: Engine, uncached: Engine) -> None:
    first, again = pixels(cached, "a red kite"), pixels(cached, "a red kite")
    assert first == again == pixels(uncached, "a red kite")


def test_a_repeated_prompt_runs_the_text_encoder_once(cached: Engine, calls: EncoderCalls) -> None:
    pixels(cached, "a harbour at noon")
    pixels(cached, "a harbour at noon")
    assert calls.count == 1


def test_a_batch_encodes_only_its_new_prompts_and_matches_the_uncached_batch(
    cached: Engine, uncached: Engine, calls: EncoderCalls
) -> None:
    pixels(cached, "a green door")
    batch = pixels(cached, "a green door", "a blue door")
    assert calls.count == 2  # the second call encoded "a blue door" alone
    assert batch == pixels(uncached, "a green door", "a blue door")


def test_the_least_recently_used_prompt_is_dropped(cached: Engine, calls: EncoderCalls) -> None:
    for prompt in ("one fox", "two foxes", "three foxes", "two foxes", "one fox"):
        pixels(cached, prompt)
    # capacity 2: "one fox" was dropped by "three foxes"; "two foxes" was still there
    assert calls.count == 4
    assert cached.describe()["text_embedding_cache"]["entries"] == 2


# --- warm-up -------------------------------------------------------------------------------------


def test_load_warms_up_each_configured_size(data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = tiny(data_dir, warmup_sizes=["512:1:1", "512:16:9"])
    with caplog.at_level(logging.INFO, logger="plantain.engines.base"):
        engine.load()
    warmed = [record.getMessage() for record in caplog.records if "warmed up" in record.getMessage()]
    assert [message.split(" in ")[0] for message in warmed] == [
        "engine tiny warmed up 512:1:1 (512x512)",
        "engine tiny warmed up 512:16:9 (672x384)",
    ]
    assert engine.describe()["fast_path"]["warmup_sizes"] == ["512:1:1", "512:16:9"]


def test_a_warmup_size_the_engine_cannot_make_fails_the_load_naming_the_setting(data_dir: Path) -> None:
    engine = tiny(data_dir, warmup_sizes=["1K:1:1"], max_output_pixels=512 * 512)
    with pytest.raises(ConfigurationError, match=r"warmup_sizes.*1K:1:1") as caught:
        engine.load()
    assert caught.value.field == "warmup_sizes"
    assert not engine.loaded


def test_warmup_sizes_are_checked_when_settings_are_read() -> None:
    with pytest.raises(ConfigurationError, match=r"warmup_sizes.*'1K-1:1' is not \"TIER:RATIO\""):
        load_settings(warmup_sizes=["1K-1:1"])


# --- the knobs on a CPU --------------------------------------------------------------------------


def test_on_a_cpu_channels_last_compile_and_graphs_are_off_with_reasons(data_dir: Path) -> None:
    engine = tiny(data_dir, device="cpu", cuda_graphs=True)
    engine.load()
    weight = next(p for p in engine._pipeline.vae.parameters() if p.ndim == 4)
    assert weight.is_contiguous() and not weight.is_contiguous(memory_format=torch.channels_last)
    fast = engine.describe()["fast_path"]
    assert fast["applied"]
    assert (fast["compile"], fast["cuda_graphs"], fast["attention_backend"]) == ("off", False, "sdpa")
    assert fast["inactive"] == {
        "vae_channels_last": "channels_last speeds up cuDNN convolutions; on cpu it is no faster",
        "cuda_graphs": "CUDA graphs need a CUDA device, not cpu",
    }


def test_fp8_without_a_capable_gpu_is_a_configuration_error_naming_the_setting(data_dir: Path) -> None:
    engine = tiny(data_dir, device="cpu", quantization="fp8")
    with pytest.raises(ConfigurationError, match=r"setting quantization .*fp8 needs") as caught:
        engine.load()
    assert caught.value.field == "quantization"


def test_cuda_graphs_without_compile_are_refused_when_settings_are_read() -> None:
    with pytest.raises(ConfigurationError, match=r"cuda_graphs.*set torch_compile to auto, regional or full"):
        load_settings(torch_compile="off", cuda_graphs=True)


def test_describe_shows_the_planned_fast_path_before_loading(data_dir: Path) -> None:
    fast = tiny(data_dir, device="cpu").describe()["fast_path"]
    assert not fast["applied"]
    assert (fast["compile"], fast["vae_channels_last"], fast["text_embedding_cache"]) == ("off", False, 64)


# --- on a CUDA GPU -------------------------------------------------------------------------------


def gpu_engine(data_dir: Path, **fields: Any) -> Engine:
    assert torch.cuda.is_available(), "this test needs a CUDA GPU"
    return tiny(data_dir, device="cuda", dtype="bfloat16", warmup_sizes=[], **fields)


def mean_difference(first: bytes, second: bytes) -> float:
    return sum(abs(a - b) for a, b in zip(first, second, strict=True)) / len(first)


@pytest.mark.gpu
def test_compiled_transformer_matches_eager_on_cuda(data_dir: Path) -> None:
    eager = pixels(gpu_engine(data_dir, torch_compile="off"), "a lighthouse")[0]
    compiled = gpu_engine(data_dir, torch_compile="regional")
    assert compiled.describe()["fast_path"]["compile"] == "regional"
    assert mean_difference(eager, pixels(compiled, "a lighthouse")[0]) < 2.0  # of 255


@pytest.mark.gpu
def test_fp8_deviation_from_bfloat16_on_the_same_seed(data_dir: Path) -> None:
    reference = pixels(gpu_engine(data_dir, torch_compile="off"), "a lighthouse")[0]
    if torch.cuda.get_device_capability() < (8, 9):
        with pytest.raises(ConfigurationError, match="compute capability"):
            gpu_engine(data_dir, quantization="fp8").load()
        return
    fp8 = pixels(gpu_engine(data_dir, torch_compile="off", quantization="fp8"), "a lighthouse")[0]
    deviation = mean_difference(reference, fp8)
    print(f"fp8 vs bfloat16, tiny engine, mean absolute pixel difference: {deviation:.2f} of 255")
    assert 0 < deviation < 32
