"""The settings of the planner stage (docs/planner.md): a local instruction model that rewrites a
request's prompt for its engine and writes the answer's text before the engine runs. A base of
:class:`~plantain.settings.model.Settings`, so they are ordinary ``PLANTAIN_*`` settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings


class PlannerSettings(BaseSettings):
    planner: Literal["off", "on"] = Field(
        default="off",
        description="The planner stage (docs/planner.md): on, a local instruction model rewrites "
        "each request's prompt for its engine and writes the answer's text part before the engine "
        "runs; a request may still turn it off. off: prompts go to the engine as sent.",
    )
    planner_model: str = Field(
        default="Qwen/Qwen3-4B-Instruct-2507",
        description="The planner's model: a causal language model, or a vision-language model "
        "(e.g. Qwen/Qwen3-VL-4B-Instruct, Apache-2.0) that also reads the request's input images; "
        "a hub id in the hub cache (never downloaded by the server), a local directory, or tiny / "
        "tiny-vl (random-weight text and vision checkpoints built on first use, for tests and "
        "demos).",
    )
    planner_device: str = Field(
        default="auto", description="Torch device of the planner model (auto: as device picks)."
    )
    planner_max_tokens: int = Field(
        default=200, ge=8, le=2048, description="Most tokens the planner writes per rewrite and per answer."
    )

    def plans(self, asked: bool | None) -> bool:
        """Whether the planner stage runs for a request that asked ``asked`` (its
        ``ImageRequest.plan``): its own choice when it made one, else this setting. (Asking for
        it with the stage off is refused at the door.)"""
        return asked if asked is not None else self.planner == "on"
