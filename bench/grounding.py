"""What search grounding adds to a request's latency, on the tiny engine, with the planner off.

    .venv/bin/python bench/grounding.py                 # 10 requests per path, 3 repeats
    .venv/bin/python bench/grounding.py --requests 5 --repeats 2

A small SearXNG-compatible search API runs in this process on 127.0.0.1: ``GET /search?...&
format=json`` answers five web results (``url``, ``title``, ``content``), or, with
``categories=images``, eight image results whose ``img_src`` point back at it, solid-colour PNGs of
1024x1024 (a photo-sized candidate to decode), with ``url`` and ``title``. Each path is a
synchronous task (``POST /v1/tasks``, ``Prefer: wait=60``, model ``tiny``, 512 tier, 2 steps, the
seed the request's index) on a live Plantain server, timed at the client:

- ``plain``: no grounding (a server without a search provider);
- ``images``: ``input.grounding: true`` on a server with ``search_images=4`` and
  ``grounding_references=1``: a web search, an image search, four images fetched and decoded,
  ranked by the reranker (``tiny``: CLIP's code path, random weights), the best one given to the
  engine as a reference (so the run is an edit, planned again, alone);
- ``web only``: ``input.grounding: true`` with ``search_images=0``: one web search, no image
  fetched (without the planner the facts are not written into the prompt, so this is the search
  round trip and the bookkeeping).

The planner is off, so the query is the prompt and no language model runs: the figures are what
search, fetch, rerank and re-plan cost, not the LLM's queries and rewrite (bench/planner_latency.py
measures those). The configurations differ in settings, so each has its own server, one after the
other; each is warmed up with one request (not counted), then gets ``--repeats`` × ``--requests``
requests. Prints min/median/max ms per path over all its requests, the ratio of each median to
``plain``'s, and the median of the tasks' ``usage.search_seconds``. The search API is on this
machine, so a real provider's network round trip (SearXNG itself asks upstream engines) and real
image hosts come on top; the reranker's real weights (CLIP
ViT-B/32) cost more than the tiny one per image.

Measured (2-core CPU, default arguments, 2026-12-05, n = 30 per path): plain 102.7 / 117.1 /
149.5 ms (min / median / max); with images 555.6 / 586.5 / 647.6 ms (5.01x plain's median, +469
ms; median search_seconds 0.188); web only 114.8 / 123.9 / 144.5 ms (1.06x, +6.8 ms; 0.023). Of
the images path's extra time, the searches, four fetches and decodes of 1024x1024 PNGs and the
rerank are 0.19 s (``search_seconds``); the rest is the engine's run becoming an edit with a
reference image, planned again and run alone. Run it on an idle machine: another process on the
two cores inflated every path several times over in one run.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from PIL import Image

from plantain.engines import tiny
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import BackgroundServer, LiveServer, build_once, reply

PROMPT = "the Sagrada Familia at dawn, seen from the park"
SIZE = (1024, 1024)  # each image candidate: decoded and ranked as a photo would be
COLOURS = {
    "red": (200, 40, 30), "green": (40, 180, 60), "blue": (30, 60, 210), "ochre": (200, 150, 40),
    "grey": (120, 120, 120), "teal": (20, 150, 150), "violet": (130, 50, 180), "sand": (220, 200, 150),
}  # fmt: skip
WEB = [
    {"url": f"https://example.org/page-{n}", "title": f"Page {n}", "content": f"What page {n} says."}
    for n in range(5)
]
# path: the server's settings beyond the base, and whether its requests ask for grounding
PATHS: dict[str, tuple[dict[str, Any], bool]] = {
    "plain": ({}, False),
    "images": ({"search_images": 4, "grounding_references": 1}, True),
    "web only": ({"search_images": 0, "grounding_references": 1}, True),
}


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", SIZE, colour).save(buffer, format="PNG")
    return buffer.getvalue()


class SearchAPI(BackgroundServer):
    """SearXNG's JSON search and the images its results point at, on 127.0.0.1."""

    def __init__(self) -> None:
        self.files = {f"/img/{name}.png": png(colour) for name, colour in COLOURS.items()}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, content_type, body = api.answer(self.path)
                reply(self, status, body, {"Content-Type": content_type})

        super().__init__(Handler)

    def answer(self, target: str) -> tuple[int, str, bytes]:
        split = urlsplit(target)
        if split.path in self.files:
            return 200, "image/png", self.files[split.path]
        query = {name: values[0] for name, values in parse_qs(split.query).items()}
        if split.path != "/search" or query.get("format") != "json":
            return 404, "text/plain", b"not found"
        if query.get("categories") == "images":
            results = [
                {
                    "img_src": f"{self.base}/img/{name}.png",
                    "url": f"https://example.org/{name}",
                    "title": name,
                }
                for name in COLOURS
            ]
        else:
            results = WEB
        body = {"query": query.get("q", ""), "number_of_results": len(results), "results": results}
        return 200, "application/json", json.dumps(body).encode()


def timed(url: str, path: str, grounding: bool, index: int) -> tuple[float, float]:
    """One task's client-side ms and its ``usage.search_seconds``; exits if it did not run as
    ``path`` should (failed, or grounded without the references or sources it should have)."""
    body: dict[str, Any] = {
        "model": "tiny",
        "input": {"prompt": PROMPT, "resolution": "512", "steps": 2, "seed": index},
    }
    if grounding:
        body["input"]["grounding"] = True
    started = time.perf_counter()
    answer = httpx.post(f"{url}/v1/tasks", json=body, headers={"Prefer": "wait=60"}, timeout=120)
    elapsed = (time.perf_counter() - started) * 1000
    task = answer.json()
    if task.get("status") != "succeeded":
        raise SystemExit(f"{path}: {answer.status_code} {answer.text[:300]}")
    found = (task.get("output") or {}).get("grounding")
    if grounding:
        used = [ref for ref in found["references"] if ref["used"]] if found else []
        if not found or not found["sources"] or len(used) != (1 if path == "images" else 0):
            raise SystemExit(f"{path}: unexpected grounding {json.dumps(found)[:300]}")
    return elapsed, float(task["usage"].get("search_seconds", 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="plantain-bench-"))
    tiny_dir = build_once(tiny.build_checkpoint, tiny.checkpoint_dir(Settings(data_dir=work)))
    times: dict[str, list[float]] = {path: [] for path in PATHS}
    searched: dict[str, list[float]] = {path: [] for path in PATHS}
    with SearchAPI() as search:
        for path, (extra, grounding) in PATHS.items():
            fields: dict[str, Any] = {
                "data_dir": work / path.replace(" ", "-"),
                "hub_cache": work / "hub",
                "default_engine": "tiny",
                "weights": {"tiny": tiny_dir},
                "planner": "off",
            }
            if grounding:
                fields |= {
                    "search_provider": "searxng",
                    "search_url": search.base,
                    "allowed_hosts": [search.host_port],  # the image candidates are on 127.0.0.1
                    "grounding_reranker": "tiny",
                    **extra,
                }
            with LiveServer(create_app(Settings(**fields))) as live:
                url = live.wait_ready()
                timed(url, path, grounding, 999_999)  # warm-up (its own seed), not counted
                for repeat in range(args.repeats):
                    for index in range(args.requests):
                        elapsed, seconds = timed(url, path, grounding, index)
                        times[path].append(elapsed)
                        searched[path].append(seconds)
                    print(f"{path}: repeat {repeat + 1} of {args.repeats} done")
    medians = {path: statistics.median(values) for path, values in times.items()}
    for path, values in times.items():
        print(
            f"{path:>8}: min {min(values):7.1f} ms, median {medians[path]:7.1f} ms, "
            f"max {max(values):7.1f} ms  ({medians[path] / medians['plain']:.2f}x plain's median, "
            f"{medians[path] - medians['plain']:+.1f} ms; median search_seconds "
            f"{statistics.median(searched[path]):.3f}; n={len(values)})"
        )


if __name__ == "__main__":
    main()
