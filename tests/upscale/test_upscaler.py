"""The upscaler on tiny random-weight checkpoints spandrel detects as it does the published ones:
what it reports, the exact sizes it returns, passes, tiling without seams, and refusals."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from plantain.errors import ConfigurationError
from plantain.settings import Settings
from plantain.upscale.model import Upscaler, inspect_upscaler, passes_needed, shared_upscaler
from plantain.upscale.tiny import build_tiny_upscaler

KINDS = (("esrgan", 4), ("esrgan", 2), ("compact", 4), ("compact", 2))
NAMES = {"esrgan": "ESRGAN", "compact": "RealESRGAN Compact"}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], Path]:
    folder = tmp_path_factory.mktemp("upscalers")
    return {
        (arch, scale): build_tiny_upscaler(folder / f"{arch}_x{scale}.safetensors", arch, scale)
        for arch, scale in KINDS
    }


@pytest.fixture(scope="module")
def loaded(checkpoints: dict[tuple[str, int], Path]) -> dict[tuple[str, int], Upscaler]:
    return {kind: Upscaler.load(path) for kind, path in checkpoints.items()}


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth random image (blurred noise), as a generated image is, so nearest neighbours agree."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(
        rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    )
    return small.resize((width, height), Image.Resampling.BICUBIC)


@contextmanager
def network_inputs(upscaler: Upscaler) -> Iterator[list[tuple[int, int]]]:
    """The (width, height) of every input the network is called on while in the block."""
    seen: list[tuple[int, int]] = []
    network = upscaler._descriptor.model
    hook = network.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[:1:-1]))
    try:
        yield seen
    finally:
        hook.remove()


@pytest.mark.parametrize(("arch", "scale"), KINDS)
def test_each_architecture_is_detected_with_its_scale_and_label(
    checkpoints: dict[tuple[str, int], Path], arch: str, scale: int
) -> None:
    path = checkpoints[arch, scale]
    info = inspect_upscaler(path)
    assert (info.architecture, info.scale) == (NAMES[arch], scale)
    assert info.label == f"{NAMES[arch]} {scale}x ({path.name})"
    assert inspect_upscaler(path) is info  # read once per file version


@pytest.mark.parametrize(
    "target",
    [(160, 96), (150, 90), (97, 61), (200, 200), (41, 25), (30, 20)],
    ids=lambda size: f"{size[0]}x{size[1]}",
)
def test_the_output_is_exactly_the_size_asked_for(
    loaded: dict[tuple[str, int], Upscaler], target: tuple[int, int]
) -> None:
    for upscaler in loaded.values():
        image = upscaler.upscale(noise(40, 24).convert("RGBA"), *target, tile=512)
        assert (image.size, image.mode) == (target, "RGB")


def test_the_upscaled_image_is_the_input_enlarged(loaded: dict[tuple[str, int], Upscaler]) -> None:
    """The tiny networks carry the input through (plus noise): the colours stay where they were."""
    source = noise(40, 24, seed=3)
    for kind, upscaler in loaded.items():
        big = upscaler.upscale(source, 160, 96, tile=512)
        back = np.asarray(big.resize(source.size, Image.Resampling.BOX), dtype=np.float32)
        error = np.abs(back - np.asarray(source, dtype=np.float32)).mean()
        unrelated = np.abs(back - np.asarray(noise(40, 24, seed=4), dtype=np.float32)).mean()
        assert error < 12 < unrelated, (
            f"{kind}: mean difference {error:.1f} from the input, {unrelated:.1f} from another"
        )


def test_a_2x_model_runs_twice_for_4x(loaded: dict[tuple[str, int], Upscaler]) -> None:
    assert passes_needed((40, 24), (160, 96), 2) == 2
    assert passes_needed((40, 24), (161, 96), 2) == 3
    assert passes_needed((40, 24), (160, 96), 4) == 1
    assert passes_needed((40, 24), (40, 24), 4) == 0
    upscaler = loaded["compact", 2]
    with network_inputs(upscaler) as seen:
        upscaler.upscale(noise(40, 24), 160, 96, tile=512)
    assert seen == [(40, 24), (80, 48)]


def test_a_size_the_engine_made_is_only_resized(loaded: dict[tuple[str, int], Upscaler]) -> None:
    upscaler = loaded["compact", 4]
    with network_inputs(upscaler) as seen:
        image = upscaler.upscale(noise(40, 24), 40, 20, tile=512)
    assert seen == [] and image.size == (40, 20)


@pytest.mark.parametrize(("arch", "scale"), KINDS)
def test_tiles_blend_into_the_image_one_tile_makes(
    loaded: dict[tuple[str, int], Upscaler], arch: str, scale: int
) -> None:
    upscaler = loaded[arch, scale]
    source = noise(100, 76, seed=1)
    size = (100 * scale, 76 * scale)
    whole = np.asarray(upscaler.upscale(source, *size, tile=512), dtype=np.int16)
    with network_inputs(upscaler) as seen:
        tiled = np.asarray(upscaler.upscale(source, *size, tile=64), dtype=np.int16)
    assert len(seen) == 4 and max(max(size) for size in seen) <= 64
    difference = np.abs(whole - tiled)
    assert difference.max() <= 1, f"largest difference {difference.max()} (a seam)"


def test_inputs_meet_the_models_size_requirements(loaded: dict[tuple[str, int], Upscaler]) -> None:
    """Real-ESRGAN x2plus unshuffles 2x2 blocks: spandrel asks for sides that are multiples of 4."""
    upscaler = loaded["esrgan", 2]
    with network_inputs(upscaler) as seen:
        image = upscaler.upscale(noise(37, 23), 74, 46, tile=64)
    assert image.size == (74, 46)
    assert seen and all(width % 4 == 0 and height % 4 == 0 for width, height in seen)


def _refused(path: Path, reason: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        inspect_upscaler(path)
    assert caught.value.field == "upscaler"
    assert "upscaler (PLANTAIN_UPSCALER)" in caught.value.message
    assert str(path) in caught.value.message
    assert reason in caught.value.message


def test_bad_files_are_refused_naming_the_setting_and_the_path(tmp_path: Path) -> None:
    _refused(tmp_path / "absent.pth", "does not exist")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    _refused(garbage, "not a model spandrel can read")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    _refused(text, "not a model spandrel can read")
    foreign = tmp_path / "foreign.safetensors"
    from safetensors.torch import save_file

    save_file({"encoder.weight": torch.zeros(2, 2)}, str(foreign))
    _refused(foreign, "not a model spandrel can read")


def test_a_model_that_does_not_enlarge_is_refused(tmp_path: Path) -> None:
    """A 1x Real-ESRGAN Compact (a denoiser) is a Restoration model, not an upscaler."""
    from plantain.upscale.tiny import _arch_class

    network = _arch_class("Compact", "SRVGG", "SRVGGNetCompact")(num_feat=8, num_conv=2, upscale=1)
    path = tmp_path / "denoise_1x.pth"
    torch.save(network.state_dict(), path)
    _refused(path, "super-resolution (SR) model of scale 2x or more")
    with pytest.raises(ConfigurationError, match="Restoration"):
        Upscaler.load(path)


def test_a_replaced_file_is_read_again(tmp_path: Path) -> None:
    path = build_tiny_upscaler(tmp_path / "model.safetensors", "compact", 4)
    assert inspect_upscaler(path).scale == 4
    build_tiny_upscaler(path, "compact", 2)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert inspect_upscaler(path).scale == 2


def test_one_shared_upscaler_per_file_and_device(checkpoints: dict[tuple[str, int], Path]) -> None:
    settings = Settings(upscaler=checkpoints["compact", 4], dtype="float32")
    found: list[Upscaler] = []
    threads = [
        threading.Thread(target=lambda: found.append(shared_upscaler(settings, "cpu"))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 4 and all(upscaler is found[0] for upscaler in found)
    assert found[0].info.scale == 4 and found[0].dtype == torch.float32
    other = shared_upscaler(Settings(upscaler=checkpoints["compact", 2], dtype="float32"), "cpu")
    assert other is not found[0] and other.info.scale == 2


def test_no_upscaler_set_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"upscaler \(PLANTAIN_UPSCALER\) is not set"):
        shared_upscaler(Settings(), "cpu")
