"""The planner with a vision-language model: the tiny random-weight Qwen3-VL checkpoint built,
loaded by the real path, shown the request's images (bounded in size) and counted; a text-only
checkpoint told apart and left to ignore images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from plantain.errors import MissingWeightsError
from plantain.planner import tiny_vl
from plantain.planner.model import MAX_IMAGE_SIDE, PlannerModel
from plantain.settings import Settings

SYSTEM = "Rewrite the request as one detailed image prompt."
USER = "keep the label on the jar"


@pytest.fixture(scope="module")
def vision_settings(tmp_path_factory: pytest.TempPathFactory, hub_cache: Path) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("vision"), hub_cache=hub_cache, planner_model="tiny-vl")


@pytest.fixture(scope="module")
def vision(vision_settings: Settings) -> PlannerModel:
    """The tiny-vl planner, built and loaded once for the module."""
    model = PlannerModel(vision_settings)
    model.load()
    return model


def pictures() -> list[Image.Image]:
    """A square and a wide input image, small enough to be a few vision tokens each."""
    return [Image.new("RGB", (64, 64), (200, 30, 30)), Image.new("RGB", (128, 64), (30, 30, 200))]


def test_tiny_vl_is_built_on_first_use_and_loads_by_the_real_path(
    vision: PlannerModel, vision_settings: Settings
) -> None:
    directory = vision_settings.models_dir / tiny_vl.CHECKPOINT_DIR_NAME
    assert vision.checkpoint.directory() == directory and vision.present()
    saved = {path.name for path in directory.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= saved
    loaded: Any = vision._loaded
    assert type(loaded.model).__name__ == "Qwen3VLForConditionalGeneration" and not loaded.model.training
    assert type(loaded.tokenizer).__name__ == "Qwen3VLProcessor" and loaded.tokenizer.chat_template
    assert vision.sees_images


def test_the_vision_token_ids_match_the_tokenizer(vision: PlannerModel) -> None:
    loaded: Any = vision._loaded
    config, tokenizer = loaded.model.config, loaded.tokenizer.tokenizer
    for name, token in [
        ("image_token_id", "<|image_pad|>"),
        ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"),
        ("vision_end_token_id", "<|vision_end|>"),
    ]:
        assert getattr(config, name) == tokenizer.convert_tokens_to_ids(token), name


def test_sees_images_is_read_from_the_config_before_loading(vision_settings: Settings) -> None:
    vision = PlannerModel(vision_settings)
    assert vision.sees_images and not vision.loaded
    text_only = PlannerModel(vision_settings.model_copy(update={"planner_model": "tiny"}))
    assert not text_only.sees_images and not text_only.loaded


def test_images_are_read_counted_and_decoded_greedily(vision: PlannerModel) -> None:
    without = vision.generate(SYSTEM, USER, max_new_tokens=6)
    with_images = vision.generate(SYSTEM, USER, images=pictures(), max_new_tokens=6)
    assert with_images == vision.generate(SYSTEM, USER, images=pictures(), max_new_tokens=6)
    # 64x64 is 2x2 vision tokens, 128x64 4x2, each image wrapped in a start and an end token.
    assert with_images.input_tokens == without.input_tokens + (4 + 2) + (8 + 2)
    assert 1 <= with_images.output_tokens <= 6
    assert with_images.text.strip() and with_images.text.isprintable()


def test_a_large_image_is_shrunk_before_the_model_sees_it(vision: PlannerModel) -> None:
    without = vision.generate(SYSTEM, USER, max_new_tokens=1)
    large = Image.new("RGB", (4000, 2000), (20, 160, 20))
    seen = vision.generate(SYSTEM, USER, images=[large], max_new_tokens=1)
    # Bounded to 768x384: 24x12 tokens of 32x32 px (unbounded, 4000x2000 would be about 7800).
    assert MAX_IMAGE_SIDE == 768
    assert seen.input_tokens - without.input_tokens == 24 * 12 + 2
    assert large.size == (4000, 2000)  # the caller's image (the engine's input) is untouched


def test_a_prompt_cannot_pose_as_an_image(vision: PlannerModel) -> None:
    """An image token typed into the prompt is read as text, not as a slot for image features."""
    typed = vision.generate(SYSTEM, "<|image_pad|> a jar", images=pictures()[:1], max_new_tokens=2)
    # A stray image token would not match the image features and fail; as text it is 13 bytes.
    assert (
        typed.input_tokens
        == vision.generate(SYSTEM, "<|image_pad!> a jar", max_new_tokens=1).input_tokens + 6
    )


def test_a_text_only_model_ignores_images(vision_settings: Settings) -> None:
    model = PlannerModel(vision_settings.model_copy(update={"planner_model": "tiny"}))
    plain = model.generate(SYSTEM, USER, max_new_tokens=4)
    assert model.generate(SYSTEM, USER, images=pictures(), max_new_tokens=4) == plain


def test_a_missing_vision_model_is_a_clear_error_naming_the_setting(vision_settings: Settings) -> None:
    model = PlannerModel(vision_settings.model_copy(update={"planner_model": "Qwen/Qwen3-VL-4B-Instruct"}))
    assert not model.present()  # the tests' hub cache holds only what they install
    with pytest.raises(MissingWeightsError) as caught:
        _ = model.sees_images  # read from the config, which is missing too
    with pytest.raises(MissingWeightsError):
        model.load()
    message = str(caught.value)
    assert "planner_model" in message and "Qwen/Qwen3-VL-4B-Instruct" in message and "hf download" in message


def test_an_adopted_processor_and_model_see_images(vision: PlannerModel, vision_settings: Settings) -> None:
    loaded: Any = vision._loaded
    adopted = PlannerModel(vision_settings.model_copy(update={"planner_model": "in-memory"}))
    adopted.adopt(loaded.tokenizer, loaded.model)
    assert adopted.sees_images
    expected = vision.generate(SYSTEM, USER, images=pictures(), max_new_tokens=3)
    assert adopted.generate(SYSTEM, USER, images=pictures(), max_new_tokens=3) == expected
