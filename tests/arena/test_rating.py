"""Arena ratings: online Elo over the votes and bootstrap intervals, ranks that tie when the votes
cannot tell two contestants apart, per-category boards, deterministic for a seed."""

from __future__ import annotations

import random

import pytest

from plantain.arena.rating import CHOICES, MIN_VOTES_FOR_INTERVAL, Standing, Vote, elo, leaderboard, winner_of


def votes(left: str, right: str, choice: str, count: int, category: str = "general") -> list[Vote]:
    return [Vote(left, right, choice, category) for _ in range(count)]


def by_name(standings: list[Standing]) -> dict[str, Standing]:
    return {s.contestant: s for s in standings}


def test_one_win_moves_each_side_by_half_k() -> None:
    assert elo(votes("a", "b", "left", 1), ["a", "b"]) == {"a": 1016.0, "b": 984.0}
    assert elo(votes("a", "b", "right", 1), ["a", "b"], k=10, base=1500) == {"a": 1495.0, "b": 1505.0}


def test_online_elo_weighs_later_votes_more() -> None:
    # a wins then b wins: the upset against the now-favoured a moves more than a's first win did.
    ratings = elo([Vote("a", "b", "left", "general"), Vote("a", "b", "right", "general")], ["a", "b"])
    expected_b = 1 / (1 + 10 ** ((1016 - 984) / 400))
    assert ratings["b"] == pytest.approx(984 + 32 * (1 - expected_b))
    assert ratings["b"] > 1000 > ratings["a"]
    assert ratings["a"] + ratings["b"] == pytest.approx(2000)


def test_ties_and_both_bad_are_draws() -> None:
    for choice in ("tie", "both_bad"):
        ratings = elo(votes("a", "b", choice, 10), ["a", "b"])
        assert ratings == {"a": 1000.0, "b": 1000.0}
    # after a win, a draw pulls the pair back together, a "both bad" exactly as much as a tie.
    win = Vote("a", "b", "left", "general")
    tie = elo([win, Vote("a", "b", "tie", "general")], ["a", "b"])
    both_bad = elo([win, Vote("a", "b", "both_bad", "general")], ["a", "b"])
    assert both_bad == tie
    assert 1000 < tie["a"] < 1016


def test_a_contestant_winning_every_vote_ranks_first_above_the_loser() -> None:
    board = leaderboard(votes("b", "a", "right", 15) + votes("a", "b", "left", 15), ["b", "a"])
    first, second = board
    assert (first.contestant, first.rank, second.contestant, second.rank) == ("a", 1, "b", 2)
    assert first.ci_low > second.ci_high
    assert first.rating > 1000 > second.rating
    assert (first.wins, first.losses, first.votes) == (30, 0, 30)
    assert (second.wins, second.losses, second.votes) == (0, 30, 30)


def test_identical_votes_give_an_interval_of_the_rating_itself() -> None:
    # Every resample of 20 copies of one vote is that same sequence: bootstrap Elo == point Elo.
    (first, second) = leaderboard(votes("a", "b", "left", 20), ["a", "b"])
    assert first.ci_low == pytest.approx(first.rating) and first.ci_high == pytest.approx(first.rating)
    assert second.ci_low == pytest.approx(second.rating) and second.ci_high == pytest.approx(second.rating)
    assert first.rating == pytest.approx(elo(votes("a", "b", "left", 20), ["a", "b"])["a"])


def test_ranks_tie_when_intervals_overlap() -> None:
    rng = random.Random(3)
    cast = votes("a", "b", "left", 6) + votes("a", "b", "right", 4)
    cast += votes("a", "c", "left", 30) + votes("b", "c", "left", 30)
    rng.shuffle(cast)
    board = by_name(leaderboard(cast, ["a", "b", "c"]))
    assert board["a"].rank == board["b"].rank == 1  # 6:4 cannot tell a from b
    assert board["a"].ci_low <= board["b"].ci_high
    assert board["c"].rank == 3  # both intervals above c's
    assert board["c"].ci_high < min(board["a"].ci_low, board["b"].ci_low)


def test_sorted_by_rating_then_name() -> None:
    board = leaderboard(votes("x", "y", "left", 3), ["m", "y", "x", "b"])
    assert [s.contestant for s in board] == ["x", "b", "m", "y"]
    assert [s.rating for s in board] == sorted((s.rating for s in board), reverse=True)


def test_no_votes_puts_everyone_at_base() -> None:
    board = leaderboard([], ["tiny:2-steps", "tiny"], base=1200)
    assert [s.to_json() for s in board] == [
        {
            "rank": 1,
            "contestant": name,
            "rating": 1200.0,
            "ci_low": None,
            "ci_high": None,
            "wins": 0,
            "losses": 0,
            "ties": 0,
            "both_bad": 0,
            "votes": 0,
        }
        for name in ("tiny", "tiny:2-steps")
    ]


def test_unvoted_and_retired_contestants_are_listed() -> None:
    cast = votes("old", "tiny", "right", 2) + votes("old", "tiny", "both_bad", 1)
    board = by_name(leaderboard(cast, ["tiny", "new"]))
    assert set(board) == {"tiny", "new", "old"}
    assert (board["new"].rating, board["new"].votes) == (1000.0, 0)
    assert (board["new"].ci_low, board["new"].ci_high) == (None, None)  # no votes, no interval
    assert (board["old"].losses, board["old"].both_bad, board["old"].votes) == (2, 1, 3)
    assert (board["tiny"].wins, board["tiny"].both_bad, board["tiny"].ties) == (2, 1, 0)


def test_category_filter() -> None:
    cast = votes("a", "b", "left", 8, "portrait") + votes("a", "b", "right", 5, "food")
    cast += votes("a", "b", "tie", 2, "portrait")
    portrait = by_name(leaderboard(cast, ["a", "b"], category="portrait"))
    assert portrait["a"].rating > portrait["b"].rating
    assert (portrait["a"].wins, portrait["a"].losses, portrait["a"].ties, portrait["a"].votes) == (
        8,
        0,
        2,
        10,
    )
    food = by_name(leaderboard(cast, ["a", "b"], category="food"))
    assert food["b"].rating > food["a"].rating and food["b"].votes == 5
    nothing = leaderboard(cast, ["a", "b"], category="text-rendering")
    assert [(s.rating, s.votes) for s in nothing] == [(1000.0, 0), (1000.0, 0)]
    overall = by_name(leaderboard(cast, ["a", "b"]))
    assert overall["a"].votes == 15


def mixed_votes(count: int, names: list[str], seed: int = 1) -> list[Vote]:
    rng = random.Random(seed)
    cast = []
    for _ in range(count):
        left, right = rng.sample(names, 2)
        cast.append(Vote(left, right, rng.choice(CHOICES), "general"))
    return cast


def test_same_seed_same_intervals_other_seed_other_intervals() -> None:
    cast = mixed_votes(200, ["a", "b", "c", "d"])
    first = leaderboard(cast, ["a", "b", "c", "d"], seed=7)
    assert leaderboard(cast, ["a", "b", "c", "d"], seed=7) == first
    other = leaderboard(cast, ["a", "b", "c", "d"], seed=8)
    assert [s.rating for s in other] == [s.rating for s in first]  # the point rating takes no seed
    assert [(s.ci_low, s.ci_high) for s in other] != [(s.ci_low, s.ci_high) for s in first]


def test_no_rounds_gives_point_intervals() -> None:
    board = leaderboard(mixed_votes(50, ["a", "b", "c"]), ["a", "b", "c"], rounds=0)
    assert all(s.ci_low == s.ci_high == s.rating for s in board)
    assert [s.rank for s in board] == [1, 2, 3]


def test_intervals_hold_most_of_the_mass_around_the_rating() -> None:
    board = leaderboard(mixed_votes(500, ["a", "b", "c"]), ["a", "b", "c"])
    for s in board:
        assert s.ci_low < s.ci_high
        assert s.ci_high - s.ci_low < 200  # 500 votes pin a rating far tighter than that


def test_to_json_rounds_ratings() -> None:
    json = Standing(2, "x", 1000.04, 990.06, 1010.549, 1, 2, 3, 4, 10).to_json()
    assert (json["rank"], json["rating"], json["ci_low"], json["ci_high"]) == (2, 1000.0, 990.1, 1010.5)
    assert (json["wins"], json["losses"], json["ties"], json["both_bad"], json["votes"]) == (1, 2, 3, 4, 10)


def test_a_vote_takes_only_the_four_choices() -> None:
    with pytest.raises(ValueError, match="'draw' is not one of left, right, tie, both_bad"):
        Vote("a", "b", "draw", "general")
    assert [winner_of("a", "b", c) for c in CHOICES] == ["a", "b", "", ""]


def test_too_few_votes_give_no_interval_and_no_rank_apart() -> None:
    """Four votes that agree resample to the same rating every round: a zero-width interval would
    claim a certainty they cannot have, so there is none and the two share rank 1."""
    few = by_name(leaderboard(votes("a", "b", "left", MIN_VOTES_FOR_INTERVAL - 1), ["a", "b"]))
    assert few["a"].rating > few["b"].rating
    assert (few["a"].ci_low, few["a"].ci_high, few["a"].rank, few["b"].rank) == (None, None, 1, 1)
    enough = by_name(leaderboard(votes("a", "b", "left", MIN_VOTES_FOR_INTERVAL), ["a", "b"]))
    assert enough["a"].ci_low is not None and (enough["a"].rank, enough["b"].rank) == (1, 2)
