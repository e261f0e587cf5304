"""``plantain app run OWNER/APP --input JSON`` against a live server, as a user types it."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from tests.cli.conftest import Plantain

from plantain.testing import free_port, make_input


def size_of(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def test_a_local_image_is_sent_and_the_outputs_are_saved(plantain: Plantain, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(make_input(96, 64).data)
    body = {
        "prompt": "the same, at dusk",
        "images": [str(photo)],
        "num_images": 2,
        "seed": 3,
        "resolution": "0.5K",
    }
    out = tmp_path / "dusk.png"
    result = plantain(
        "app", "run", "google/gemini-3-1-flash-image-preview", "--input", json.dumps(body), "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    written = [Path(line) for line in result.stdout.split()]
    assert written == [tmp_path / "dusk-1.png", tmp_path / "dusk-2.png"]
    sizes = {size_of(path) for path in written}
    assert sizes == {(624, 416)}  # the input's 3:2 shape at 0.5K: the photo was sent
    assert "tiny: 2 image(s) 624x416, seed 3" in result.stderr


def test_images_go_to_a_directory_named_by_seed(plantain: Plantain, tmp_path: Path) -> None:
    body = json.dumps({"prompt": "a wave", "seed": 12, "resolution": "0.5K", "output_format": "webp"})
    result = plantain("app", "run", "plantain/tiny", "--input", body, "-o", f"{tmp_path}/")
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(tmp_path / "plantain-12.webp")]


def test_a_refusal_is_one_line_naming_the_field(plantain: Plantain) -> None:
    result = plantain("app", "run", "plantain/tiny", "--input", '{"prompt": "x", "temperature": 9}')
    assert result.exit_code == 1
    assert "HTTP 400: input.temperature: 9" in result.stderr and "2" in result.stderr
    assert "less than or equal to 2" in result.stderr  # the limit, not any "2"
    unknown = plantain("app", "run", "acme/painter", "--input", '{"prompt": "x"}')
    assert unknown.exit_code == 1 and "HTTP 404" in unknown.stderr and "plantain/tiny" in unknown.stderr


def test_bad_json_and_a_missing_server_are_explained(plantain: Plantain) -> None:
    bad = plantain("app", "run", "plantain/tiny", "--input", "{prompt")
    assert bad.exit_code == 2 and "not valid JSON" in bad.stderr
    gone = plantain(
        "app",
        "run",
        "plantain/tiny",
        "--input",
        '{"prompt": "x"}',
        env={"PLANTAIN_SERVER": f"http://127.0.0.1:{free_port()}"},
    )
    assert gone.exit_code == 1 and "plantain serve" in gone.stderr
