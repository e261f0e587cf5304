"""The plantain command as a user types it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from plantain.cli.main import cli
from plantain.testing import make_input, same_picture


@pytest.fixture
def plantain(data_dir: Path, hub_cache: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PLANTAIN_HUB_CACHE", str(hub_cache))

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args])

    return invoke


def size_of(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def format_of(path: Path) -> str | None:
    with Image.open(path) as image:
        return image.format


def test_generate_writes_the_asked_ratio_and_prints_the_file(plantain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out.png"
    result = plantain(
        "generate", "a red bicycle", "--engine", "tiny", "--aspect-ratio", "21:9", "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert size_of(out) == (1536, 672)
    assert "random weights" in result.stderr


def test_same_seed_same_picture_and_unmarked_the_same_bytes(  # type: ignore[no-untyped-def]
    plantain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def make(name: str, seed: str) -> bytes:
        path = tmp_path / name
        result = plantain(
            "generate", "a red bicycle", "-e", "tiny", "--size", "512", "--seed", seed, "-o", str(path)
        )
        assert result.exit_code == 0, result.output
        return path.read_bytes()

    marked = [make("a.png", "5"), make("b.png", "5"), make("c.png", "6")]
    assert marked[0] != marked[1]  # each file carries its own watermark serial and manifest
    assert same_picture(marked[0], marked[1]) and not same_picture(marked[0], marked[2])
    monkeypatch.setenv("PLANTAIN_WATERMARK", "false")
    monkeypatch.setenv("PLANTAIN_CONTENT_CREDENTIALS", "false")
    assert make("d.png", "5") == make("e.png", "5")


def test_several_images_and_format_from_the_file_name(plantain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = plantain(
        "generate",
        "a cat",
        "-e",
        "tiny",
        "-s",
        "512",
        "-n",
        "2",
        "--seed",
        "3",
        "-o",
        str(tmp_path / "cat.jpg"),
    )
    assert result.exit_code == 0, result.output
    written = [Path(line) for line in result.stdout.split()]
    assert written == [tmp_path / "cat-1.jpg", tmp_path / "cat-2.jpg"]
    assert [format_of(path) for path in written] == ["JPEG", "JPEG"]


def test_output_directory_names_files_by_seed(plantain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = plantain(
        "generate", "a cat", "-e", "tiny", "-s", "512", "--seed", "11", "-f", "webp", "-o", str(tmp_path)
    )
    assert result.exit_code == 0, result.output
    assert format_of(tmp_path / "plantain-11.webp") == "WEBP"


def test_edit_with_three_formats(plantain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inputs = []
    for name, fmt in (("a.png", "PNG"), ("b.webp", "WEBP"), ("c.jpg", "JPEG")):
        path = tmp_path / name
        path.write_bytes(make_input(128, 96, fmt=fmt).data)
        inputs += ["-i", str(path)]
    out = tmp_path / "night.png"
    result = plantain("edit", "make it night", *inputs, "--engine", "tiny", "-s", "512", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert size_of(out) == (592, 432)  # 4:3, like a.png, at the 512 tier


def test_too_many_images_is_one_clear_line(plantain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "a.png"
    path.write_bytes(make_input().data)
    result = plantain("edit", "fuse", *["-i", str(path)] * 5, "--engine", "flux2-klein-4b")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: engine flux2-klein-4b takes at most 4 input images; got 5"


def test_a_fourth_image_on_a_three_image_engine_is_refused(plantain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    paths = []
    for name in ("a.png", "b.png", "c.png", "d.png"):
        (tmp_path / name).write_bytes(make_input().data)
        paths += ["-i", str(tmp_path / name)]
    result = plantain("edit", "fuse them", *paths, "--engine", "qwen-image-edit")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: engine qwen-image-edit takes at most 3 input images; got 4"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["generate", "x", "-e", "tiny", "-a", "7:3"],
            "aspect_ratio: '7:3' is not allowed; must be one of 1:1",
        ),
        (
            ["generate", "x", "-e", "tiny", "-n", "11"],
            "num_images: 11 is not allowed; must be between 1 and 10",
        ),
        (["generate", "x", "-e", "nope"], "engine 'nope' is not known; available: flux2-klein-4b"),
        (
            ["generate", "x", "-e", "tiny", "-f", "jpeg", "-o", "x.png"],
            "--format jpeg does not match the output file x.png",
        ),
        (["edit", "x", "-i", "missing.png", "-e", "tiny"], "cannot read input image missing.png"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(plantain, args: list[str], expected: str) -> None:  # type: ignore[no-untyped-def]
    result = plantain(*args)
    assert result.exit_code != 0
    assert len(result.stderr.strip().splitlines()) == 1
    assert expected in result.stderr


def test_corrupt_input_is_named(plantain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good, bad = tmp_path / "good.png", tmp_path / "bad.jpg"
    good.write_bytes(make_input().data)
    bad.write_bytes(make_input(fmt="JPEG").data[:200])
    result = plantain("edit", "x", "-i", str(good), "-i", str(bad), "-e", "tiny")
    assert result.exit_code == 1
    assert f"input image {bad} is not a readable image" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_weights_for_the_default_engine(plantain) -> None:  # type: ignore[no-untyped-def]
    result = plantain("generate", "a cat")
    assert result.exit_code == 1
    assert "plantain pull flux2-klein-4b" in result.stderr and "--engine tiny" in result.stderr


def test_engines_lists_every_family_with_capabilities(plantain) -> None:  # type: ignore[no-untyped-def]
    result = plantain("engines", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {
        "flux2-klein-4b",
        "qwen-image-edit",
        "qwen-image-edit-lightning",
        "qwen-image",
        "qwen-image-2.1",
        "longcat-image-edit",
        "longcat-image",
        "z-image-turbo",
        "flux1-schnell",
        "tiny",
    }
    assert rows["qwen-image-edit"]["tasks"] == ["edit"] and rows["qwen-image"]["tasks"] == ["text-to-image"]
    assert rows["tiny"]["tasks"] == ["text-to-image", "edit", "inpaint"]
    assert rows["tiny"]["weights"] == "present"
    assert rows["flux2-klein-4b"]["weights"] == "missing" and rows["flux2-klein-4b"]["max_input_images"] == 4
    table = plantain("engines").stdout
    assert "flux2-klein-4b (default)" in table and "weights: missing" in table
    # The cards: licence (and the gate), presets, how 4K is made without an upscaler.
    gated = rows["qwen-image-2.1"]["licence"]
    assert gated["id"] == "qwen-research" and gated["commercial_use"] is False and gated["accepted"] is False
    assert rows["qwen-image-edit"]["presets"]["lightning"]["steps"] == 4
    assert rows["tiny"]["tiers"]["4K"]["made"] == "native"
    assert "licence: Qwen Research License (NON-COMMERCIAL); refused until accept_licences" in table
    assert "preset lightning: 4 steps, guidance 1, LoRA lightning" in table
    assert "4K refused (no upscaler set)" in table


def test_demo_round_trip_on_tiny_without_weights(plantain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = plantain("demo", "-o", str(tmp_path / "demo"))
    assert result.exit_code == 0, result.output
    assert "No weights for flux2-klein-4b" in result.stderr and "'tiny'" in result.stderr
    generated, edited = (Path(line) for line in result.stdout.split())
    assert size_of(generated) == size_of(edited) == (1024, 1024)
    assert generated.read_bytes() != edited.read_bytes()


def test_pull_without_a_hub_names_the_checkpoint(plantain) -> None:  # type: ignore[no-untyped-def]
    result = plantain("pull", "flux2-klein-4b")
    assert result.exit_code == 1
    assert "could not download black-forest-labs/FLUX.2-klein-4B for engine flux2-klein-4b" in result.stderr


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("plantain, version ")
