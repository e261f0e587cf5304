"""LoRAs per request on the tiny klein engine: random LoRAs made the way a trainer saves them,
loaded by the real diffusers/PEFT loader.

The checkpoint and the LoRAs are built once per module; each engine loads once per module. The
adapters are driven with :class:`Adapters` on the engine's pipeline under its run lock, as
``Engine.run`` does before each call; the jobs themselves carry no LoRAs.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from peft.tuners.tuners_utils import BaseTunerLayer

from plantain.engines import tiny
from plantain.engines.base import Engine, EngineJob
from plantain.engines.checkpoints import install_in_hub_cache
from plantain.engines.jobs import LoraSet
from plantain.engines.lora import SLOT, Adapters, check_names, check_quantization, fuse, resolve_loras
from plantain.engines.lora_tiny import build_tiny_lora
from plantain.errors import ConfigurationError, EngineLoadError, InvalidRequestError
from plantain.generation import prepare
from plantain.settings import Settings
from plantain.settings.extras import LoraSource
from plantain.testing import build_once
from plantain.types import ImageRequest, LoraChoice

KLEIN = "Flux2KleinPipeline"


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def klein_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_once(tiny.build_checkpoint, tmp_path_factory.mktemp("lora") / "tiny-klein")


@pytest.fixture(scope="module")
def lora_files(klein_dir: Path, tmp_path_factory: pytest.TempPathFactory, hub_cache: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("loras")
    files = {
        "ink": build_tiny_lora(klein_dir, KLEIN, root / "ink", seed=1),  # the file itself
        "neon": build_tiny_lora(klein_dir, KLEIN, root / "neon", seed=2).parent,  # its directory
        "wide": build_tiny_lora(klein_dir, KLEIN, root / "wide", rank=8, seed=3),
    }
    install_in_hub_cache(files["neon"], "plantain-test/neon-lora", hub_cache)
    return files


def allow_list(files: dict[str, Path]) -> dict[str, LoraSource]:
    return {
        "ink": LoraSource(source=str(files["ink"])),
        "neon": LoraSource(source=str(files["neon"]), weight_name="pytorch_lora_weights.safetensors"),
        "wide": LoraSource(source=str(files["wide"]), scale=0.5),
        "hub": LoraSource(source="plantain-test/neon-lora"),  # installed in the hub cache
        "absent": LoraSource(source="plantain-test/not-downloaded"),
        "gone": LoraSource(source=str(files["ink"].parent.parent / "gone.safetensors")),
    }


def klein_engine(klein_dir: Path, data_dir: Path, **fields: Any) -> Engine:
    settings = Settings(data_dir=data_dir, weights={"tiny": klein_dir}, dtype="float32", **fields)
    engine = tiny.create("tiny", settings)
    engine.load()
    return engine


@pytest.fixture(scope="module")
def engine(
    klein_dir: Path, lora_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, hub_cache: Path
) -> Engine:
    data_dir = tmp_path_factory.mktemp("data")
    return klein_engine(klein_dir, data_dir, hub_cache=hub_cache, loras={"tiny": allow_list(lora_files)})


@pytest.fixture(scope="module")
def adapters(engine: Engine) -> Adapters:
    """The engine's one set of adapters: a pipeline's adapters have one owner, as in Engine."""
    adapters = Adapters("tiny", engine.settings)
    adapters.prepare(engine._pipeline)
    return adapters


@pytest.fixture(scope="module")
def job(engine: Engine) -> EngineJob:
    return prepare(ImageRequest.create(prompt="a lighthouse at dusk", size="512", seed=7), engine)


def run_with(engine: Engine, adapters: Adapters, loras: LoraSet, job: EngineJob) -> np.ndarray:
    with engine._lock:  # as Engine.run: the adapters are the pipeline's state
        adapters.apply(engine._pipeline, loras)
    return np.asarray(engine.run([job])[0][0]).astype(np.int16)


def lora_layers(engine: Engine) -> list[Any]:
    return [m for m in engine._pipeline.transformer.modules() if isinstance(m, BaseTunerLayer)]


# --- the request side --------------------------------------------------------------------------

ALLOWED = {
    "ink": LoraSource(source="/srv/loras/ink.safetensors", scale=0.8),
    "neon": LoraSource(source="a/b"),
}


def test_names_resolve_sorted_with_the_allow_lists_scale() -> None:
    choices = [LoraChoice(name="neon", scale=0.3), LoraChoice(name="ink")]
    assert resolve_loras("tiny", choices, ALLOWED) == (("ink", 0.8), ("neon", 0.3))
    assert resolve_loras("tiny", [], ALLOWED) == ()


def test_an_unknown_name_is_refused_listing_the_allowed_ones() -> None:
    with pytest.raises(InvalidRequestError) as info:
        resolve_loras("tiny", [LoraChoice(name="pastel")], ALLOWED)
    assert info.value.field == "loras[0].name"
    assert "'pastel'" in info.value.message and "ink, neon" in info.value.message


def test_an_engine_without_loras_says_so() -> None:
    with pytest.raises(InvalidRequestError, match="has none") as info:
        resolve_loras("tiny", [LoraChoice(name="ink")], {})
    assert info.value.field == "loras[0].name"


@pytest.mark.parametrize(
    "name", ["/srv/loras/ink.safetensors", "../ink", "~/ink", "https://example.com/ink.safetensors", "a/b"]
)
def test_paths_and_urls_are_refused_even_when_listed(name: str) -> None:
    with pytest.raises(InvalidRequestError, match="a path or URL") as info:
        resolve_loras(
            "tiny", [LoraChoice(name="ink"), LoraChoice(name=name)], {**ALLOWED, name: ALLOWED["ink"]}
        )
    assert info.value.field == "loras[1].name"


def test_the_same_name_twice_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="named twice") as info:
        resolve_loras("tiny", [LoraChoice(name="ink"), LoraChoice(name="ink", scale=0.2)], ALLOWED)
    assert info.value.field == "loras[1].name"


def test_fp8_with_per_request_loras_is_refused_naming_both_settings() -> None:
    settings = Settings(quantization="fp8", loras={"tiny": ALLOWED})
    with pytest.raises(ConfigurationError) as info:
        check_quantization(settings)
    assert (
        "quantization" in info.value.message
        and "loras" in info.value.message
        and "tiny" in info.value.message
    )
    check_quantization(Settings(quantization="fp8"))  # no LoRAs: nothing to refuse
    check_quantization(Settings(loras={"tiny": ALLOWED}))  # no fp8: nothing to refuse


def test_an_allow_list_name_like_a_path_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="looks like a path"):
        check_names(Settings(loras={"tiny": {"styles/ink": ALLOWED["ink"]}}))


def test_a_pipeline_without_loras_is_refused_at_prepare() -> None:
    adapters = Adapters("plain", Settings(loras={"plain": ALLOWED}))
    with pytest.raises(ConfigurationError, match="takes no LoRAs") as info:
        adapters.prepare(SimpleNamespace(transformer=None))
    assert info.value.field == "loras"


# --- the pipeline side -------------------------------------------------------------------------


def test_a_lora_changes_the_image_and_none_gives_the_base_back_exactly(
    engine: Engine, adapters: Adapters, job: EngineJob
) -> None:
    base = run_with(engine, adapters, (), job)
    styled = run_with(engine, adapters, (("ink", 1.0),), job)
    assert np.abs(styled - base).mean() > 0.01
    assert np.array_equal(run_with(engine, adapters, (("ink", 1.0),), job), styled)  # seeded: repeatable
    assert np.array_equal(run_with(engine, adapters, (), job), base)  # adapters disabled
    assert np.array_equal(run_with(engine, adapters, (("ink", 0.0),), job), base)  # scale 0 is none
    assert "ink" in adapters.describe()["loaded"]


def test_two_loras_combine(engine: Engine, adapters: Adapters, job: EngineJob) -> None:
    ink = run_with(engine, adapters, (("ink", 1.0),), job)
    neon = run_with(engine, adapters, (("neon", 1.0),), job)
    both = run_with(engine, adapters, (("ink", 1.0), ("neon", 1.0)), job)
    assert np.abs(both - ink).mean() > 0.01 and np.abs(both - neon).mean() > 0.01
    half = run_with(engine, adapters, (("ink", 1.0), ("neon", 0.5)), job)
    assert not np.array_equal(half, both)  # each LoRA's scale is its own
    described = adapters.describe()
    assert {"ink", "neon"} <= set(described["loaded"]) and described["mode"] == "adapters"
    assert described["active"] == [["ink", 1.0], ["neon", 0.5]]


def test_a_missing_source_is_a_load_error_naming_the_lora_and_source(
    engine: Engine, adapters: Adapters, job: EngineJob
) -> None:
    with pytest.raises(EngineLoadError) as info:
        adapters.apply(engine._pipeline, (("gone", 1.0),))
    assert "LoRA gone" in info.value.message and "gone.safetensors" in info.value.message
    with pytest.raises(EngineLoadError, match=r"not-downloaded.*hub cache"):
        adapters.apply(engine._pipeline, (("absent", 1.0),))
    run_with(engine, adapters, (("ink", 1.0),), job)  # a failed load leaves the others working


def test_a_hub_id_loads_from_the_cache_and_never_downloads(
    engine: Engine, adapters: Adapters, job: EngineJob
) -> None:
    from_hub = run_with(engine, adapters, (("hub", 1.0),), job)
    local = run_with(engine, adapters, (("neon", 1.0),), job)  # the same LoRA, from its directory
    assert np.array_equal(from_hub, local)


def test_hotswap_swaps_into_one_slot(
    klein_dir: Path,
    lora_files: dict[str, Path],
    tmp_path: Path,
    engine: Engine,
    adapters: Adapters,
    job: EngineJob,
) -> None:
    hot = klein_engine(klein_dir, tmp_path, loras={"tiny": allow_list(lora_files)}, lora_hotswap_rank=8)
    slot = Adapters("tiny", hot.settings)
    slot.prepare(hot._pipeline)
    base = run_with(hot, slot, (), job)
    ink = run_with(hot, slot, (("ink", 1.0),), job)
    wide = run_with(hot, slot, (("wide", 0.5),), job)  # rank 8 into the slot padded to 8
    again = run_with(hot, slot, (("ink", 1.0),), job)
    assert list(hot._pipeline.transformer.peft_config) == [SLOT]  # swapped, never a second adapter
    assert np.abs(ink - base).mean() > 0.01 and np.abs(wide - ink).mean() > 0.01
    assert np.abs(again - ink).max() <= 1
    own = run_with(engine, adapters, (("wide", 0.5),), job)  # the same LoRA as its own adapter
    assert np.abs(own - wide).max() <= 1
    assert np.array_equal(run_with(hot, slot, (), job), base)
    assert slot.describe()["mode"] == "hotswap" and slot.describe()["max_per_request"] == 1
    with pytest.raises(InvalidRequestError, match="one LoRA at a time") as info:
        slot.apply(hot._pipeline, (("ink", 1.0), ("neon", 1.0)))
    assert info.value.field == "loras"


def test_fuse_bakes_the_lora_in_and_leaves_no_lora_layers(
    klein_dir: Path,
    lora_files: dict[str, Path],
    tmp_path: Path,
    engine: Engine,
    adapters: Adapters,
    job: EngineJob,
) -> None:
    fused = klein_engine(klein_dir, tmp_path)
    weight = fused._pipeline.transformer.transformer_blocks[0].attn.to_q.weight.detach().clone()
    fuse(fused._pipeline, LoraSource(source=str(lora_files["ink"])), 0.7, engine_name="tiny", name="ink")
    after = fused._pipeline.transformer.transformer_blocks[0].attn.to_q.weight
    assert not np.allclose(after.detach().numpy(), weight.numpy())
    assert lora_layers(fused) == [] and not getattr(fused._pipeline.transformer, "peft_config", {})
    image = np.asarray(fused.run([job])[0][0]).astype(np.int16)
    unfused = run_with(engine, adapters, (("ink", 0.7),), job)
    assert np.abs(image - unfused).max() <= 2  # the same LoRA at the same scale, up to rounding
