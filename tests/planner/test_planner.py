"""The planner stage on its own: the tiny random-weight Qwen3 checkpoint built, found and loaded by
the real path (directory, hub cache), greedy generation, the system prompts chosen per family and
task, and what becomes of the model's rewrite."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from tests.planner.fakes import Scripted

from plantain.engines.checkpoints import install_in_hub_cache
from plantain.errors import ConfigurationError, MissingWeightsError
from plantain.planner import prompts
from plantain.planner.model import Generated, PlannerModel
from plantain.planner.stage import Planner
from plantain.planner.tiny import CHECKPOINT_DIR_NAME, build_checkpoint
from plantain.settings import Settings
from plantain.testing import make_input
from plantain.types import ImageRequest

HUB_ID = "plantain-test/tiny-planner"


@pytest.fixture(scope="module")
def planner_settings(tmp_path_factory: pytest.TempPathFactory, hub_cache: Path) -> Settings:
    """Settings whose ``tiny`` planner checkpoint is built once for the module, and installed in
    the hub cache under :data:`HUB_ID` as a download would leave it."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("planner"),
        hub_cache=hub_cache,
        planner_model="tiny",
        planner_max_tokens=8,
    )
    PlannerModel(settings).load()
    install_in_hub_cache(settings.models_dir / CHECKPOINT_DIR_NAME, HUB_ID, hub_cache)
    return settings


@pytest.fixture(scope="module")
def model(planner_settings: Settings) -> PlannerModel:
    return PlannerModel(planner_settings)


class Recording(PlannerModel):
    """The real model, with every (system, user) it is asked kept."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.calls: list[tuple[str, str]] = []

    def generate(
        self,
        system: str,
        user: str,
        *,
        images: Sequence[Any] = (),
        max_new_tokens: int,
        min_new_tokens: int = 0,
    ) -> Generated:
        self.calls.append((system, user))
        return super().generate(
            system, user, images=images, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens
        )


def writes(settings: Settings, rewrite: str) -> Scripted:
    """A model that writes ``rewrite`` as the rewrite and a fixed answer; loads nothing."""
    return Scripted(
        settings, lambda system, _: "Here is your fox." if system == prompts.ANSWER_SYSTEM else rewrite
    )


def test_the_tiny_checkpoint_is_built_on_first_use_and_loads_by_the_real_path(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, planner_model="tiny")
    model = PlannerModel(settings)
    assert model.present() and not model.loaded
    model.load()
    model.load()  # idempotent
    directory = settings.models_dir / CHECKPOINT_DIR_NAME
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in directory.iterdir()}
    loaded: Any = model._loaded
    assert model.loaded and not loaded.model.training
    assert type(loaded.model).__name__ == "Qwen3ForCausalLM" and loaded.tokenizer.chat_template
    assert model.describe() == {
        "model": "tiny",
        "device": "auto",
        "max_tokens": 200,
        "present": True,
        "loaded": True,
    }


def test_generation_is_greedy_and_counts_tokens(model: PlannerModel) -> None:
    first = model.generate("Rewrite.", "a red fox in the snow", max_new_tokens=6)
    assert first == model.generate("Rewrite.", "a red fox in the snow", max_new_tokens=6)
    assert 1 <= first.output_tokens <= 6
    loaded: Any = model._loaded
    chat = [{"role": "system", "content": "Rewrite."}, {"role": "user", "content": "a red fox in the snow"}]
    expected = loaded.tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_dict=True)
    assert first.input_tokens == len(expected["input_ids"])
    forced = model.generate("Rewrite.", "a red fox", max_new_tokens=12, min_new_tokens=12)
    assert forced.output_tokens == 12


def test_one_generation_at_a_time_gives_each_thread_its_own_answer(model: PlannerModel) -> None:
    users = [f"prompt {index}" for index in range(4)]
    expected = [model.generate("s", user, max_new_tokens=4) for user in users]
    got: dict[int, Generated] = {}

    def ask(index: int) -> None:
        got[index] = model.generate("s", users[index], max_new_tokens=4)

    threads = [threading.Thread(target=ask, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [got[index] for index in range(4)] == expected


def test_a_hub_id_is_read_from_the_hub_cache(planner_settings: Settings) -> None:
    model = PlannerModel(planner_settings.model_copy(update={"planner_model": HUB_ID}))
    assert model.checkpoint.directory() is None and model.present()
    assert model.generate("s", "a fox", max_new_tokens=4).output_tokens >= 1


def test_a_missing_hub_id_is_a_clear_error_naming_the_setting(planner_settings: Settings) -> None:
    settings = planner_settings.model_copy(update={"planner_model": "nobody/no-such-planner"})
    planner = Planner(settings)
    assert not planner.available
    with pytest.raises(MissingWeightsError) as caught:
        planner.model.load()
    message = str(caught.value)
    assert "planner_model" in message and "nobody/no-such-planner" in message
    assert "hf download" in message and "planner=off" in message and not planner.model.loaded


def test_a_directory_without_a_checkpoint_is_a_clear_error(
    planner_settings: Settings, tmp_path: Path
) -> None:
    model = PlannerModel(planner_settings.model_copy(update={"planner_model": str(tmp_path)}))
    assert model.checkpoint.directory() == tmp_path and not model.present()
    with pytest.raises(MissingWeightsError, match=r"setting planner_model: no checkpoint in .*config\.json"):
        model.load()


@pytest.mark.parametrize("family", ["flux2-klein", "qwen-image", "z-image", "flux1", "remote"])
@pytest.mark.parametrize("edit", [False, True])
def test_the_system_prompt_follows_the_family_and_the_task(
    planner_settings: Settings, family: str, edit: bool
) -> None:
    model = Recording(planner_settings)
    images = (make_input(),) if edit else ()
    result = Planner(planner_settings, model).plan(ImageRequest(prompt="a red fox", images=images), family)
    (rewrite_system, rewrite_user), (answer_system, answer_user) = model.calls
    assert (prompts.EDIT_FRAME if edit else prompts.GENERATE_FRAME) in rewrite_system
    assert prompts.FAMILY_STYLE.get(family, prompts.DEFAULT_STYLE) in rewrite_system
    assert rewrite_system.endswith(prompts.ONLY_THE_PROMPT)
    assert rewrite_user == ("Edit request (1 input image): a red fox" if edit else "a red fox")
    assert answer_system == prompts.ANSWER_SYSTEM
    assert answer_user == prompts.answer_user("a red fox", result.revised_prompt)


def test_a_plan_reports_both_prompts_the_text_and_the_cost(planner_settings: Settings) -> None:
    planner = Planner(planner_settings)
    request = ImageRequest(prompt='a lighthouse at dusk, the sign says "OPEN"')
    result = planner.plan(request, "qwen-image")
    assert result == planner.plan(request, "qwen-image").model_copy(update={"seconds": result.seconds})
    assert result.model == "tiny" and result.original_prompt == request.prompt
    assert result.revised_prompt.strip() and result.seconds > 0
    assert 2 <= result.output_tokens <= 2 * planner_settings.planner_max_tokens
    assert result.input_tokens > 2 * len(prompts.GENERATE_FRAME.encode())  # byte tokens, two turns


@pytest.mark.parametrize(
    "rewrite",
    ["", "   \n\t", "<|im_end|>", "<think>\n\n</think>\n\n", '""', "<|endoftext|> <|im_start|>"],
)
def test_an_unusable_rewrite_leaves_the_original_prompt(planner_settings: Settings, rewrite: str) -> None:
    result = Planner(planner_settings, writes(planner_settings, rewrite)).plan(
        ImageRequest(prompt="a fox"), "flux1"
    )
    assert result.revised_prompt == "a fox" and result.text == "Here is your fox."
    assert (result.input_tokens, result.output_tokens) == (20, 6)


@pytest.mark.parametrize(
    ("rewrite", "revised"),
    [
        ("  A red fox, snow.\n", "A red fox, snow."),
        ('"A red fox in the snow."', "A red fox in the snow."),
        ("<think>\n\n</think>\n\nA red fox.", "A red fox."),
        ('A sign that says "OPEN"', 'A sign that says "OPEN"'),
        ('"OPEN" and "CLOSED" signs', '"OPEN" and "CLOSED" signs'),
    ],
)
def test_the_rewrite_is_cleaned(planner_settings: Settings, rewrite: str, revised: str) -> None:
    result = Planner(planner_settings, writes(planner_settings, rewrite)).plan(
        ImageRequest(prompt="a fox"), "flux1"
    )
    assert result.revised_prompt == revised


def test_the_rewrite_is_cut_to_the_longest_prompt_allowed(planner_settings: Settings) -> None:
    settings = planner_settings.model_copy(update={"max_prompt_chars": 12})
    result = Planner(settings, writes(settings, "a red fox in deep fresh snow")).plan(
        ImageRequest(prompt="fox"), ""
    )
    assert result.revised_prompt == "a red fox in"


@pytest.mark.parametrize(
    ("setting", "asked", "runs"),
    [("off", None, False), ("on", None, True), ("on", False, False), ("off", True, True)],
)
def test_a_request_may_turn_the_stage_on_or_off(
    tmp_path: Path, setting: str, asked: bool | None, runs: bool
) -> None:
    planner = Planner(Settings(data_dir=tmp_path, planner=setting))
    assert planner.enabled_for(ImageRequest(prompt="a fox", plan=asked)) is runs


def test_build_checkpoint_is_reproducible(tmp_path: Path) -> None:
    build_checkpoint(tmp_path / "a")
    build_checkpoint(tmp_path / "b")
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (
        tmp_path / "b" / "model.safetensors"
    ).read_bytes()


def test_a_model_without_a_chat_template_is_refused(planner_settings: Settings, tmp_path: Path) -> None:
    checkpoint = tmp_path / "no-template"
    shutil.copytree(planner_settings.models_dir / CHECKPOINT_DIR_NAME, checkpoint)
    (checkpoint / "chat_template.jinja").unlink()
    model = PlannerModel(planner_settings.model_copy(update={"planner_model": str(checkpoint)}))
    with pytest.raises(ConfigurationError, match=r"planner_model: .* has no chat template"):
        model.load()
