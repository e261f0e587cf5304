"""How soon a webhook follows its event: a live server (tiny engine) and a local receiver.

    python bench/webhook_latency.py --tasks 20 --repeats 3

Each task asks for its ``completed`` webhook; the figure is the receiver's clock at arrival minus
the event's own timestamp (the body's ``timestamp``), so it covers the outbox write, the
deliverer's pick-up, signing, the address check and the HTTP round trip. Prints min/median/max
milliseconds per repeat.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

from plantain.engines import tiny
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, WebhookReceiver, build_once, free_port
from plantain.webhooks.signing import generate_secret


class TimedReceiver(WebhookReceiver):
    """Notes when each message arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[str, float] = {}

    def _record(self, headers: dict[str, str], body: bytes) -> int:
        self.arrived[headers["webhook-id"]] = time.time()
        return super()._record(headers, body)


def one_repeat(tasks: int, tiny_dir: Path, data_dir: Path) -> list[float]:
    port = free_port()
    settings = Settings(
        data_dir=data_dir,
        default_engine="tiny",
        weights={"tiny": tiny_dir},
        allowed_hosts=["127.0.0.1"],
        webhook_secret=generate_secret(),
        public_url=f"http://127.0.0.1:{port}",
    )
    receiver = TimedReceiver()
    with receiver, LiveServer(create_app(settings), port=port) as server:
        server.wait_ready()
        for index in range(tasks):
            body = {
                "input": {"prompt": f"task {index}", "resolution": "512", "steps": 1},
                "webhook": receiver.url,
                "webhook_events_filter": ["completed"],
            }
            httpx.post(f"{server.url}/v1/tasks", json=body, headers={"Prefer": "wait=60"}, timeout=60)
        seen = receiver.wait_for(lambda got: len(got) >= tasks, 60)
    delays = []
    for delivery in seen:
        made = datetime.fromisoformat(delivery.json()["timestamp"]).timestamp()
        delays.append((receiver.arrived[delivery.headers["webhook-id"]] - made) * 1000)
    return sorted(delays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="plantain-bench-"))
    tiny_dir = build_once(tiny.build_checkpoint, tiny.checkpoint_dir(Settings(data_dir=work)))
    for repeat in range(args.repeats):
        ms = one_repeat(args.tasks, tiny_dir, work / f"server-{repeat}")
        print(
            f"repeat {repeat + 1}: {args.tasks} completed webhooks arrived min {ms[0]:.1f} ms, "
            f"median {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms after their event"
        )


if __name__ == "__main__":
    main()
