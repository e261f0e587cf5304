"""What batching gains at concurrency, and what its window costs a lone request (tiny engine).

    python bench/batching.py --tier 512 --concurrency 8 --requests 4 --repeats 3

Two measurements against a live in-process server (the task API, ``Prefer: wait``):

* throughput: ``--concurrency`` clients, each sending ``--requests`` requests one after another,
  with batching off (``batch_max_images=1``) and on (the defaults); images/s over the whole
  repeat and the p50 latency of a request, as a client sees it;
* a lone request: ``--lone`` requests one at a time, with ``batch_window_ms=0`` and with the
  default window; the p50 latency.

Each figure is printed per repeat, then as min/median/max over the repeats, with the ratio of the
medians. Every server runs one warm-up request first (engine load and first-call costs).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from plantain.engines import tiny
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, build_once

Figures = tuple[float, float]  # (images/s, p50 latency in seconds)


def request_once(client: httpx.Client, base: str, tier: str, index: int) -> float:
    """One request's latency, submission to answer with its image."""
    body = {"model": "tiny", "input": {"prompt": f"request {index}", "resolution": tier, "seed": index}}
    started = time.perf_counter()
    response = client.post(f"{base}/v1/tasks", json=body, headers={"Prefer": "wait=60"}, timeout=120)
    task = response.json()
    if response.status_code == 202:  # still queued after the longest wait: follow it to its end
        with client.stream("GET", f"{base}/v1/tasks/{task['id']}/events", timeout=600) as events:
            for _ in events.iter_lines():
                pass
        task = client.get(f"{base}/v1/tasks/{task['id']}").json()
    if task.get("status") != "succeeded":
        raise RuntimeError(f"request {index} did not succeed: {response.status_code} {task}")
    return time.perf_counter() - started


def closed_loop(base: str, tier: str, concurrency: int, requests: int) -> Figures:
    """``concurrency`` clients each sending ``requests`` in turn; (images/s, p50 latency)."""

    def client_run(client_index: int) -> list[float]:
        with httpx.Client() as client:
            return [request_once(client, base, tier, client_index * requests + n) for n in range(requests)]

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = [latency for run in pool.map(client_run, range(concurrency)) for latency in run]
    wall = time.perf_counter() - started
    return len(latencies) / wall, statistics.median(latencies)


def lone(base: str, tier: str, count: int) -> Figures:
    """``count`` requests one at a time; (images/s, p50 latency)."""
    with httpx.Client() as client:
        latencies = [request_once(client, base, tier, n) for n in range(count)]
    return 1 / statistics.mean(latencies), statistics.median(latencies)


def measure(settings: Settings, repeats: int, tier: str, workload: Callable[[str], Figures]) -> list[Figures]:
    with LiveServer(create_app(settings)) as server:
        server.wait_ready(timeout=300)
        with httpx.Client() as client:
            request_once(client, server.url, tier, 10**6)  # warm-up
        return [workload(server.url) for _ in range(repeats)]


def spread(values: list[float]) -> str:
    return f"min {min(values):.3f}, median {statistics.median(values):.3f}, max {max(values):.3f}"


def report(label: str, figures: list[Figures]) -> None:
    for repeat, (rate, p50) in enumerate(figures, start=1):
        print(f"  {label} repeat {repeat}: {rate:.2f} images/s, p50 {p50 * 1000:.0f} ms")
    print(f"  {label}: images/s {spread([f[0] for f in figures])}; p50 s {spread([f[1] for f in figures])}")


def ratio(on: list[Figures], off: list[Figures], index: int) -> float:
    return statistics.median(f[index] for f in on) / statistics.median(f[index] for f in off)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tier", default="512", help="size tier of every request (512, 1K, ...)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=4, help="requests per client per repeat")
    parser.add_argument("--lone", type=int, default=10, help="lone requests per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="plantain-bench-"))
    tiny_dir = build_once(tiny.build_checkpoint, tiny.checkpoint_dir(Settings(data_dir=work)))
    count = 0

    def settings(**fields: Any) -> Settings:
        nonlocal count
        count += 1
        base = {"data_dir": work / f"server-{count}", "default_engine": "tiny", "weights": {"tiny": tiny_dir}}
        return Settings(**{**base, **fields})

    defaults = Settings(data_dir=work)
    print(
        f"tiny, tier {args.tier}, concurrency {args.concurrency} x {args.requests} requests, "
        f"{args.repeats} repeats; default batch_max_images {defaults.batch_max_images}, "
        f"batch_window_ms {defaults.batch_window_ms:g}"
    )

    def loaded(base: str) -> Figures:
        return closed_loop(base, args.tier, args.concurrency, args.requests)

    def alone(base: str) -> Figures:
        return lone(base, args.tier, args.lone)

    off = measure(settings(batch_max_images=1), args.repeats, args.tier, loaded)
    report("batching off", off)
    on = measure(settings(), args.repeats, args.tier, loaded)
    report("batching on ", on)
    print(f"  gain: images/s x{ratio(on, off, 0):.2f}, p50 latency x{ratio(on, off, 1):.2f}")
    no_window = measure(settings(batch_window_ms=0), args.repeats, args.tier, alone)
    report("lone, window 0      ", no_window)
    window = measure(settings(), args.repeats, args.tier, alone)
    report("lone, default window", window)
    added = statistics.median(f[1] for f in window) - statistics.median(f[1] for f in no_window)
    print(f"  lone p50 latency x{ratio(window, no_window, 1):.3f} ({added * 1000:+.1f} ms)")


if __name__ == "__main__":
    main()
