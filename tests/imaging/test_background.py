"""Transparent backgrounds (background.py) on synthetic pictures: what is keyed out and what is kept."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from plantain.imaging.background import STEER_SUFFIX, apply_background, remove_background, steered
from plantain.types import ImageRequest

WHITE = (255, 255, 255)
RED = (200, 30, 40)


def picture(
    size: tuple[int, int] = (256, 192),
    background: tuple[int, int, int] = WHITE,
    shapes: tuple[tuple[tuple[float, float, float, float], tuple[int, int, int]], ...] = (
        ((0.3, 0.25, 0.7, 0.75), RED),
    ),
) -> Image.Image:
    """Ellipses (boxes as fractions of the size) on a plain background, drawn at 4x and reduced, so
    their edges are anti-aliased as a model's are."""
    width, height = size
    big = Image.new("RGB", (width * 4, height * 4), background)
    draw = ImageDraw.Draw(big)
    for (left, top, right, bottom), colour in shapes:
        draw.ellipse(
            (left * width * 4, top * height * 4, right * width * 4, bottom * height * 4), fill=colour
        )
    return big.resize(size, Image.Resampling.LANCZOS)


def alpha_at(image: Image.Image, *points: tuple[int, int]) -> list[int]:
    return [int(image.getpixel(point)[3]) for point in points]  # type: ignore[index]


def test_a_subject_on_white_keeps_its_pixels_and_loses_its_background() -> None:
    out = remove_background(picture())
    assert out.mode == "RGBA"
    corners = [(0, 0), (255, 0), (0, 191), (255, 191)]
    assert alpha_at(out, *corners) == [0, 0, 0, 0]
    assert out.getpixel((128, 96)) == (*RED, 255)  # the subject, untouched
    alphas = np.asarray(out)[..., 3]
    edge = alphas[(alphas > 0) & (alphas < 255)]
    assert edge.size > 0  # a soft edge where the disc was anti-aliased, not a jagged cut


def test_the_edge_loses_the_background_colour_so_no_white_fringe_remains() -> None:
    out = np.asarray(remove_background(picture())).astype(int)
    edge = (out[..., 3] > 40) & (out[..., 3] < 215)
    # Partly transparent edge pixels carry the subject's colour, not a mix with white.
    assert np.abs(out[edge][:, :3] - np.array(RED)).max() <= 24


@pytest.mark.parametrize("background", [(30, 90, 200), (20, 20, 20), (240, 236, 220)])
def test_any_plain_background_colour_is_keyed_out(background: tuple[int, int, int]) -> None:
    out = remove_background(picture(background=background, shapes=(((0.3, 0.25, 0.7, 0.75), (240, 200, 0)),)))
    assert alpha_at(out, (0, 0), (255, 191), (128, 2)) == [0, 0, 0]
    assert alpha_at(out, (128, 96)) == [255]


def test_an_enclosed_area_of_the_background_colour_is_kept() -> None:
    # A ring: its hole is white too, but not connected to the border, so it is part of the subject.
    ring = picture(shapes=(((0.2, 0.1, 0.8, 0.9), RED), ((0.4, 0.37, 0.6, 0.63), WHITE)))
    out = remove_background(ring)
    assert alpha_at(out, (128, 96)) == [255]  # the hole
    assert alpha_at(out, (2, 2)) == [0]


def test_a_subject_cut_by_the_border_leaves_the_rest_of_the_border_transparent() -> None:
    cut = picture(shapes=(((0.55, 0.2, 1.3, 0.8), RED),))  # runs off the right edge
    out = remove_background(cut)
    assert alpha_at(out, (255, 96)) == [255]  # the subject where it meets the border
    assert alpha_at(out, (0, 96), (255, 2), (60, 100)) == [0, 0, 0]


def test_a_busy_picture_is_left_opaque_rather_than_guessed() -> None:
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8))
    out = remove_background(noise)
    assert out.mode == "RGB"
    assert out.tobytes() == noise.tobytes()


@pytest.mark.parametrize(("grain", "keyed"), [(2.0, True), (15.0, False)])
def test_a_little_grain_is_still_plain_but_a_texture_is_not(grain: float, keyed: bool) -> None:
    grey = picture(background=(128, 128, 128))
    pixels = np.asarray(grey).astype(float) + np.random.default_rng(2).normal(0, grain, (192, 256, 3))
    out = remove_background(Image.fromarray(pixels.clip(0, 255).astype(np.uint8)))
    assert out.mode == ("RGBA" if keyed else "RGB")


def test_keying_is_deterministic() -> None:
    first, second = remove_background(picture()), remove_background(picture())
    assert first.tobytes() == second.tobytes()


def test_a_large_image_is_keyed_too() -> None:
    out = remove_background(picture(size=(1024, 1024)))  # the flood fill runs on a coarser grid
    assert alpha_at(out, (0, 0), (1023, 1023), (100, 512)) == [0, 0, 0]
    assert alpha_at(out, (512, 512), (320, 512)) == [255, 255]


def test_opaque_and_auto_backgrounds() -> None:
    rgba = Image.new("RGBA", (8, 8), (10, 20, 30, 128))
    assert apply_background(rgba, "opaque").mode == "RGB"
    assert apply_background(rgba, "auto") is rgba


def test_only_a_transparent_request_has_its_prompt_steered_and_only_once() -> None:
    plain = ImageRequest.create(prompt="a red apple")
    assert steered(plain) is plain
    transparent = ImageRequest.create(prompt="a red apple", background="transparent")
    assert steered(transparent).prompt == "a red apple" + STEER_SUFFIX
    assert steered(steered(transparent)).prompt == "a red apple" + STEER_SUFFIX


def _half_transparent() -> Image.Image:
    """Red on the left, fully transparent (its colour channels black) on the right."""
    image = Image.new("RGBA", (8, 4), (255, 0, 0, 255))
    image.paste((0, 0, 0, 0), (4, 0, 8, 4))
    return image


def test_opaque_lays_transparency_an_engine_made_onto_white() -> None:
    flat = apply_background(_half_transparent(), "opaque")
    assert (
        flat.mode == "RGB"
        and flat.getpixel((1, 1)) == (255, 0, 0)
        and flat.getpixel((6, 1)) == (255, 255, 255)
    )


def test_a_jpeg_answer_of_a_transparent_image_is_flattened_onto_white() -> None:
    import io

    from plantain.generation import encode_output

    request = ImageRequest.create(prompt="x", output_format="jpeg")
    made = encode_output(_half_transparent(), 1, request)
    decoded = Image.open(io.BytesIO(made.data))
    assert decoded.mode == "RGB" and min(decoded.getpixel((7, 3))) > 240  # white, not black
