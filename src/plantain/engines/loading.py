"""Finding, pulling and loading checkpoints; choosing device, dtype and CPU offload.

A checkpoint comes from one of three places, in this order: an explicit local directory
(``--weights DIR`` or the ``weights`` setting), a directory Plantain builds itself (the tiny
random-weight checkpoints), or a Hugging Face hub id read from the local hub cache. Loading
never downloads: ``plantain pull`` does, so a server never stalls on a multi-gigabyte fetch and
a missing checkpoint is one clear error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub import snapshot_download, try_to_load_from_cache
from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

from plantain.errors import EngineLoadError, MissingWeightsError
from plantain.settings import Settings

logger = logging.getLogger(__name__)

DTYPES: dict[str, torch.dtype] = {
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float32": torch.float32,
}


@dataclass(frozen=True)
class WeightsStatus:
    present: bool
    location: str  # the directory or "hub id in cache dir" that was checked
    buildable: bool = False  # Plantain builds it itself (on first use, when missing)


@dataclass(frozen=True)
class WeightsSource:
    """Where one engine's checkpoint lives."""

    engine: str
    repo_id: str | None = None
    local_dir: Path | None = None
    cache_dir: Path | None = None
    builder: Callable[[Path], None] | None = None  # builds a checkpoint into local_dir
    size_hint: str = ""  # download size for messages, e.g. "about 16 GB"
    pull_ignore: tuple[str, ...] = ()  # repo files the diffusers layout does not need

    @classmethod
    def hub(
        cls,
        engine: str,
        settings: Settings,
        hub_id: str,
        *,
        size_hint: str = "",
        pull_ignore: tuple[str, ...] = (),
    ) -> WeightsSource:
        """A hub checkpoint, unless the settings point this engine at a directory or another hub id."""
        return cls(
            engine=engine,
            repo_id=settings.repos.get(engine, hub_id),
            local_dir=settings.weights.get(engine),
            cache_dir=settings.hub_cache,
            size_hint=size_hint,
            pull_ignore=pull_ignore,
        )

    @classmethod
    def built(
        cls, engine: str, settings: Settings, directory_name: str, builder: Callable[[Path], None]
    ) -> WeightsSource:
        """A checkpoint Plantain builds itself into the data directory on first use."""
        return cls(
            engine=engine,
            local_dir=settings.weights.get(engine, settings.models_dir / directory_name),
            builder=builder,
        )

    @property
    def hub_cache(self) -> Path:
        return self.cache_dir or Path(hub_constants.HF_HUB_CACHE)

    def status(self) -> WeightsStatus:
        if self.local_dir is not None:
            present = (self.local_dir / "model_index.json").is_file()
            return WeightsStatus(present, str(self.local_dir), buildable=self.builder is not None)
        assert self.repo_id is not None
        cached = try_to_load_from_cache(self.repo_id, "model_index.json", cache_dir=self.hub_cache)
        return WeightsStatus(isinstance(cached, str), f"{self.repo_id} in {self.hub_cache}")

    def resolve(self) -> str:
        """What ``from_pretrained`` should load: a directory or a cached hub id."""
        status = self.status()
        if not status.present and status.buildable and self.local_dir is not None:
            assert self.builder is not None
            logger.info("building checkpoint for %s in %s", self.engine, self.local_dir)
            self.builder(self.local_dir)
        elif not status.present:
            raise MissingWeightsError(self._missing_message(status))
        return str(self.local_dir) if self.local_dir is not None else str(self.repo_id)

    def local_path(self) -> Path:
        """The directory holding the checkpoint: ``local_dir``, or the hub id's cached snapshot.

        Never downloads. For engines that must read files beside the pipeline (a processor
        subfolder, a sidecar); call it after :meth:`resolve`.
        """
        if self.local_dir is not None:
            return self.local_dir
        assert self.repo_id is not None
        try:
            snapshot = snapshot_download(self.repo_id, cache_dir=self.hub_cache, local_files_only=True)
        except LocalEntryNotFoundError as exc:
            raise MissingWeightsError(self._missing_message(self.status())) from exc
        return Path(snapshot)

    def _missing_message(self, status: WeightsStatus) -> str:
        if self.local_dir is not None:
            return (
                f"engine {self.engine}: no diffusers checkpoint in {self.local_dir} "
                "(model_index.json not found). Point --weights at a checkpoint directory"
                + (f" or run 'plantain pull {self.engine}'." if self.repo_id else ".")
            )
        size = f" ({self.size_hint})" if self.size_hint else ""
        return (
            f"engine {self.engine}: weights for {self.repo_id} are not in the hub cache "
            f"{self.hub_cache}. Run 'plantain pull {self.engine}' to download them{size}, "
            "or pass --weights DIR with a local copy. To try Plantain without weights, "
            "use --engine tiny."
        )


def pull(source: WeightsSource) -> Path:
    """Download a checkpoint into the hub cache, with the hub library's progress bars."""
    if source.repo_id is None:
        raise MissingWeightsError(f"engine {source.engine} has no hub id to pull from")
    try:
        path = snapshot_download(
            source.repo_id, cache_dir=source.hub_cache, ignore_patterns=list(source.pull_ignore) or None
        )
    except Exception as exc:  # offline, gated, unknown repo: all end in one sentence
        raise MissingWeightsError(
            f"could not download {source.repo_id} for engine {source.engine}: {_pull_failure(exc)}"
        ) from exc
    return Path(path)


def _pull_failure(exc: Exception) -> str:
    """One line saying why a download failed and what to do."""
    if isinstance(exc, GatedRepoError):
        return "the repository is gated: accept its licence on the hub, then set HF_TOKEN"
    if isinstance(exc, RepositoryNotFoundError):
        return "the hub has no such repository (or it is private: set HF_TOKEN), see the repos setting"
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first_line.rstrip('.')}. Check the network, HF_ENDPOINT and HF_TOKEN."


def pick_device(setting: str) -> torch.device:
    if setting != "auto":
        return torch.device(setting)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(setting: str, checkpoint_default: torch.dtype) -> torch.dtype:
    return checkpoint_default if setting == "auto" else DTYPES[setting]


def quiet_libraries() -> None:
    """Silence diffusers'/transformers' own load and save progress bars: Plantain reports its own."""
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


def load_pipeline(
    pipeline_cls: Any,
    source: WeightsSource,
    settings: Settings,
    *,
    default_dtype: torch.dtype,
    **overrides: Any,
) -> Any:
    """``pipeline_cls.from_pretrained`` from ``source``, placed on the configured device."""
    quiet_libraries()
    location = source.resolve()
    device = pick_device(settings.device)
    kwargs: dict[str, Any] = {
        "dtype": pick_dtype(settings.dtype, default_dtype),
        "local_files_only": True,
        **overrides,
    }
    if source.local_dir is None:
        kwargs["cache_dir"] = source.hub_cache
    try:
        pipeline = pipeline_cls.from_pretrained(location, **kwargs)
    except (LocalEntryNotFoundError, FileNotFoundError) as exc:
        raise MissingWeightsError(f"engine {source.engine}: {exc}") from exc
    except Exception as exc:
        raise EngineLoadError(
            f"engine {source.engine} could not load {location} with {pipeline_cls.__name__}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    place_pipeline(pipeline, device, settings.offload)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def place_pipeline(pipeline: Any, device: torch.device, offload: str) -> None:
    """Move to ``device``, or let diffusers offload to the CPU when the GPU is too small."""
    mode = _offload_mode(pipeline, device, offload)
    if mode == "model":
        pipeline.enable_model_cpu_offload(device=device)
    elif mode == "sequential":
        pipeline.enable_sequential_cpu_offload(device=device)
    else:
        pipeline.to(device)
    logger.info("pipeline on %s (offload: %s)", device, mode)


def _offload_mode(pipeline: Any, device: torch.device, offload: str) -> str:
    if device.type != "cuda" or offload == "none":
        return "none"
    if offload != "auto":
        return offload
    free, _total = torch.cuda.mem_get_info(device)
    needed = sum(_module_bytes(module) for module in pipeline.components.values())
    # 25% headroom for activations and the VAE decode at 1K-2K.
    return "model" if needed * 1.25 > free else "none"


def _module_bytes(module: Any) -> int:
    if not isinstance(module, torch.nn.Module):
        return 0
    return sum(p.numel() * p.element_size() for p in module.parameters())
