"""Encoding outputs (images.encode_image), the CLI's format choice (outputs.py) and how a request's
sampling knobs reach the engine (generation.for_engine)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from plantain.cli.outputs import output_paths, pick_format
from plantain.dialects.openai import convert
from plantain.dialects.openai.protocol import ImageParams
from plantain.engines.registry import EngineRegistry
from plantain.errors import InvalidRequestError
from plantain.generation import for_engine, prepare
from plantain.imaging import png
from plantain.imaging.codecs import encode_image, has_alpha, media_type
from plantain.types import ImageRequest, OutputFormat

PILLOW_NAMES = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}


def noise(mode: str = "RGB", size: tuple[int, int] = (96, 64)) -> Image.Image:
    bands = len(mode)
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], bands), dtype=np.uint8)
    return Image.fromarray(pixels, mode)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "avif"])
def test_each_format_encodes_to_its_own_bytes(fmt: OutputFormat) -> None:
    data = encode_image(noise(), fmt)
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size) == (PILLOW_NAMES[fmt], (96, 64))
    assert media_type(fmt) == f"image/{fmt}"
    assert encode_image(noise(), fmt) == data  # same pixels, same bytes


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_quality_changes_the_size_of_lossy_formats(fmt: OutputFormat) -> None:
    assert len(encode_image(noise(), fmt, 10)) < len(encode_image(noise(), fmt, 95))


def test_png_is_lossless_whatever_the_quality() -> None:
    assert encode_image(noise(), "png", 10) == encode_image(noise(), "png", 95)


@pytest.mark.parametrize("fmt", ["png", "webp", "avif"])
def test_an_alpha_channel_is_kept_where_the_format_has_one(fmt: OutputFormat) -> None:
    rgba = noise("RGBA")
    data = encode_image(rgba, fmt)
    assert has_alpha(data)
    assert not has_alpha(encode_image(rgba.convert("RGB"), fmt))
    with Image.open(io.BytesIO(data)) as image:
        alpha = np.asarray(image.convert("RGBA"))[..., 3]
    assert np.abs(alpha.astype(int) - np.asarray(rgba)[..., 3]).max() <= (0 if fmt == "png" else 64)


@pytest.mark.parametrize(
    ("requested", "output", "chosen"),
    [(None, "a.avif", "avif"), ("AVIF", None, "avif"), ("avif", "a.AVIF", "avif"), (None, "a.jpg", "jpeg")],
)
def test_the_cli_picks_avif_from_the_flag_or_the_suffix(
    requested: str | None, output: str | None, chosen: str
) -> None:
    assert pick_format(requested, Path(output) if output else None) == chosen


def test_avif_files_are_named_dot_avif(tmp_path: Path) -> None:
    assert output_paths(tmp_path, [7, 8], "avif") == [
        tmp_path / "plantain-7.avif",
        tmp_path / "plantain-8.avif",
    ]
    with pytest.raises(InvalidRequestError, match=r"use a \.avif name"):
        pick_format("avif", Path("a.png"))


def test_transparency_in_jpeg_is_refused_naming_the_background() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        ImageRequest.create(prompt="p", background="transparent", output_format="jpg")
    assert caught.value.field == "background"
    assert caught.value.message.startswith("background: 'transparent' needs an output format with an alpha")


@pytest.mark.parametrize(
    ("quality", "steps"),
    [(None, 4), ("auto", 4), ("low", 2), ("medium", 4), ("standard", 4), ("high", 6), ("hd", 6), ("max", 8)],
)
def test_openai_quality_is_a_multiple_of_the_presets_steps(
    registry: EngineRegistry, quality: str | None, steps: int
) -> None:
    request = convert.to_image_request(ImageParams(prompt="p", quality=quality), "tiny")  # type: ignore[arg-type]
    assert prepare(request, registry.get("tiny")).steps == steps  # tiny's preset: 4


def test_explicit_steps_win_over_a_steps_scale(registry: EngineRegistry) -> None:
    request = ImageRequest.create(prompt="p", options={"steps": 3, "steps_scale": 2.0})
    assert for_engine(request, registry.get("tiny")).options.steps == 3
    tiny_scale = ImageRequest.create(prompt="p", options={"steps_scale": 0.1})
    assert for_engine(tiny_scale, registry.get("tiny")).options.steps == 1  # never below one step


def test_openai_parameters_nothing_uses_are_listed_as_ignored() -> None:
    params = ImageParams(prompt="p", style="vivid", input_fidelity="high", quality="low", user="u")
    assert convert.to_image_request(params, "tiny").ignored == ("style", "input_fidelity")


# --- PNG: plantain.imaging.png writes the engines' 8-bit modes; Pillow the rest ----------------------


def photo_like(mode: str, size: tuple[int, int] = (160, 96)) -> Image.Image:
    """Gradients with a little grain: compresses as a photograph does, unlike noise."""
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    grain = np.random.default_rng(1).integers(0, 6, (size[1], size[0]))
    colour, alpha = [(x + grain) % 256, (y * 2 + grain) % 256, (x + y) % 256], [255 - y % 256]
    planes = (colour if mode.startswith("RGB") else colour[:1]) + (alpha if mode.endswith("A") else [])
    return of_mode(np.stack(planes, axis=-1).astype(np.uint8), mode)


def noisy(mode: str, size: tuple[int, int]) -> Image.Image:
    return of_mode(np.random.default_rng(0).integers(0, 256, (size[1], size[0], len(mode)), np.uint8), mode)


def of_mode(pixels: np.ndarray, mode: str) -> Image.Image:
    """``pixels`` (height, width, bands) as an image of ``mode`` (Pillow infers it from the bands)."""
    image = Image.fromarray(pixels[..., 0] if mode == "L" else pixels)
    assert image.mode == mode
    return image


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
@pytest.mark.parametrize("size", [(160, 96), (1, 1), (1, 7), (7, 1)])
def test_png_outputs_give_back_every_pixel(mode: str, size: tuple[int, int]) -> None:
    for source in (photo_like(mode, size), noisy(mode, size)):
        data = encode_image(source, "png")
        with Image.open(io.BytesIO(data)) as decoded:
            assert (decoded.format, decoded.mode, decoded.size) == ("PNG", mode, size)
            assert np.array_equal(np.asarray(decoded), np.asarray(source))
        assert encode_image(source.copy(), "png") == data  # same pixels, same bytes


def test_png_outputs_are_compressed() -> None:
    source = photo_like("RGB", (512, 512))
    assert len(encode_image(source, "png")) < len(source.tobytes()) / 2


@pytest.mark.parametrize("mode", ["P", "1", "I;16"])
def test_other_png_modes_are_written_by_pillow(mode: str) -> None:
    source = photo_like("L").convert(mode) if mode != "I;16" else photo_like("L").convert("I").convert(mode)
    with Image.open(io.BytesIO(encode_image(source, "png"))) as decoded:
        assert decoded.mode == mode
        assert np.array_equal(np.asarray(decoded), np.asarray(source))


def test_png_without_isal_gives_the_same_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    source = photo_like("RGBA")
    fast = encode_image(source, "png")
    monkeypatch.setattr(png, "_isal", None)  # what a platform without a python-isal wheel runs
    slow = encode_image(source, "png")
    assert fast != slow  # the fallback really ran: another deflate, other bytes
    for data in (fast, slow):
        with Image.open(io.BytesIO(data)) as decoded:
            assert np.array_equal(np.asarray(decoded), np.asarray(source))
