"""Tiny random-weight upscaler checkpoints for tests and benchmarks.

Each is built with the network class spandrel itself loads (found in its
``architectures/*/__arch`` modules) and saved as a safetensors file in the key layout of the
published weights, so spandrel's detection is what a real file meets:

- ``esrgan``: RRDBNet in Real-ESRGAN's layout (``conv_first``, ``body.N.rdbK.convJ``,
  ``conv_up1`` …, as ``RealESRGAN_x4plus.pth``); at scale 2 with the pixel-unshuffle input of
  ``RealESRGAN_x2plus.pth`` (so the model asks for inputs that are a multiple of 4);
- ``compact``: SRVGGNetCompact, the layout of ``realesr-general-x4v3.pth`` and
  ``realesr-animevideov3.pth``.

The sizes are the smallest spandrel still reads (one RRDB, few features), so a 4K upscale of a
1K image takes seconds on a CPU; the images they make are noise around the input, which is all a
test of sizes, tiling and passes needs.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from plantain.upscale.spandrel_import import import_spandrel

ARCHITECTURES = ("esrgan", "compact")

_ESRGAN_FILTERS = 4
_COMPACT_FEATURES = 8
_COMPACT_CONVS = 2


def _arch_class(architecture: str, module: str, name: str) -> Any:
    """A network class from spandrel's private ``architectures/<architecture>/__arch/<module>.py``."""
    import_spandrel()  # spandrel's package first, imported without torchvision
    path = f"spandrel.architectures.{architecture}.__arch.{module}"
    return getattr(importlib.import_module(path), name)


def build_tiny_upscaler(path: Path, architecture: str = "esrgan", scale: int = 4, seed: int = 0) -> Path:
    """Save a tiny random ``architecture`` upscaler of ``scale`` (2 or 4) at ``path`` (.safetensors)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture {architecture!r} is not one of {', '.join(ARCHITECTURES)}")
    if scale not in (2, 4):
        raise ValueError(f"scale {scale} is not 2 or 4")
    torch.manual_seed(seed)
    state = _esrgan_state(scale) if architecture == "esrgan" else _compact_state(scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: value.detach().contiguous() for key, value in state.items()}, str(path))
    return path


def _compact_state(scale: int) -> dict[str, torch.Tensor]:
    network = _arch_class("Compact", "SRVGG", "SRVGGNetCompact")
    model = network(num_feat=_COMPACT_FEATURES, num_conv=_COMPACT_CONVS, upscale=scale)
    return dict(model.state_dict())


def _esrgan_state(scale: int) -> dict[str, torch.Tensor]:
    rrdb = _arch_class("ESRGAN", "RRDB", "RRDBNet")
    # Real-ESRGAN x2plus is the x4 network behind a 2x pixel-unshuffle (12 input channels).
    shuffle = 2 if scale == 2 else None
    model = rrdb(
        in_nc=12 if shuffle else 3,
        out_nc=3,
        num_filters=_ESRGAN_FILTERS,
        num_blocks=1,
        scale=4,
        shuffle_factor=shuffle,
    )
    # Small random weights and no biases: the identity path below then dominates (random biases
    # alone shift the colours by a tenth of their range).
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.mul_(0.0 if name.endswith("bias") else 0.1)
    state = _to_real_esrgan_layout(dict(model.state_dict()))
    _carry_the_input(state, shuffle)
    return state


def _carry_the_input(state: dict[str, torch.Tensor], shuffle: int | None) -> None:
    """Make the convolutions around the trunk (a residual block) pass colours straight through,
    so the output is the input enlarged plus what the random trunk adds: a test can then see the
    image it upscaled (a random RRDB alone gives the same grey whatever the input)."""
    outer = [key for key in state if key.startswith(("conv_first", "conv_up", "conv_hr", "conv_last"))]
    with torch.no_grad():
        for key in outer:
            state[key].zero_()
        state["conv_body.weight"].mul_(0.1)  # what the trunk adds: a little noise, not a colour cast
        for colour in range(3):
            # A pixel-unshuffled input holds colour c in channels 4c..4c+3; take the first.
            state["conv_first.weight"][colour, colour * (shuffle or 1) ** 2, 1, 1] = 1.0
            for key in [key for key in outer if key.endswith("weight") and key != "conv_first.weight"]:
                state[key][colour, colour, 1, 1] = 1.0


def _to_real_esrgan_layout(old: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """spandrel's RRDBNet keys (``model.N…``, ESRGAN's first layout) renamed to Real-ESRGAN's."""
    body = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)")
    tops = sorted({int(key.split(".")[1]) for key in old if not key.startswith("model.1.")})
    # After the trunk: an upconv every 3 modules (Upsample, conv, act), then conv_hr and conv_last.
    names = {0: "conv_first", tops[-2]: "conv_hr", tops[-1]: "conv_last"}
    for index, top in enumerate(tops[1:-2]):
        names[top] = f"conv_up{index + 1}"
    trunk_end = max(int(key.split(".")[3]) for key in old if key.startswith("model.1.sub."))
    new: dict[str, torch.Tensor] = {}
    for key, value in old.items():
        kind = key.rsplit(".", 1)[1]
        match = body.fullmatch(key)
        if match:
            block, rdb, conv, _ = match.groups()
            new[f"body.{block}.rdb{rdb}.conv{conv}.{kind}"] = value
        elif key.startswith(f"model.1.sub.{trunk_end}."):
            new[f"conv_body.{kind}"] = value
        else:
            new[f"{names[int(key.split('.')[1])]}.{kind}"] = value
    return new
