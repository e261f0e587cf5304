"""The invisible watermark (plantain.provenance.watermark): its payload survives re-saving,
resizing and cropping, unmarked and blank images read as unmarked, and the embedding is
invisible-watermark's own dwtDctSvd method (its decoder reads ours and ours reads its)."""

from __future__ import annotations

import io
from collections.abc import Callable
from importlib import resources

import cv2
import numpy as np
import pytest
from imwatermark import WatermarkDecoder, WatermarkEncoder
from PIL import Image

from plantain.provenance import dwtdctsvd, watermark
from plantain.provenance.watermark import Mark

MARK = Mark(server=0xBEEF, serial=0x8BADF00D)


def photo(name: str, size: tuple[int, int] | None = None) -> Image.Image:
    """A photograph shipped inside scikit-image, centre-cropped to ``size``'s aspect and
    scaled to it."""
    path = resources.files("skimage") / "data" / name
    with path.open("rb") as handle, Image.open(handle) as image:
        rgb = image.convert("RGB")
    if size is None:
        return rgb
    scale = min(rgb.width / size[0], rgb.height / size[1])
    crop_w, crop_h = size[0] * scale, size[1] * scale
    left, top = max(0.0, (rgb.width - crop_w) / 2), max(0.0, (rgb.height - crop_h) / 2)
    return rgb.resize(size, Image.Resampling.LANCZOS, box=(left, top, left + crop_w, top + crop_h))


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
        return decoded.convert("RGB")


def webp(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", quality=quality)
    with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
        return decoded.convert("RGB")


def scaled(image: Image.Image, factor: float) -> Image.Image:
    size = (round(image.width * factor), round(image.height * factor))
    return image.resize(size, Image.Resampling.LANCZOS if factor < 1 else Image.Resampling.BICUBIC)


def psnr(first: Image.Image, second: Image.Image) -> float:
    change = np.asarray(first, dtype=np.float64) - np.asarray(second, dtype=np.float64)
    return float(10 * np.log10(255**2 / np.mean(change**2)))


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return photo("astronaut.png", (1024, 1024))


@pytest.fixture(scope="module")
def marked(astronaut: Image.Image) -> Image.Image:
    return watermark.embed(astronaut, MARK)


ATTACKS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "as is": lambda image: image,
    "JPEG q70": lambda image: jpeg(image, 70),
    "WebP q80": lambda image: webp(image, 80),
    "resize 50 %": lambda image: scaled(image, 0.5),
    "JPEG q70, then resize 50 %": lambda image: scaled(jpeg(image, 70), 0.5),
    "resize 50 %, then JPEG q70": lambda image: jpeg(scaled(image, 0.5), 70),
    "resize 200 %": lambda image: scaled(image, 2.0),
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_payload_survives(marked: Image.Image, attack: str) -> None:
    found = watermark.detect(ATTACKS[attack](marked))
    assert (found.present, found.mark) == (True, MARK)
    assert found.confidence > 0.5


def test_rescaled_images_are_read_at_the_generation_size(marked: Image.Image) -> None:
    half = scaled(marked, 0.5)
    assert watermark.detect(half).size_tried == (1024, 1024)
    # Without the generation size to rescale to, a 50 % downscale cannot be read.
    assert watermark.detect(half, sizes=[]).mark is None


def test_payload_survives_a_crop_and_finds_where_it_was_cut(marked: Image.Image) -> None:
    left, top = 37, 61  # 10 % of each side cut away
    cropped = jpeg(marked.crop((left, top, left + 922, top + 922)), 85)
    found = watermark.detect(cropped)
    assert (found.present, found.mark, found.crop_offset) == (True, MARK, (left, top))


@pytest.mark.parametrize("size", [(512, 512), (1344, 768), (832, 1248), (128, 128)])
def test_every_generation_size_carries_a_mark(size: tuple[int, int]) -> None:
    marked = watermark.embed(photo("coffee.png", size), MARK)
    assert watermark.detect(jpeg(marked, 85)).mark == MARK


@pytest.mark.parametrize(
    "name", ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png"]
)
def test_unmarked_photos_read_as_unmarked(name: str) -> None:
    for image in (photo(name), photo(name, (1024, 1024))):
        found = watermark.detect(image)
        assert (found.present, found.mark) == (False, None)
        assert found.confidence < 0.5


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (128, 128, 128), (20, 90, 200)])
def test_flat_images_read_as_unmarked(colour: tuple[int, int, int]) -> None:
    for size in [(1024, 1024), (512, 512)]:
        found = watermark.detect(Image.new("RGB", size, colour))
        assert (found.present, found.mark, found.confidence) == (False, None, 0.0)


def test_constant_bits_are_not_a_valid_payload() -> None:
    for bit in (False, True):
        assert watermark.read_codeword(np.full(watermark.PAYLOAD_BITS, bit)) is None
    assert watermark.read_codeword(watermark.codeword(MARK)) == MARK


def test_marking_again_replaces_the_mark(astronaut: Image.Image) -> None:
    other = Mark(server=1, serial=2)
    twice = watermark.embed(watermark.embed(astronaut, MARK), other)
    assert watermark.detect(jpeg(twice, 85)).mark == other


def test_marked_image_differs_little(astronaut: Image.Image, marked: Image.Image) -> None:
    assert psnr(astronaut, marked) > 38
    change = np.abs(np.asarray(marked, dtype=int) - np.asarray(astronaut, dtype=int))
    assert change.max() <= 16
    assert change[..., 0].max() == 0  # only U moves: red stays


def test_alpha_is_kept() -> None:
    rgb = photo("chelsea.png", (512, 512))
    alpha = Image.linear_gradient("L").resize((512, 512))
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    marked = watermark.embed(rgba, MARK)
    assert marked.mode == "RGBA"
    assert np.array_equal(np.asarray(marked.getchannel("A")), np.asarray(alpha))
    assert watermark.detect(marked).mark == MARK


@pytest.mark.parametrize("size", [(64, 64), (100, 100), (2048, 32)])
def test_images_too_small_pass_through_unchanged(size: tuple[int, int]) -> None:
    image = Image.new("RGB", size, (200, 30, 30))
    assert not watermark.can_carry(*size)
    assert watermark.embed(image, MARK) is image
    assert watermark.detect(image).present is False


def test_sizes_the_server_makes_can_carry_a_mark() -> None:
    sizes = watermark.generation_sizes()
    assert {(1024, 1024), (512, 512), (1344, 768), (4096, 4096), (192, 1536)} <= set(sizes)
    assert all(w % 16 == 0 and h % 16 == 0 and watermark.can_carry(w, h) for w, h in sizes)


def test_mark_fields_are_checked() -> None:
    with pytest.raises(ValueError, match="server"):
        Mark(server=1 << 16, serial=0)
    with pytest.raises(ValueError, match="serial"):
        Mark(server=0, serial=-1)


# --- the method is invisible-watermark's dwtDctSvd ---

LIBRARY_BITS = [int(bit) for bit in np.random.default_rng(7).integers(0, 2, 48)]


def test_library_decoder_reads_our_embedding(astronaut: Image.Image) -> None:
    rgb = dwtdctsvd.embed_library(np.asarray(astronaut), LIBRARY_BITS)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    read = WatermarkDecoder("bits", len(LIBRARY_BITS)).decode(bgr, "dwtDctSvd")
    assert [int(bit) for bit in read] == LIBRARY_BITS


def test_our_decoder_reads_the_library_embedding(astronaut: Image.Image) -> None:
    encoder = WatermarkEncoder()
    encoder.set_watermark("bits", LIBRARY_BITS)
    bgr = encoder.encode(np.ascontiguousarray(np.asarray(astronaut)[..., ::-1]), "dwtDctSvd")
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    assert dwtdctsvd.decode_library(rgb, len(LIBRARY_BITS)) == LIBRARY_BITS


def test_transform_matches_opencv_and_lapack(astronaut: Image.Image) -> None:
    rgb = np.asarray(astronaut)
    opencv_u = cv2.cvtColor(np.ascontiguousarray(rgb[..., ::-1]), cv2.COLOR_BGR2YUV)[..., 1]
    assert np.abs(dwtdctsvd.u_plane(rgb) - opencv_u).max() <= 1  # OpenCV rounds to uint8
    blocks = dwtdctsvd.blocks_of(opencv_u.astype(np.float32), 8, 8)
    expected = [
        np.linalg.svd(cv2.dct(block.astype(np.float64)), compute_uv=False)[0]
        for block in blocks.transpose(2, 0, 1)
    ]
    assert np.allclose(dwtdctsvd.top_singular_value(blocks), expected, rtol=1e-5)
