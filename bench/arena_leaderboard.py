"""What a leaderboard costs as votes pile up: ``GET /v1/arena/leaderboard`` replays every vote.

    .venv/bin/python bench/arena_leaderboard.py                  # 100, 1000 and 10000 votes, 5 repeats
    .venv/bin/python bench/arena_leaderboard.py --votes 1000 --repeats 3

The leaderboard is computed on each request, not kept: the votes are read from the task store
(SQLite here, in a temporary data directory) in the order cast, rated by online Elo, and bounded
by 200 bootstrap rounds (plantain/arena/rating.py). For each vote count, a store is filled with
that many voted pairs among 4 contestants (the first better than the rest, so the votes are not
noise, in 3 categories), then the two halves are timed ``--repeats`` times each: ``read``
(``ArenaStore.voted_pairs``) and ``rate`` (``leaderboard`` over them). Prints min/median/max ms
for each, and the total's ratio to the 100-vote total, so growth is read as a ratio measured in
one run. The figures are for one request; the page asks again after each vote.

Measured (2-core CPU, idle, default arguments, 2026-12-05; medians): 100 votes read 0.5 ms, rate
1.4 ms; 1,000 votes 5.7 + 12.4 ms (9.3x); 10,000 votes 61.9 + 117.8 ms (92.4x): linear. Full table
in docs/performance.md, "Arena".
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from plantain.arena.rating import CHOICES, Vote, leaderboard
from plantain.storage.arena import ArenaStore
from plantain.storage.db import open_database

CONTESTANTS = ("flux2-klein-4b", "qwen-image", "z-image-turbo", "z-image-turbo:4-steps")
CATEGORIES = ("portrait", "product", "text-rendering")


def filled_store(data_dir: Path, count: int, seed: int = 0) -> ArenaStore:
    """A store holding ``count`` voted pairs; contestant 0 wins two thirds of its matches."""
    rng = random.Random(seed)
    store = ArenaStore(open_database(data_dir))
    for index in range(count):
        left, right = rng.sample(CONTESTANTS, 2)
        favoured = "left" if left == CONTESTANTS[0] else "right" if right == CONTESTANTS[0] else None
        choice = favoured if favoured and rng.random() < 2 / 3 else rng.choice(CHOICES)
        pair = store.create_pair(
            prompt=f"prompt {index}",
            category=CATEGORIES[index % len(CATEGORIES)],
            left_contestant=left,
            right_contestant=right,
            left_task=f"task_l{index}",
            right_task=f"task_r{index}",
            seed=index,
        )
        store.vote(pair.id, choice, None)
    return store


def timed(work: Callable[[], object], repeats: int) -> list[float]:
    found = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        found.append((time.perf_counter() - start) * 1000)
    return found


def as_votes(store: ArenaStore) -> list[Vote]:
    return [
        Vote(p.left_contestant, p.right_contestant, p.choice or "tie", p.category)
        for p in store.voted_pairs()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--votes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    baseline = None
    print(f"{'votes':>6}  {'read ms (min/median/max)':>26}  {'rate ms (min/median/max)':>26}  x100")
    for count in args.votes:
        with tempfile.TemporaryDirectory() as directory:
            store = filled_store(Path(directory), count)
            votes = as_votes(store)
            leaderboard(votes, CONTESTANTS)  # warm numpy up (not counted)
            read = timed(store.voted_pairs, args.repeats)
            rate = timed(functools.partial(leaderboard, votes, CONTESTANTS), args.repeats)
        total = statistics.median(read) + statistics.median(rate)
        baseline = baseline or total
        print(f"{count:>6}  {_spread(read):>26}  {_spread(rate):>26}  {total / baseline:5.1f}")


def _spread(values: list[float]) -> str:
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


if __name__ == "__main__":
    main()
