"""The fast path on the tiny engine: cached text embeddings, warm-up at load, the knobs that apply
on a CPU, and clear refusals of the ones that cannot (fp8). The attention kernel each engine gets,
the compile modes CUDA graphs take and the fp8 version pin are checked without a GPU (a planned
CUDA device and a fake transformer); CUDA-only checks carry the gpu marker."""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers.models.attention_dispatch import AttentionBackendName

from plantain.engines.base import Engine, EngineJob
from plantain.engines.fastpath import (
    TORCHAO_PIN,
    apply_fast_path,
    attention_kernel,
    check_torchao,
    plan_fast_path,
)
from plantain.engines.flux1 import Flux1Engine
from plantain.engines.flux2 import Flux2KleinEngine
from plantain.engines.qwen_image import QwenImageEditEngine, QwenImageEngine
from plantain.engines.registry import EngineRegistry
from plantain.engines.zimage import ZImageEngine
from plantain.errors import ConfigurationError
from plantain.settings import Settings, load_settings
from plantain.types import ImageRequest

ROOT = Path(__file__).resolve().parents[2]
CUDA = torch.device("cuda")  # planned only: nothing here touches a GPU


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
    with caplog.at_level(logging.INFO, logger="plantain.engines.running"):
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
    with pytest.raises(ConfigurationError, match=r"cuda_graphs.*set torch_compile to auto or full"):
        load_settings(torch_compile="off", cuda_graphs=True)


def test_describe_shows_the_planned_fast_path_before_loading(data_dir: Path) -> None:
    fast = tiny(data_dir, device="cpu").describe()["fast_path"]
    assert not fast["applied"]
    assert (fast["compile"], fast["vae_channels_last"], fast["text_embedding_cache"]) == ("off", False, 64)


# --- CUDA graphs and compile modes (planned for CUDA, no GPU needed) -----------------------------


class FakeTransformer(torch.nn.Module):
    """Records the attention backend and compile calls a pipeline's transformer receives."""

    def __init__(self) -> None:
        super().__init__()
        self.backends: list[str] = []
        self.compiled: list[dict[str, Any]] = []

    def set_attention_backend(self, backend: str) -> None:
        self.backends.append(backend)

    def compile_repeated_blocks(self, **options: Any) -> None:
        self.compiled.append(options)


class FakePipeline:
    def __init__(self) -> None:
        self.transformer = FakeTransformer()


def test_regional_compile_with_cuda_graphs_is_refused_naming_both_settings() -> None:
    with pytest.raises(ConfigurationError, match=r"cuda_graphs.*#152887.*torch_compile=regional") as caught:
        load_settings(torch_compile="regional", cuda_graphs=True)
    assert "set cuda_graphs to false, or torch_compile to full or auto" in str(caught.value)


def test_auto_compile_with_cuda_graphs_compiles_the_whole_transformer() -> None:
    plan = plan_fast_path(load_settings(cuda_graphs=True), CUDA, attention_masks="none")
    assert (plan.compile, plan.cuda_graphs) == ("full", True)
    plain = plan_fast_path(load_settings(), CUDA, attention_masks="none")
    assert (plain.compile, plain.cuda_graphs) == ("regional", False)


def test_unchecked_regional_settings_never_capture_graphs_of_blocks() -> None:
    settings = load_settings().model_copy(update={"torch_compile": "regional", "cuda_graphs": True})
    pipeline = FakePipeline()
    with pytest.raises(ConfigurationError, match=r"cuda_graphs.*#152887") as caught:
        apply_fast_path(pipeline, plan_fast_path(settings, CUDA, attention_masks="none"), engine="x")
    assert caught.value.field == "cuda_graphs"
    assert pipeline.transformer.compiled == []


# --- the attention kernel of each engine ---------------------------------------------------------

MASK_FREE_ENGINES = [Flux1Engine, Flux2KleinEngine]
QWEN_ENGINES = [QwenImageEngine, QwenImageEditEngine]


@pytest.mark.parametrize(
    ("setting", "kernel"), [("flash", "flash_varlen"), ("flash3", "_flash_varlen_3"), ("sage", "sage_varlen")]
)
def test_z_image_gets_the_variable_length_kernel_that_takes_its_padding_mask(
    setting: str, kernel: str
) -> None:
    assert attention_kernel(setting, ZImageEngine.attention_masks, engine="z-image-turbo") == kernel
    assert AttentionBackendName(kernel).value == kernel  # a backend this diffusers has


@pytest.mark.parametrize("engine", QWEN_ENGINES, ids=lambda engine: engine.__name__)
@pytest.mark.parametrize("setting", ["flash", "flash3", "sage", "xformers"])
def test_qwen_image_refuses_kernels_that_cannot_apply_its_mask(engine: type[Engine], setting: str) -> None:
    with pytest.raises(
        ConfigurationError, match=rf"attention_backend.*{setting} cannot run engine qwen"
    ) as caught:
        attention_kernel(setting, engine.attention_masks, engine="qwen-image")
    assert caught.value.field == "attention_backend"
    assert str(caught.value).endswith("use one of auto, sdpa, cudnn, flex")


@pytest.mark.parametrize("engine", [*QWEN_ENGINES, ZImageEngine], ids=lambda engine: engine.__name__)
@pytest.mark.parametrize(
    ("setting", "kernel"), [("sdpa", "native"), ("cudnn", "_native_cudnn"), ("flex", "flex")]
)
def test_masked_engines_keep_the_kernels_that_apply_any_mask(
    engine: type[Engine], setting: str, kernel: str
) -> None:
    assert attention_kernel(setting, engine.attention_masks, engine="e") == kernel


@pytest.mark.parametrize("engine", MASK_FREE_ENGINES, ids=lambda engine: engine.__name__)
def test_engines_without_masks_get_the_plain_flash_kernels(engine: type[Engine]) -> None:
    plain = {"flash": "flash", "flash3": "_flash_3", "sage": "sage", "xformers": "xformers"}
    assert {name: attention_kernel(name, engine.attention_masks, engine="e") for name in plain} == plain


def test_loading_z_image_with_flash_sets_the_variable_length_backend() -> None:
    pipeline = FakePipeline()
    settings = load_settings(attention_backend="flash")
    plan = plan_fast_path(settings, torch.device("cpu"), attention_masks=ZImageEngine.attention_masks)
    applied = apply_fast_path(pipeline, plan, engine="z-image-turbo")
    assert pipeline.transformer.backends == ["flash_varlen"]
    assert applied.describe()["attention_kernel"] == "flash_varlen"


@pytest.mark.parametrize(
    "backend", [name.value for name in AttentionBackendName if name.value.endswith("_hub")]
)
def test_hub_backends_are_refused_as_downloads_at_run_time(backend: str) -> None:
    with pytest.raises(
        ConfigurationError, match=r"attention_backend.*download their kernel from the Hugging Face Hub"
    ):
        load_settings(attention_backend=backend)


# --- the fp8 extra's torchao ---------------------------------------------------------------------


def test_the_fp8_extra_pins_the_torchao_that_loading_checks() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["optional-dependencies"]["fp8"] == [f"torchao=={TORCHAO_PIN}"]


@pytest.mark.parametrize("torchao", ["0.16.0", "0.17.0", "0.19.0", "0.18.1+cu128", "unknown"])
def test_fp8_refuses_another_torchao_naming_both_versions_and_the_pin(torchao: str) -> None:
    with pytest.raises(ConfigurationError, match=r"setting quantization .*fp8") as caught:
        check_torchao("2.13.0+cu130", torchao)
    message = str(caught.value)
    assert f"torchao {torchao} with torch 2.13.0+cu130" in message
    assert f"the fp8 extra pins torchao {TORCHAO_PIN}" in message
    assert caught.value.field == "quantization"


def test_fp8_refuses_a_torch_older_than_the_pinned_torchao_needs() -> None:
    with pytest.raises(
        ConfigurationError, match=r"torchao 0.18.0 with torch 2.10.0\+cu128.*needs torch 2.11 or later"
    ):
        check_torchao("2.10.0+cu128", "0.18.0")


@pytest.mark.parametrize(
    ("torch_version", "torchao"), [("2.13.0", "0.18.0"), ("2.14.0.dev20260601+cu130", "0.18.0+cu130")]
)
def test_fp8_accepts_the_pinned_torchao_on_a_recent_torch(torch_version: str, torchao: str) -> None:
    check_torchao(torch_version, torchao)


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
