"""`plantain pull` against a real (local) hub server, then loading what it pulled by hub id.

The hub library reads HF_ENDPOINT and HF_HUB_OFFLINE when it is imported, so the commands run
in child processes with their own environment, as a user would run them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from plantain.engines import zimage
from plantain.testing import LocalHub

REPO = "plantain-test/z-image-turbo-tiny"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("hub") / "z-image"
    zimage.build_tiny_checkpoint(directory)
    return directory


def plantain(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plantain", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_pull_downloads_into_the_hub_cache_and_the_engine_then_runs(checkpoint: Path, tmp_path: Path) -> None:
    with LocalHub({REPO: checkpoint}) as hub:
        env = {
            **os.environ,
            "HF_ENDPOINT": hub.endpoint,
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_CACHE": str(tmp_path / "cache"),
            "PLANTAIN_DATA_DIR": str(tmp_path / "data"),
            "PLANTAIN_REPOS": json.dumps({"z-image-turbo": REPO}),
            "PLANTAIN_DTYPE": "float32",  # bfloat16 convolutions are slow on a CPU
        }
        pulled = plantain(env, "pull", "z-image-turbo")
        assert pulled.returncode == 0, pulled.stderr
        assert f"downloading {REPO} for z-image-turbo" in pulled.stderr
        assert any(path.endswith("model_index.json") for path in hub.requests)

    snapshot = Path(pulled.stdout.strip())
    assert (
        snapshot == tmp_path / "cache" / f"models--{REPO.replace('/', '--')}" / "snapshots" / LocalHub.COMMIT
    )
    assert (snapshot / "transformer" / "diffusion_pytorch_model.safetensors").is_file()

    # The hub server is gone: listing and running now work from the cache alone.
    listed = {row["name"]: row for row in json.loads(plantain(env, "engines", "--json").stdout)}
    assert listed["z-image-turbo"]["weights"] == "present"
    out = tmp_path / "lighthouse.png"
    made = plantain(
        env, "generate", "a lighthouse", "-e", "z-image-turbo", "-s", "512", "--steps", "2", "-o", str(out)
    )
    assert made.returncode == 0, made.stderr
    with Image.open(out) as image:
        assert image.size == (512, 512)


def test_pull_of_a_repo_the_hub_does_not_have(checkpoint: Path, tmp_path: Path) -> None:
    with LocalHub({REPO: checkpoint}) as hub:
        env = {
            **os.environ,
            "HF_ENDPOINT": hub.endpoint,
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_CACHE": str(tmp_path),
        }
        result = plantain(env, "pull", "qwen-image")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: could not download Qwen/Qwen-Image-2512 for engine qwen-image: the hub has no such "
        "repository (or it is private: set HF_TOKEN), see the repos setting"
    )
