"""Ratings from arena votes: online Elo with bootstrap confidence intervals.

This is how LMArena (Chatbot Arena) and Lumenfall rank image models from blind pairwise votes:
every vote moves the two contestants' Elo ratings towards the result, so a rating reads as "how
often this one is preferred", on the familiar chess scale (400 points = 10:1 odds). Elo alone
depends on the order of the votes and says nothing of how sure it is, so the leaderboard also
resamples the votes (bootstrap) and reports the 2.5th/97.5th percentiles of the ratings as a 95%
confidence interval; two contestants whose intervals overlap share a rank, as on LMArena.

A tie and a "both bad" vote are both a draw (half a point each), as LMArena counts "both bad":
neither result was preferred. Pure functions on plain data: storage and HTTP live elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

CHOICES = ("left", "right", "tie", "both_bad")

# The score of the left contestant for each choice (the right one scores 1 - that).
# Below this many votes a contestant's interval is not given: resampling one vote (or a few that
# agree) gives the same rating every round, an interval of zero width that would claim a
# certainty a handful of votes cannot have. Without one it is unbounded for ranking, so it
# shares a rank with everyone until the votes can tell it apart.
MIN_VOTES_FOR_INTERVAL = 5
_LEFT_SCORE = {"left": 1.0, "right": 0.0, "tie": 0.5, "both_bad": 0.5}


@dataclass(frozen=True)
class Vote:
    """One vote between two contestants (engine names), in the order votes were cast."""

    left: str
    right: str
    choice: str
    category: str

    def __post_init__(self) -> None:
        if self.choice not in CHOICES:
            raise ValueError(f"choice {self.choice!r} is not one of {', '.join(CHOICES)}")


def winner_of(left: str, right: str, choice: str) -> str:
    """The winning contestant's name, or ``""`` for a tie or a "both bad" vote."""
    if choice not in CHOICES:
        raise ValueError(f"choice {choice!r} is not one of {', '.join(CHOICES)}")
    return left if choice == "left" else right if choice == "right" else ""


@dataclass(frozen=True)
class Standing:
    """One row of the leaderboard: a contestant's rating, its 95% interval and its vote counts."""

    rank: int
    contestant: str
    rating: float
    ci_low: float | None  # None: too few votes to bound (MIN_VOTES_FOR_INTERVAL)
    ci_high: float | None
    wins: int
    losses: int
    ties: int
    both_bad: int
    votes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "contestant": self.contestant,
            "rating": round(self.rating, 1),
            "ci_low": None if self.ci_low is None else round(self.ci_low, 1),
            "ci_high": None if self.ci_high is None else round(self.ci_high, 1),
            "wins": self.wins,
            "losses": self.losses,
            "ties": self.ties,
            "both_bad": self.both_bad,
            "votes": self.votes,
        }


def _names(votes: Sequence[Vote], contestants: Iterable[str]) -> list[str]:
    """Every contestant served now, then those only found in votes (no longer served), once each."""
    names = dict.fromkeys(contestants)
    for vote in votes:
        names.setdefault(vote.left)
        names.setdefault(vote.right)
    return list(names)


def elo(
    votes: Iterable[Vote],
    contestants: Iterable[str],
    *,
    k: float = 32.0,
    base: float = 1000.0,
    scale: float = 400.0,
) -> dict[str, float]:
    """Online Elo over ``votes`` in the order given (LMArena's ``compute_online_elo``).

    Everyone starts at ``base``; a vote moves the pair by ``k`` times the surprise (score minus
    the expected score ``1 / (1 + 10 ** ((other - own) / scale))``). Ties and "both bad" score
    half a point each. Every name in ``contestants`` and in the votes is in the result.
    """
    votes = list(votes)
    ratings = dict.fromkeys(_names(votes, contestants), float(base))
    for vote in votes:
        left, right = ratings[vote.left], ratings[vote.right]
        expected = 1.0 / (1.0 + 10.0 ** ((right - left) / scale))
        delta = k * (_LEFT_SCORE[vote.choice] - expected)
        ratings[vote.left] = left + delta
        ratings[vote.right] = ratings[vote.right] - delta
    return ratings


def _bootstrap(
    left: npt.NDArray[np.intp],
    right: npt.NDArray[np.intp],
    score: npt.NDArray[np.float64],
    count: int,
    rounds: int,
    rng: np.random.Generator,
    *,
    k: float,
    base: float,
    scale: float,
) -> npt.NDArray[np.float64]:
    """Elo of ``count`` contestants over ``rounds`` resamples of the votes: shape (rounds, count).

    Each round draws as many votes as there are, with replacement and in random order. Elo is
    sequential within a round, so the rounds run side by side: one numpy step per vote position
    updates every round at once (1000 votes x 200 rounds in a few tens of milliseconds).
    """
    size = len(score)
    draws = rng.integers(0, size, size=(size, rounds))  # vote position x round
    offsets = np.arange(rounds, dtype=np.intp) * count
    left_at = np.ascontiguousarray(left[draws] + offsets)  # flat index into ratings per round
    right_at = np.ascontiguousarray(right[draws] + offsets)
    score_at = np.ascontiguousarray(score[draws])
    ratings = np.full(rounds * count, float(base))
    for step in range(size):
        li, ri = left_at[step], right_at[step]
        expected = 1.0 / (1.0 + np.power(10.0, (ratings[ri] - ratings[li]) / scale))
        delta = k * (score_at[step] - expected)
        ratings[li] += delta  # each round's indices are distinct: no lost updates
        ratings[ri] -= delta
    return ratings.reshape(rounds, count)


def leaderboard(
    votes: Iterable[Vote],
    contestants: Iterable[str],
    *,
    category: str | None = None,
    rounds: int = 200,
    seed: int = 0,
    k: float = 32,
    base: float = 1000,
) -> list[Standing]:
    """The standings over ``votes`` (only those in ``category`` when given), best first.

    The rating is Elo over the votes in the order cast; ``ci_low``/``ci_high`` are the 2.5th and
    97.5th percentiles of Elo over ``rounds`` bootstrap resamples (seeded, so the same votes give
    the same intervals). Every name in ``contestants`` is listed, at ``base`` with no votes, and
    so is every contestant found only in votes (one no longer served). Sorted by rating, then
    name; a contestant's rank is 1 plus the number of contestants whose whole interval lies above
    its own, so contestants the votes cannot tell apart share a rank (LMArena's rank with CIs).
    A contestant with fewer than :data:`MIN_VOTES_FOR_INTERVAL` votes has no interval (None) and
    counts as unbounded for ranks.
    """
    if rounds < 0:
        raise ValueError(f"rounds {rounds} is negative")
    chosen = [v for v in votes if category is None or v.category == category]
    names = _names(chosen, contestants)
    point = elo(chosen, names, k=k, base=base)

    counts = {name: {"wins": 0, "losses": 0, "ties": 0, "both_bad": 0} for name in names}
    for vote in chosen:
        if vote.choice in ("left", "right"):
            winner, loser = (vote.left, vote.right) if vote.choice == "left" else (vote.right, vote.left)
            counts[winner]["wins"] += 1
            counts[loser]["losses"] += 1
        else:
            kind = "ties" if vote.choice == "tie" else "both_bad"
            counts[vote.left][kind] += 1
            counts[vote.right][kind] += 1

    if chosen and rounds > 0:
        index = {name: i for i, name in enumerate(names)}
        left = np.array([index[v.left] for v in chosen], dtype=np.intp)
        right = np.array([index[v.right] for v in chosen], dtype=np.intp)
        score = np.array([_LEFT_SCORE[v.choice] for v in chosen], dtype=np.float64)
        samples = _bootstrap(
            left, right, score, len(names), rounds, np.random.default_rng(seed), k=k, base=base, scale=400.0
        )
        low, high = np.percentile(samples, [2.5, 97.5], axis=0)
        intervals: dict[str, tuple[float | None, float | None]] = {
            name: (float(low[i]), float(high[i])) for name, i in index.items()
        }
    else:
        intervals = {name: (point[name], point[name]) for name in names}

    for name in names:
        if sum(counts[name].values()) < MIN_VOTES_FOR_INTERVAL:
            intervals[name] = (None, None)
    bounds = {
        name: (-math.inf if low is None else low, math.inf if high is None else high)
        for name, (low, high) in intervals.items()
    }
    order = sorted(names, key=lambda name: (-point[name], name))
    standings = []
    for name in order:
        ci_low, ci_high = intervals[name]
        c = counts[name]
        standings.append(
            Standing(
                rank=1 + sum(1 for other in names if bounds[other][0] > bounds[name][1]),
                contestant=name,
                rating=point[name],
                ci_low=ci_low,
                ci_high=ci_high,
                wins=c["wins"],
                losses=c["losses"],
                ties=c["ties"],
                both_bad=c["both_bad"],
                votes=sum(c.values()),
            )
        )
    return standings
