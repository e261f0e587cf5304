"""Batches: compatible queued tasks that share one engine run.

The oldest queued task leads a batch and fixes its key (``EngineJob.batch_key()``: size, steps,
guidance, input images); later queued tasks of the same engine with the same key join it in queue
order while the batch has room (``batch_max_images``, counted in images since one task may ask for
several). Incompatible tasks keep their place and lead a later batch. A batch waits for joiners
until ``batch_window_ms`` after its leader was *submitted*, so a task that already waited in the
queue is never held back further, and a lone task waits at most the window.

Each member keeps its own stop flag, provenance stamper and previews; the engine run stops only
when every member still in it is stopped, and a member stopped earlier ends at the next step.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from PIL import Image

from plantain.engines.base import Engine, EngineJob, Previews
from plantain.provenance.policy import Stamper
from plantain.settings import Settings
from plantain.types import GeneratedImage, GroundingResult, ImageRequest, PlanResult, Task, TaskOutput

SCAN_LIMIT = 64  # queued tasks looked at per scan for joiners (each costs a prepare)


@dataclass(frozen=True)
class BatchLimits:
    max_images: int  # 1: batching off
    window_seconds: float  # how long after its leader's submission a batch waits for joiners

    @classmethod
    def from_settings(cls, settings: Settings) -> BatchLimits:
        return cls(max_images=settings.batch_max_images, window_seconds=settings.batch_window_ms / 1000)

    def batches(self, engine: Engine) -> bool:
        return self.max_images > 1 and engine.capabilities.batchable


@dataclass
class Member:
    """One task in a batch, prepared and claimed."""

    task: Task
    request: ImageRequest
    job: EngineJob
    stop: threading.Event
    stamper: Stamper
    previews: Previews | None = None
    ended: bool = False  # stopped during the run: its images are discarded
    plan: PlanResult | None = None  # what the planner stage made of it (None: it did not run)
    grounding: GroundingResult | None = None  # what search grounding found (None: not grounded)

    @property
    def images(self) -> int:
        return len(self.job.seeds)


@dataclass
class Batch:
    engine: Engine
    members: list[Member]  # queue order; the first is the leader

    @property
    def images(self) -> int:
        return sum(member.images for member in self.members)

    def live(self) -> list[Member]:
        return [member for member in self.members if not member.ended]

    def all_stopped(self) -> bool:
        """The engine's stop flag: a batch run stops only when no member wants its images."""
        return all(member.stop.is_set() for member in self.live())

    def takes(self, job: EngineJob, max_images: int) -> bool:
        """Whether ``job`` may join: same key, and its images fit."""
        leader = self.members[0].job
        return job.batch_key() == leader.batch_key() and self.images + len(job.seeds) <= max_images

    def has_previews(self) -> bool:
        return any(member.previews is not None for member in self.members)

    def run_order(self) -> list[Member]:
        """Members as the engine runs them: the one that asked for previews first, since an engine
        previews the first image of a run (a batch holds at most one such member)."""
        return sorted(self.members, key=lambda member: member.previews is None)

    def share(self, member: Member, seconds: float) -> float:
        """``member``'s part of the run's device time: split by image count."""
        return seconds * member.images / self.images


@dataclass(frozen=True)
class Finished:
    """One member's images from a finished run, waiting for post-processing."""

    member: Member
    images: list[Image.Image]
    seconds: float  # the run's engine time (what the task waited for the engine)
    device_seconds: float  # its share of it (what it is billed)
    batch_tasks: int
    batch_images: int


@dataclass(frozen=True)
class Processed:
    """One member's stored outputs, the time post-processing them took, and the encoded images
    themselves (for a same-process caller waiting on them)."""

    outputs: tuple[TaskOutput, ...]
    seconds: float
    images: tuple[GeneratedImage, ...] = ()
