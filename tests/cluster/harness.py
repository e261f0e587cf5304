"""A cluster on this machine, as docs/deploy.md describes one: front doors (``plantain serve
--no-worker``) and workers (``plantain worker --engine tiny``) as separate processes sharing one
PostgreSQL database and one S3 bucket, started and killed by the tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx

from plantain.provenance.policy import ProvenancePolicy
from plantain.settings import Settings
from plantain.testing import free_port

START_SECONDS = 90.0  # a process imports torch and loads the tiny engine on 2 busy cores


class Member:
    """One process of the cluster; its output goes to ``log``."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._out: IO[bytes] = open(log, "wb")  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen(command, env=env, stdout=self._out, stderr=subprocess.STDOUT)

    def wait_for_line(self, text: str, timeout: float = START_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not say {text!r}:\n{self.tail()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye, as an OOM kill or a lost machine."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._out.close()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


class FrontDoor(Member):
    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "plantain", "serve", "--no-worker", "--engine", "tiny"]
        super().__init__(name, [*command, "--port", str(self.port)], env, log)

    def wait_ready(self, timeout: float = START_SECONDS) -> FrontDoor:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not become ready:\n{self.tail()}")
            time.sleep(0.1)


class Cluster:
    """Processes sharing ``database_url`` and the S3 bucket of ``s3_settings``. They share one
    data directory too (the tiny checkpoint, the signing identity and watermark tag made once
    here), as processes on one machine would; on several machines they would share the settings
    instead (docs/deploy.md)."""

    def __init__(self, root: Path, models: Path, database_url: str, s3_settings: dict[str, Any]) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.data_dir.mkdir(parents=True)
        (self.data_dir / "models").symlink_to(models)
        ProvenancePolicy(Settings(data_dir=self.data_dir))  # the identity, before anyone races to make it
        self.secret = "whsec_" + "cGxhbnRhaW4tY2x1c3Rlci10ZXN0cy1zZWNyZXQ="
        self.public_port = free_port()
        self.env = self._env(database_url, s3_settings)
        self.members: list[Member] = []

    def _env(self, database_url: str, s3_settings: dict[str, Any]) -> dict[str, str]:
        settings = {
            "data_dir": str(self.data_dir),
            "database_url": database_url,
            "lease_seconds": "3",
            "webhook_secret": self.secret,
            "allowed_hosts": json.dumps(["127.0.0.1"]),
            "webhook_retry_seconds": "0.2",
            "public_url": f"http://127.0.0.1:{self.public_port}",  # one address for every process
            "drain_seconds": "2",
            **{name: str(value) for name, value in s3_settings.items()},
        }
        env = {name: value for name, value in os.environ.items() if not name.startswith("PLANTAIN_")}
        env |= {f"PLANTAIN_{name.upper()}": value for name, value in settings.items()}
        return env | {"OMP_NUM_THREADS": "1"}  # two workers, two front doors, two cores

    def front_door(self) -> FrontDoor:
        door = FrontDoor(f"front-door-{len(self.members)}", self.env, self._log())
        self.members.append(door)
        return door.wait_ready()

    def worker(self) -> Member:
        command = [sys.executable, "-m", "plantain", "worker", "--engine", "tiny"]
        member = Member(f"worker-{len(self.members)}", command, self.env, self._log())
        self.members.append(member)
        member.wait_for_line("worker running tiny")
        return member

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def _log(self) -> Path:
        return self.root / f"process-{len(self.members)}.log"
