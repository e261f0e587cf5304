"""What a route and a remote provider add to a request's latency, on the tiny engine.

    .venv/bin/python bench/providers.py                 # 20 requests per path, 3 repeats
    .venv/bin/python bench/providers.py --requests 10 --repeats 2

Two Plantain servers in this process, each with the tiny engine: A (the one measured) and B (a
remote, reached by A through the Gemini provider). Each path is a synchronous task (``Prefer:
wait``, 512 tier, 2 steps) on A, timed at the client:

- ``direct``: the tiny engine on A;
- ``route``: a route whose only member is tiny (what routing itself costs);
- ``failover``: a route over flux2-klein-4b, whose weights are not here, then tiny (what a failed
  member costs before the next serves);
- ``provider``: the Gemini provider to B (the HTTP hop, base64 both ways, B's own run);
- ``remote direct``: the same request straight to B, the provider's baseline.

After five warm-up requests per path, each repeat sends one request per path in turn, ``--requests``
times (so a drift of the machine's speed hits every path alike); prints min/median/max ms
per path over all requests, and the ratio of each path's median to ``direct``'s (and
``provider``'s to ``remote direct``'s), measured in the same run. Both servers share this
machine's cores, so the provider's figure includes B's run on the same CPU.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from plantain.engines import tiny
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, build_once

PATHS = ("direct", "route", "failover", "provider", "remote direct")
WARM_UP = 5  # requests per path before timing: the first runs of a size are slower


def timed(url: str, model: str, index: int) -> float:
    body = {"model": model, "input": {"prompt": f"a lighthouse {index}", "resolution": "512", "steps": 2}}
    started = time.perf_counter()
    answer = httpx.post(f"{url}/v1/tasks", json=body, headers={"Prefer": "wait=120"}, timeout=180)
    elapsed = (time.perf_counter() - started) * 1000
    task = answer.json()
    if task.get("status") != "succeeded":
        raise SystemExit(f"{model} on {url}: {answer.status_code} {answer.text[:300]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("plantain.providers.routing").setLevel(logging.ERROR)  # one line per failover
    work = Path(tempfile.mkdtemp(prefix="plantain-bench-"))
    tiny_dir = build_once(tiny.build_checkpoint, tiny.checkpoint_dir(Settings(data_dir=work)))
    base = {"default_engine": "tiny", "weights": {"tiny": tiny_dir}, "hub_cache": work / "hub"}
    remote_settings = Settings(data_dir=work / "b", **base)
    with LiveServer(create_app(remote_settings)) as remote:
        remote.wait_ready()
        cloud = {"kind": "gemini", "model": "gemini-2.5-flash-image", "base_url": remote.url, "retries": 0}
        settings = Settings(
            data_dir=work / "a",
            providers={"cloud": cloud},
            routes={"route": ["tiny"], "failover": ["flux2-klein-4b", "tiny"]},
            **base,
        )
        with LiveServer(create_app(settings)) as local:
            local.wait_ready()
            targets = {
                "direct": (local.url, "tiny"),
                "route": (local.url, "route"),
                "failover": (local.url, "failover"),
                "provider": (local.url, "cloud"),
                "remote direct": (remote.url, "tiny"),
            }
            for url, model in targets.values():
                for index in range(WARM_UP):
                    timed(url, model, -1 - index)
            times: dict[str, list[float]] = {path: [] for path in PATHS}
            for repeat in range(args.repeats):
                for index in range(args.requests):  # paths take turns: a drift hits them alike
                    for path, (url, model) in targets.items():
                        times[path].append(timed(url, model, index))
                print(f"repeat {repeat + 1} of {args.repeats} done")
    medians = {path: statistics.median(values) for path, values in times.items()}
    for path, values in times.items():
        baseline = "remote direct" if path == "provider" else "direct"
        print(
            f"{path:>14}: min {min(values):7.1f} ms, median {medians[path]:7.1f} ms, "
            f"max {max(values):7.1f} ms"
            f"  ({medians[path] / medians[baseline]:.2f}x {baseline}'s median; n={len(values)})"
        )


if __name__ == "__main__":
    main()
