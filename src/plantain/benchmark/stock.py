"""The baseline: the same checkpoint run the documented diffusers way, no server around it.

What a user of stock diffusers writes::

    pipe = DiffusionPipeline.from_pretrained(path, dtype=dtype).to(device)
    images = pipe(prompt=..., height=..., width=..., num_inference_steps=..., guidance_scale=...,
                  generator=torch.Generator(device).manual_seed(seed)).images
    image.save(buffer, format="PNG")

with the numbers Plantain plans for the request (size, steps, guidance, the preset's extra
arguments) so both make the same images. Calls run one after another: a pipeline object is not
safe to call from two threads, and stock diffusers has no server to queue them. A request's
latency is the ``__call__`` plus encoding its images with Pillow's defaults for the format (no
HTTP, queue, base64, watermark, signing or storage); the progress bar is switched off, as
Plantain switches it off.
"""

from __future__ import annotations

import inspect
import io
import time
from typing import TYPE_CHECKING, Any

from plantain.benchmark.stats import Sample
from plantain.benchmark.workload import Workload

if TYPE_CHECKING:
    from PIL import Image

    from plantain.engines.base import Engine, EngineJob

PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
NEGATIVE_PROMPT = " "  # true-CFG pipelines (Qwen-Image) run CFG only with a negative prompt


class StockDiffusers:
    """``DiffusionPipeline.from_pretrained`` + ``__call__`` on ``engine``'s checkpoint."""

    def __init__(self, engine: Engine, workload: Workload, input_image: bytes | None = None) -> None:
        from plantain.engines.loading import pick_device, pick_dtype
        from plantain.generation import prepare

        self.label = "stock diffusers"
        self._engine = engine
        self._workload = workload
        self.job: EngineJob = prepare(workload.image_request(0, input_image), engine)
        self.device = pick_device(engine.settings.device)
        self.dtype = pick_dtype(engine.settings.dtype, engine.default_dtype)
        self._pipe: Any = None

    def load(self) -> float:
        """Load the pipeline; returns the seconds it took."""
        from diffusers import DiffusionPipeline

        source = self._engine.source
        location = source.resolve()
        cache = {"cache_dir": source.hub_cache} if source.local_dir is None else {}
        started = time.perf_counter()
        loader: Any = DiffusionPipeline  # diffusers is not annotated
        pipe = loader.from_pretrained(location, dtype=self.dtype, local_files_only=True, **cache)
        pipe = pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self._pipe = pipe
        return time.perf_counter() - started

    def call(self, index: int) -> Sample:
        import torch

        workload, job = self._workload, self.job
        kwargs: dict[str, Any] = {
            "prompt": workload.prompt_for(index),
            "height": job.height,
            "width": job.width,
            "num_inference_steps": job.steps,
            "num_images_per_prompt": workload.images,
            "generator": torch.Generator(self.device).manual_seed(workload.seed_for(index)),
            **self._extra_kwargs(),
        }
        if job.images:
            kwargs["image"] = list(job.images)
        started = time.perf_counter()
        images: list[Image.Image] = self._pipe(**kwargs).images
        engine = time.perf_counter() - started
        for image in images:
            image.save(io.BytesIO(), format=PIL_FORMATS[workload.output_format])
        return Sample(latency=time.perf_counter() - started, images=len(images), engine=engine)

    def close(self) -> None:
        self._pipe = None

    def _extra_kwargs(self) -> dict[str, Any]:
        """The preset's arguments and the guidance, under the name this pipeline takes it."""
        preset = dict(self._engine.preset.call_kwargs)
        guidance = self.job.guidance
        if "true_cfg_scale" not in inspect.signature(self._pipe.__call__).parameters:
            return {**preset, "guidance_scale": guidance}
        # Qwen-Image: guidance is true CFG; guidance_scale only means something to a distilled one.
        if not getattr(self._pipe.transformer.config, "guidance_embeds", False):
            preset.pop("guidance_scale", None)
        extra = {**preset, "true_cfg_scale": guidance}
        if guidance > 1.0:
            extra["negative_prompt"] = NEGATIVE_PROMPT
        return extra
