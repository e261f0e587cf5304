"""4K on every engine (docs/upscaling.md): each family's tiny checkpoint makes its largest native
tier of the ratio and a tiny random-weight upscaler, read by spandrel from a local file, enlarges
it to the tier's exact table size; the result says so. Without an upscaler the size is refused,
naming the setting; ``tiny`` makes 4K natively and says nothing."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from plantain.engines.base import Engine
from plantain.engines.family import Family
from plantain.engines.registry import FAMILIES
from plantain.errors import UnsupportedSizeError
from plantain.generation import prepare, run_request
from plantain.imaging.sizes import TABLE_1K
from plantain.limits import Limits
from plantain.settings import Settings
from plantain.settings.extras import LICENCE_IDS
from plantain.testing import build_once, make_input
from plantain.types import ImageRequest
from plantain.upscale.tiny import build_tiny_upscaler

UPSCALED = [family for family in FAMILIES if family.engine != "tiny"]


@pytest.fixture(scope="module")
def upscaler(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Compact, the fast tiny architecture: the tiny ESRGAN takes ~30 s for a 4K image on 2 cores.
    path = tmp_path_factory.mktemp("upscaler") / "tiny-x4.safetensors"
    return build_tiny_upscaler(path, "compact", scale=4)


def _engine(family: Family, directory: Path, **fields: object) -> Engine:
    settings = Settings(
        data_dir=directory.parent / "data",
        weights={family.engine: directory},
        dtype="float32",
        accept_licences=list(LICENCE_IDS),
        **fields,  # type: ignore[arg-type]
    )
    engine = family.create(family.engine, settings)
    engine.preset = replace(
        engine.preset, call_kwargs={**engine.preset.call_kwargs, **family.tiny_call_kwargs}
    )
    return engine


def _request(engine: Engine, size: str, aspect_ratio: str = "1:1") -> ImageRequest:
    images = () if engine.capabilities.text_to_image else (make_input(),)
    return ImageRequest.create(
        prompt="a lighthouse",
        images=images,
        size=size,
        aspect_ratio=aspect_ratio,
        seed=3,
        options={"steps": 1},
    )


@pytest.mark.slow
@pytest.mark.parametrize("family", UPSCALED, ids=lambda family: family.engine)
def test_4k_is_made_natively_then_upscaled_to_the_exact_table_size(
    family: Family, upscaler: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = build_once(family.build_tiny, tmp_path_factory.mktemp(family.engine) / "tiny")
    engine = _engine(family, directory, upscaler=upscaler)
    result = run_request(_request(engine, "4K"), engine)
    table = (TABLE_1K["1:1"][0] * 4, TABLE_1K["1:1"][1] * 4)
    image = result.images[0]
    assert (image.width, image.height) == table
    assert Image.open(io.BytesIO(image.data)).size == table
    made = result.upscaled
    assert made is not None and (made.width, made.height) == table
    native = (made.from_width, made.from_height)
    assert native[0] * native[1] <= engine.capabilities.sizes.max_pixels < table[0] * table[1]
    assert made.upscaler.endswith("(tiny-x4.safetensors)") and "4x" in made.upscaler
    assert f"{native[0]}x{native[1]} upscaled to 4096x4096 by" in made.describe()


def test_without_an_upscaler_4k_is_refused_naming_the_setting(tmp_path: Path) -> None:
    family = next(family for family in FAMILIES if family.engine == "flux2-klein-4b")
    engine = _engine(family, tmp_path / "absent")
    with pytest.raises(UnsupportedSizeError) as refused:
        prepare(_request(engine, "4K"), engine)
    assert "4.2 megapixels" in refused.value.message and "setting upscaler" in refused.value.message
    assert refused.value.field == "size"


def test_a_tier_the_engine_makes_is_never_upscaled(upscaler: Path, tmp_path: Path) -> None:
    family = next(family for family in FAMILIES if family.engine == "flux2-klein-4b")
    engine = _engine(family, tmp_path / "absent", upscaler=upscaler)
    job = prepare(_request(engine, "2K"), engine)
    assert (job.width, job.height) == (2048, 2048) and job.upscale is None


def test_the_server_cap_is_not_lifted_by_the_upscaler(upscaler: Path, tmp_path: Path) -> None:
    family = next(family for family in FAMILIES if family.engine == "flux2-klein-4b")
    engine = _engine(family, tmp_path / "absent", upscaler=upscaler, max_output_pixels=8_000_000)
    with pytest.raises(UnsupportedSizeError) as refused:
        prepare(_request(engine, "4K"), engine, Limits.from_settings(engine.settings))
    assert "this server (max_output_pixels)" in refused.value.message


def test_qwen_2k_is_upscaled_from_its_1k(upscaler: Path, tmp_path: Path) -> None:
    family = next(family for family in FAMILIES if family.engine == "qwen-image")
    engine = _engine(family, tmp_path / "absent", upscaler=upscaler)
    job = prepare(_request(engine, "2K", aspect_ratio="16:9"), engine)
    assert (job.width, job.height) == (1344, 768)
    assert job.upscale is not None and (job.upscale.width, job.upscale.height) == (2688, 1536)


def test_tiny_makes_4k_natively(upscaler: Path, settings: Settings) -> None:
    family = next(family for family in FAMILIES if family.engine == "tiny")
    engine = family.create("tiny", settings.model_copy(update={"upscaler": upscaler}))
    job = prepare(_request(engine, "4K"), engine)
    assert (job.width, job.height) == (4096, 4096) and job.upscale is None


def test_the_engine_card_says_how_each_tier_is_made(upscaler: Path, tmp_path: Path) -> None:
    family = next(family for family in FAMILIES if family.engine == "flux2-klein-4b")
    card = _engine(family, tmp_path / "absent", upscaler=upscaler).describe()
    tiers = card["tiers"]
    assert tiers["2K"] == {"made": "native", "size": "2048x2048"}
    assert tiers["4K"]["made"] == "upscaled" and tiers["4K"]["from"] == "2048x2048"
    assert tiers["4K"]["size"] == "4096x4096"
    bare = _engine(family, tmp_path / "absent").describe()["tiers"]["4K"]
    assert bare["made"] == "refused" and "setting upscaler" in bare["reason"]


@pytest.mark.slow
def test_refining_repaints_the_upscaled_image_tile_by_tile(
    upscaler: Path, tmp_path_factory: pytest.TempPathFactory, data_dir: Path
) -> None:
    from plantain.engines import tiny

    family = next(family for family in FAMILIES if family.engine == "flux2-klein-4b")
    directory = tiny.checkpoint_dir(Settings(data_dir=data_dir))
    plain = _engine(family, directory, upscaler=upscaler, upscale_tile=1024)
    refined = _engine(family, directory, upscaler=upscaler, upscale_tile=1024, upscale_refine_strength=0.3)
    first = run_request(_request(plain, "4K"), plain)
    second = run_request(_request(refined, "4K"), refined)
    assert first.upscaled is not None and first.upscaled.refine_strength == 0
    assert second.upscaled is not None and second.upscaled.refine_strength == 0.3
    assert "refined at strength 0.3" in second.upscaled.describe()
    assert (second.images[0].width, second.images[0].height) == (4096, 4096)
    assert first.images[0].data != second.images[0].data


def test_a_remote_provider_or_route_is_never_planned_through_the_upscaler(
    upscaler: Path, tmp_path: Path
) -> None:
    from plantain.providers.base import RemoteEngine
    from plantain.providers.routing import RoutedEngine

    # Their run is their own (not Engine.run's, which upscales): they make the sizes they declare.
    assert RemoteEngine.upscales is False and RoutedEngine.upscales is False
    family = next(family for family in FAMILIES if family.engine == "flux2-klein-4b")
    engine = _engine(family, tmp_path / "absent", upscaler=upscaler)
    engine.upscales = False
    with pytest.raises(UnsupportedSizeError) as refused:
        prepare(_request(engine, "4K"), engine)
    assert "4.2 megapixels" in refused.value.message and "upscaler" not in refused.value.message
