import pytest

from plantain.errors import InvalidRequestError
from plantain.types import ImageRequest


def test_defaults() -> None:
    request = ImageRequest.create(prompt="a cat")
    assert (request.size, request.num_images, request.output_format) == ("1K", 1, "png")
    assert request.aspect_ratio is None and request.seed is None


def test_lenient_spellings_are_normalised() -> None:
    request = ImageRequest.create(prompt="a cat", size="2k", output_format="JPG")
    assert (request.size, request.output_format) == ("2K", "jpeg")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"num_images": 11}, "num_images: 11 is not allowed; must be between 1 and 10"),
        ({"num_images": 0}, "num_images: 0 is not allowed; must be between 1 and 10"),
        ({"seed": -1}, "seed: -1 is not allowed; must be between 0 and"),
        ({"aspect_ratio": "7:3"}, "aspect_ratio: '7:3' is not allowed; must be one of 1:1, 2:3"),
        ({"size": "3K"}, "size: '3K' is not allowed; must be one of '512', '1K', '2K' or '4K'"),
        ({"output_quality": 101}, "output_quality: 101 is not allowed; must be between 0 and 100"),
        ({"output_format": "bmp"}, "output_format: 'bmp' is not allowed; must be one of 'png', 'jpeg'"),
        ({"prompt": ""}, "prompt: '' is not allowed; must not be empty"),
        ({"options": {"steps": 500}}, "options.steps: 500 is not allowed; must be between 1 and 200"),
        ({"colour": "red"}, "colour: 'red' is not allowed; is not a known field"),
    ],
)
def test_bad_values_name_field_value_and_limit(fields: dict[str, object], expected: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        ImageRequest.create(**{"prompt": "a cat", **fields})
    assert str(info.value).startswith(expected)
    assert info.value.status == 400


def test_missing_prompt() -> None:
    with pytest.raises(InvalidRequestError, match="prompt: missing"):
        ImageRequest.create()
