"""Scale-out on one PostgreSQL: images/s of the tiny engine with 1, 2 and 4 worker processes, the
cost of the task store per claim and per submission, and the queue's and the events' latency.

    .venv/bin/python bench/scaling.py                        # 1,2,4 workers, 60 tasks, 3 repeats
    .venv/bin/python bench/scaling.py --workers 1,2 --tasks 20 --repeats 2 --events 0

Starts a throwaway PostgreSQL (``tests.services``; needs Debian's postgresql package). For each
worker count N: a fresh database, N ``plantain worker --engine tiny`` processes (as
``tests/cluster/harness.py`` starts them, with OMP_NUM_THREADS=1 and MKL_NUM_THREADS=1: one torch
thread each), then M tasks (512px, 2 steps) queued straight into a ``TaskStore`` on that database
(no front door: it measures the workers and the store); images/s = M / (the last completed_at -
the first submission). Batching is off by default (``--batch 1``) so that every task is one claim.
Each worker count runs ``--repeats`` times after a warm-up; prints min/median/max images/s and the
ratio of medians to one worker's. Workers are CPU-bound here: on a machine with C cores N workers
cannot scale past about C x (on GPUs each worker has its own device).

Then, from the 1-worker runs: the first task's queue wait (an idle worker's pickup, bounded by
poll_seconds) and the gap between one task's completed_at and the next one's started_at. Then
per-call ``store.create`` and ``store.runs.claim_next`` on PostgreSQL and on the embedded SQLite
with no worker running. Then, unless ``--events 0``, a front door (``plantain serve
--no-worker``): ms from a 'completed' event's created_at to its arrival on an SSE stream.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.services, tests.cluster
from tests.cluster.harness import START_SECONDS, Cluster, FrontDoor, Member
from tests.services import PostgreSQL

from plantain.engines import tiny
from plantain.settings import Settings
from plantain.storage.tasks import NewTask, TaskStore
from plantain.testing import build_once
from plantain.types import EngineOptions, ImageRequest, Task

WORKER = [sys.executable, "-m", "plantain", "worker", "--engine", "tiny"]


def new_task(steps: int) -> NewTask:
    request = ImageRequest(prompt="a kite", size="512", options=EngineOptions(steps=steps))
    return NewTask(request=request, model="tiny", engine="tiny", source="tasks")


def spread(values: list[float]) -> str:
    return f"{min(values):9.2f} {statistics.median(values):9.2f} {max(values):9.2f}"


@contextmanager
def cluster_of(root: Path, models: Path, url: str, workers: int, batch: int) -> Iterator[Cluster]:
    """``workers`` worker processes on the database ``url``, started together; stopped after."""
    cluster = Cluster(root, models, url, {})
    cluster.env |= {"MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PLANTAIN_BATCH_MAX_IMAGES": str(batch)}
    TaskStore(cluster.data_dir, retention_seconds=3600, database_url=url).close()  # migrates it
    try:
        for number in range(workers):
            cluster.members.append(Member(f"worker-{number}", WORKER, cluster.env, root / f"w{number}.log"))
        for member in cluster.members:
            member.wait_for_line("worker running tiny", START_SECONDS * workers)
        yield cluster
    except BaseException:
        for member in cluster.members:
            print(f"--- {member.name}\n{member.tail()}", file=sys.stderr)
        raise
    finally:
        cluster.stop()  # SIGTERM, wait


def run_batch(store: TaskStore, count: int, steps: int, timeout: float = 600) -> tuple[float, list[Task]]:
    """Queue ``count`` tasks at once; (seconds from the first submission to the last completion,
    the ended tasks in submission order)."""
    started = time.time()
    ids = [store.create(new_task(steps))[0].id for _ in range(count)]
    deadline = time.monotonic() + timeout
    while True:
        tasks = [store.get(task_id) for task_id in ids]
        if all(task.finished for task in tasks):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"tasks still running after {timeout:g} s")
        time.sleep(0.2)
    failed = [task for task in tasks if task.status != "succeeded"]
    if failed:
        raise RuntimeError(f"{len(failed)} task(s) did not succeed: {failed[0].error}")
    return max(task.completed_at or 0.0 for task in tasks) - started, tasks


def gaps(tasks: list[Task]) -> list[float]:
    """ms from each task's completed_at to the next started_at (one worker; < 0: they overlap)."""
    ordered = sorted(tasks, key=lambda task: task.started_at or 0.0)
    return [
        ((after.started_at or 0.0) - (before.completed_at or 0.0)) * 1000
        for before, after in itertools.pairwise(ordered)
    ]


def event_latency(cluster: Cluster, store: TaskStore, count: int, steps: int) -> list[float]:
    """ms from each 'completed' event's created_at to its arrival at a front door's SSE stream."""
    door = FrontDoor("front-door", cluster.env, cluster.root / "door.log").wait_ready()
    cluster.members.append(door)
    latencies = []
    for _ in range(count + 1):  # the first warms the front door up
        task, _ = store.create(new_task(steps))
        with httpx.stream("GET", f"{door.url}/v1/tasks/{task.id}/events", timeout=120) as sse:
            arrived = next(time.time() for line in sse.iter_lines() if line == "event: completed")
        completed = [event for event in store.events_after(task.id) if event.type == "completed"]
        latencies.append((arrived - completed[0].created_at) * 1000)
    return latencies[1:]


def timed(call: Callable[[], object], count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def store_costs(store: TaskStore, count: int) -> tuple[list[float], list[float]]:
    """(ms per create, ms per claim_next) of ``count`` tasks, with no worker running."""
    creates = timed(lambda: store.create(new_task(2)), count)
    claims = timed(lambda: store.runs.claim_next(("tiny",)), count)
    if store.count("queued") != 0:
        raise RuntimeError("claim_next left tasks queued")
    return creates, claims


def throughput(args: argparse.Namespace, pg: PostgreSQL, work: Path) -> None:
    medians: dict[int, float] = {}
    print(f"\nthroughput: {args.tasks} tasks of 512px, {args.steps} steps, batch {args.batch}; images/s")
    print(f"{'workers':>8} {'min':>9} {'median':>9} {'max':>9} {f'x {args.workers[0]} worker':>11}")
    for workers in args.workers:
        url = pg.database(f"bench_n{workers}")
        with cluster_of(work / f"n{workers}", work / "models", url, workers, args.batch) as cluster:
            store = TaskStore(cluster.data_dir, retention_seconds=3600, database_url=url)
            run_batch(store, 2 * workers, args.steps)  # warm-up: engines' first runs
            runs = [run_batch(store, args.tasks, args.steps) for _ in range(args.repeats)]
            rates = [args.tasks / elapsed for elapsed, _ in runs]
            medians[workers] = statistics.median(rates)
            ratio = medians[workers] / medians[args.workers[0]]
            print(f"{workers:>8} {spread(rates)} {ratio:>10.2f}x", flush=True)
            if workers == 1:
                queue_overhead(runs, args.tasks)
                if args.events:
                    latency = event_latency(cluster, store, args.events, args.steps)
                    print(f"  {f'SSE event latency, {args.events} tasks':<38} {spread(latency)}")
            store.close()


def queue_overhead(runs: list[tuple[float, list[Task]]], count: int) -> None:
    first_wait = [((t[0].started_at or 0.0) - t[0].created_at) * 1000 for _, t in runs]
    run_ms = [((t.completed_at or 0.0) - (t.started_at or 0.0)) * 1000 for _, ts in runs for t in ts]
    between = [gap for _, tasks in runs for gap in gaps(tasks)]
    print(f"  {'(1 worker, ms)':<38} {'min':>9} {'median':>9} {'max':>9}")
    print(f"  {'wall per task':<38} {spread([elapsed * 1000 / count for elapsed, _ in runs])}")
    print(f"  {'run: started_at -> completed_at':<38} {spread(run_ms)}")
    print(f"  {'first task queue wait (idle pickup)':<38} {spread(first_wait)}")
    print(f"  {'completed_at -> next started_at':<38} {spread(between)}")
    print("  (< 0: the next run began while the last image was still being encoded and stored)")


def store_table(pg: PostgreSQL, work: Path, count: int) -> None:
    print(f"\ntask store, {count} tasks, no worker running; ms per call")
    print(f"{'store':<12} {'call':<12} {'min':>9} {'median':>9} {'max':>9}")
    for name, url in (("postgresql", pg.database("bench_store")), ("sqlite", None)):
        (work / name).mkdir()
        store = TaskStore(work / name, retention_seconds=3600, database_url=url)
        creates, claims = store_costs(store, count)
        store.close()
        print(f"{name:<12} {'create':<12} {spread(creates)}")
        print(f"{name:<12} {'claim_next':<12} {spread(claims)}")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=lambda text: [int(n) for n in text.split(",")], default=[1, 2, 4])
    parser.add_argument("--tasks", type=int, default=60, help="tasks per measured run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1, help="PLANTAIN_BATCH_MAX_IMAGES of the workers")
    parser.add_argument("--claims", type=int, default=200, help="tasks for the store's per-call costs")
    parser.add_argument("--events", type=int, default=10, help="tasks for the SSE event latency; 0: skip")
    return parser.parse_args()


def main() -> None:
    args = parse()
    cores = os.cpu_count() or 1
    print(f"{datetime.datetime.now().isoformat(timespec='seconds')}  python {' '.join(sys.argv)}")
    print(f"{platform.platform()}, Python {platform.python_version()}, {cores} CPU cores")
    print(f"CPU workers, one torch thread each: more than {cores} cannot scale past about {cores}x")
    with tempfile.TemporaryDirectory(prefix="plantain-scaling-") as directory:
        work = Path(directory)
        build_once(tiny.build_checkpoint, tiny.checkpoint_dir(Settings(data_dir=work)))
        pg = PostgreSQL().start()
        try:
            store_table(pg, work, args.claims)
            throughput(args, pg, work)
        finally:
            pg.stop()


if __name__ == "__main__":
    main()
