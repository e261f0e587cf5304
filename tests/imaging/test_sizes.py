import pytest

from plantain.errors import InvalidRequestError, UnsupportedSizeError
from plantain.imaging.sizes import GEMINI_1K, SizeLimits, nearest_aspect_ratio, resolve_size

ROOMY = SizeLimits(multiple=16, max_pixels=10**9, max_aspect=8.0)


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        ("1:1", (1024, 1024)),
        ("2:3", (832, 1248)),
        ("3:2", (1248, 832)),
        ("3:4", (864, 1184)),
        ("4:3", (1184, 864)),
        ("4:5", (896, 1152)),
        ("5:4", (1152, 896)),
        ("9:16", (768, 1344)),
        ("16:9", (1344, 768)),
        ("21:9", (1536, 672)),
    ],
)
def test_1k_tier_is_geminis_table(ratio: str, expected: tuple[int, int]) -> None:
    assert resolve_size(ratio, "1K", ROOMY, "e") == expected


def test_other_tiers_scale_the_table() -> None:
    assert resolve_size("21:9", "2K", ROOMY, "e") == (3072, 1344)
    assert resolve_size("16:9", "4K", ROOMY, "e") == (5376, 3072)
    assert resolve_size("2:3", "512", ROOMY, "e") == (416, 624)


def test_sides_round_to_the_engines_multiple() -> None:
    # 624 is not a multiple of 32: an engine that needs 32 gets the nearest one.
    width, height = resolve_size("2:3", "512", SizeLimits(multiple=32, max_pixels=10**9), "e")
    assert (width, height) == (416, 640)
    assert width % 32 == 0 and height % 32 == 0


def test_every_table_size_is_a_multiple_of_16_at_every_tier() -> None:
    for ratio in GEMINI_1K:
        for tier in ("512", "1K", "2K", "4K"):
            width, height = resolve_size(ratio, tier, ROOMY, "e")
            assert width % 16 == 0 and height % 16 == 0


def test_too_many_pixels_is_refused_naming_the_engine_limit() -> None:
    limits = SizeLimits(max_pixels=2048 * 2048)
    with pytest.raises(UnsupportedSizeError) as info:
        resolve_size("1:1", "4K", limits, "klein")
    message = str(info.value)
    assert "klein" in message and "4.2 megapixels" in message and "4096x4096" in message
    assert info.value.field == "size"


def test_extreme_ratio_is_refused_where_the_engine_cannot() -> None:
    with pytest.raises(UnsupportedSizeError, match="up to 4:1; aspect_ratio 1:8"):
        resolve_size("1:8", "1K", SizeLimits(max_aspect=4.0), "qwen")
    assert resolve_size("1:8", "1K", ROOMY, "e") == (384, 3072)


def test_unknown_ratio_and_tier_name_the_choices() -> None:
    with pytest.raises(InvalidRequestError, match="aspect_ratio '7:3' is not supported; use one of 1:1"):
        resolve_size("7:3", "1K", ROOMY, "e")
    with pytest.raises(InvalidRequestError, match="size '3K' is not supported; use one of 512, 1K, 2K, 4K"):
        resolve_size("1:1", "3K", ROOMY, "e")


def test_nearest_ratio_follows_the_input_shape() -> None:
    assert nearest_aspect_ratio(1920, 1080) == "16:9"
    assert nearest_aspect_ratio(600, 800) == "3:4"
    assert nearest_aspect_ratio(1000, 8000) == "1:8"
    assert nearest_aspect_ratio(1000, 8000, SizeLimits(max_aspect=4.0)) == "1:4"
