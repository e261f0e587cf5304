"""The upscaler: a super-resolution network (any architecture spandrel reads) that enlarges an
engine's image to a size the engine cannot make natively (docs/upscaling.md).

:func:`inspect_upscaler` reads a checkpoint once to name it (``ESRGAN 4x (RealESRGAN_x4plus.pth)``,
the name every answer carries) and refuses one that is not a single-image RGB super-resolution
model. :class:`Upscaler` runs it: tile by tile with feathered overlaps (memory bounded by the tile,
not the image), as many passes as reach the target (a 2x model twice for 4x), then a Lanczos
resize to the exact size asked for (the size tables' pixels are rarely an exact multiple).
:func:`shared_upscaler` keeps one loaded instance per file and device in the process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from plantain.errors import ConfigurationError
from plantain.settings import Settings
from plantain.upscale.spandrel_import import import_spandrel
from plantain.upscale.tiles import Box, feather_weights, tile_boxes

SETTING = "upscaler (PLANTAIN_UPSCALER)"
MIN_OVERLAP = 16  # input pixels shared by neighbouring tiles: more than the tiny networks' reach


@dataclass(frozen=True)
class UpscalerInfo:
    """What a checkpoint is, as spandrel detects it."""

    path: Path
    architecture: str  # spandrel's name for it: "ESRGAN", "RealESRGAN Compact", "SwinIR"…
    scale: int  # each pass multiplies both sides by this
    tags: tuple[str, ...]  # spandrel's size tags ("64nf", "23nb")

    @property
    def label(self) -> str:
        """How answers name it: ``ESRGAN 4x (RealESRGAN_x4plus.pth)``."""
        return f"{self.architecture} {self.scale}x ({self.path.name})"


def _refuse(path: Path, reason: str) -> ConfigurationError:
    return ConfigurationError(f"{SETTING}: {path} {reason}", field="upscaler")


def _read(path: Path, device: torch.device) -> tuple[Any, UpscalerInfo]:
    """spandrel's descriptor of ``path`` on ``device`` and what it is; refused unless it is a
    single-image RGB super-resolution model of scale 2 or more."""
    if not path.is_file():
        raise _refuse(path, "does not exist or is not a file; set it to a super-resolution checkpoint")
    spandrel = import_spandrel()
    try:
        descriptor = spandrel.ModelLoader(device).load_from_file(path)
    except Exception as exc:  # unknown extension, unknown architecture, truncated or foreign file
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise _refuse(path, f"is not a model spandrel can read ({first_line})") from exc
    arch = descriptor.architecture.name
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise _refuse(path, f"is a {descriptor.purpose} model ({arch}), not a super-resolution model")
    if descriptor.purpose != "SR" or descriptor.scale < 2:
        raise _refuse(
            path,
            f"is a {descriptor.purpose} model ({arch}, scale {descriptor.scale}x); an upscaler must be a "
            "super-resolution (SR) model of scale 2x or more",
        )
    if (descriptor.input_channels, descriptor.output_channels) != (3, 3):
        raise _refuse(
            path,
            f"takes {descriptor.input_channels} channels and gives {descriptor.output_channels}; an "
            "upscaler must take and give RGB (3 and 3)",
        )
    info = UpscalerInfo(
        path=path, architecture=arch, scale=int(descriptor.scale), tags=tuple(descriptor.tags)
    )
    return descriptor, info


_INFO_LOCK = threading.Lock()
_INFO: dict[tuple[Path, int, int], UpscalerInfo] = {}


def _file_key(path: Path) -> tuple[Path, int, int]:
    """(path, modification time, size): a file replaced in place is read again."""
    try:
        stat = path.stat()
    except OSError:
        return path, -1, -1
    return path, stat.st_mtime_ns, stat.st_size


def inspect_upscaler(path: Path) -> UpscalerInfo:
    """What the checkpoint at ``path`` is; read once per file version (``ConfigurationError``
    naming the setting and the path when it is missing or no upscaler)."""
    key = _file_key(path)
    with _INFO_LOCK:
        known = _INFO.get(key)
    if known is not None:
        return known
    _, info = _read(path, torch.device("cpu"))
    with _INFO_LOCK:
        _INFO[key] = info
    return info


def passes_needed(size: tuple[int, int], target: tuple[int, int], scale: int) -> int:
    """How many passes of a ``scale``x model take ``size`` to at least ``target`` (0: none is
    needed, the image is only resized)."""
    passes, (width, height) = 0, size
    while width < target[0] or height < target[1]:
        passes, width, height = passes + 1, width * scale, height * scale
    return passes


def _pick_dtype(descriptor: Any, dtype: torch.dtype) -> torch.dtype:
    """``dtype`` if the model supports it, else float32 (spandrel knows which models overflow in
    half precision)."""
    if dtype == torch.float16 and not descriptor.supports_half:
        return torch.float32
    if dtype == torch.bfloat16 and not descriptor.supports_bfloat16:
        return torch.float32
    return dtype


class Upscaler:
    """One loaded upscaler. ``upscale`` may be called from several threads: one image runs at a
    time, so the memory it needs is one image's."""

    def __init__(self, descriptor: Any, info: UpscalerInfo, device: torch.device, dtype: torch.dtype) -> None:
        self._descriptor = descriptor
        self.info = info
        self.device = device
        self.dtype = dtype
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, path: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> Upscaler:
        """The checkpoint at ``path`` on ``device``, in ``dtype`` where the model supports it."""
        device = torch.device(device)
        descriptor, info = _read(path, device)
        dtype = _pick_dtype(descriptor, dtype)
        descriptor.to(dtype).eval()
        return cls(descriptor, info, device, dtype)

    @property
    def label(self) -> str:
        return self.info.label

    def upscale(self, image: Image.Image, width: int, height: int, tile: int) -> Image.Image:
        """``image`` enlarged to exactly ``width`` x ``height`` (RGB), the network run on input tiles
        of at most ``tile`` pixels a side."""
        if width < 1 or height < 1:
            raise ValueError(f"target size {width}x{height} is empty")
        rgb = image.convert("RGB")
        passes = passes_needed(rgb.size, (width, height), self.info.scale)
        if passes:
            with self._lock, torch.inference_mode():
                pixels = _to_tensor(rgb, self.device)
                for _ in range(passes):
                    pixels = self._one_pass(pixels, tile)
                rgb = _to_image(pixels)
        if rgb.size != (width, height):
            rgb = rgb.resize((width, height), Image.Resampling.LANCZOS)
        return rgb

    def _one_pass(self, pixels: torch.Tensor, tile: int) -> torch.Tensor:
        """(3, H, W) in [0, 1] → (3, H·scale, W·scale), tile by tile, blended on ``self.device``."""
        requirements = self._descriptor.size_requirements
        _, height, width = pixels.shape
        padded = _pad(pixels, requirements)
        _, padded_h, padded_w = padded.shape
        step = max(requirements.multiple_of, 1)
        if self._descriptor.tiling == import_spandrel().ModelTiling.INTERNAL:  # it needs the whole image
            tile = max(padded_w, padded_h)
        tile = max(tile // step * step, requirements.minimum, step)
        overlap = min(max(MIN_OVERLAP, tile // 8), tile // 2) // step * step
        scale = self.info.scale
        out = torch.zeros((3, padded_h * scale, padded_w * scale), dtype=torch.float32, device=self.device)
        total = torch.zeros((1, padded_h * scale, padded_w * scale), dtype=torch.float32, device=self.device)
        for box in tile_boxes(padded_w, padded_h, tile, overlap, align=step):
            result = self._run_tile(padded, box)
            weights = feather_weights(
                _scaled(box, scale),
                padded_w * scale,
                padded_h * scale,
                overlap * scale,
                margin=overlap * scale // 4,
            )
            left, top, right, bottom = _scaled(box, scale)
            weight = torch.from_numpy(weights).to(self.device)[None]
            out[:, top:bottom, left:right] += result * weight
            total[:, top:bottom, left:right] += weight
        return out.div_(total)[:, : height * scale, : width * scale].clamp_(0, 1)  # in place: 4K is large

    def _run_tile(self, pixels: torch.Tensor, box: Box) -> torch.Tensor:
        left, top, right, bottom = box
        piece = pixels[:, top:bottom, left:right][None].to(self.dtype)
        result: torch.Tensor = self._descriptor(piece)  # spandrel pads what its requirements need
        return result[0].float()


def _scaled(box: Box, scale: int) -> Box:
    return (box[0] * scale, box[1] * scale, box[2] * scale, box[3] * scale)


def _pad(pixels: torch.Tensor, requirements: Any) -> torch.Tensor:
    """``pixels`` padded right and bottom to what the model takes (a multiple of its block, its
    minimum), reflected like spandrel pads, so tiles need no padding of their own."""
    _, height, width = pixels.shape
    # A model that wants square inputs has each tile padded square by spandrel, not the image.
    pad_w = requirements.get_padding(width, width)[0]
    pad_h = requirements.get_padding(height, height)[1]
    if not (pad_w or pad_h):
        return pixels
    reflect_w, reflect_h = min(pad_w, width - 1), min(pad_h, height - 1)
    padded = torch.nn.functional.pad(pixels[None], (0, reflect_w, 0, reflect_h), mode="reflect")
    padded = torch.nn.functional.pad(padded, (0, pad_w - reflect_w, 0, pad_h - reflect_h), mode="replicate")
    return padded[0]


def _to_tensor(image: Image.Image, device: torch.device) -> torch.Tensor:
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous().to(device)


def _to_image(pixels: torch.Tensor) -> Image.Image:
    """(3, H, W) in [0, 1] → an RGB image; in place where it can be (a 4K float image is 200 MB)."""
    array = pixels.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous()
    return Image.fromarray(array.cpu().numpy())


_SHARED_LOCK = threading.Lock()
_SHARED: dict[tuple[Path, str], tuple[tuple[Path, int, int], Upscaler]] = {}

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def _settings_dtype(setting: str, device: torch.device) -> torch.dtype:
    """``auto``: half precision on a GPU (a real ESRGAN is 4x faster in it), float32 on a CPU."""
    if setting != "auto":
        return _DTYPES[setting]
    return torch.float32 if device.type == "cpu" else torch.float16


def shared_upscaler(settings: Settings, device: torch.device | str) -> Upscaler:
    """The process's one :class:`Upscaler` for ``settings.upscaler`` on ``device`` (loaded on first
    use, again when the file changes)."""
    if settings.upscaler is None:
        raise ConfigurationError(
            f"{SETTING} is not set; set it to a super-resolution checkpoint", field="upscaler"
        )
    device = torch.device(device)
    path = settings.upscaler
    key, version = (path, str(device)), _file_key(path)
    with _SHARED_LOCK:  # held while loading: two threads never load the same file twice
        known = _SHARED.get(key)
        if known is not None and known[0] == version:
            return known[1]
        upscaler = Upscaler.load(path, device, _settings_dtype(settings.dtype, device))
        _SHARED[key] = (version, upscaler)
        return upscaler
