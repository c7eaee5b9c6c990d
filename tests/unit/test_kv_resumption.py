"""Finding where a trimmed prompt resumes in the cached tokens (pure; no model)."""

from __future__ import annotations

import numpy as np
import pytest

from voiceagent.backends.llama_cpp import _common_prefix, _longest_resumption

pytestmark = pytest.mark.unit

OPEN, USER, BOT, CLOSE = 1, 2, 3, 4  # template tokens: every message opens the same way


def message(role: int, *words: int) -> list[int]:
    return [OPEN, role, *words, CLOSE]


def ids(*parts: list[int]) -> np.ndarray:
    return np.array([token for part in parts for token in part], dtype=np.intc)


SYSTEM = message(9, 90, 91)
TURN_1 = message(USER, 10, 11) + message(BOT, 12, 13, 14)
TURN_2 = message(USER, 20, 21) + message(BOT, 22, 23)
TURN_3 = message(USER, 30) + message(BOT, 31, 32)


def test_dropped_oldest_turn_is_the_gap_and_the_rest_is_kept() -> None:
    cached = ids(SYSTEM, TURN_1, TURN_2, TURN_3)
    wanted = ids(SYSTEM, TURN_2, TURN_3, message(USER, 40))
    start = len(SYSTEM) + 2  # the common prefix ends inside the first user message's header
    gap, kept = _longest_resumption(cached, wanted, start)
    assert cached[start + gap : start + gap + kept].tolist() == wanted[start : start + kept].tolist()
    assert gap == len(TURN_1)
    assert kept == len(TURN_2) + len(TURN_3) - 2


def test_the_longest_match_wins_over_the_first() -> None:
    # The first new token (20) also comes in the dropped turn, where only it matches.
    cached = ids(SYSTEM, message(USER, 50, 20, 99), TURN_2, TURN_3)
    wanted = ids(SYSTEM, TURN_2, TURN_3)
    start = len(SYSTEM) + 2
    gap, kept = _longest_resumption(cached, wanted, start)
    assert gap == 6
    assert kept == len(TURN_2) + len(TURN_3) - 2


def test_a_cache_that_ends_inside_the_kept_part_keeps_what_it_has() -> None:
    cached = ids(SYSTEM, TURN_1, TURN_2)
    wanted = ids(SYSTEM, TURN_2, TURN_3)
    start = len(SYSTEM) + 2
    gap, kept = _longest_resumption(cached, wanted, start)
    assert (gap, kept) == (len(TURN_1), len(TURN_2) - 2)


def test_no_resumption_when_the_first_new_token_is_not_cached() -> None:
    cached = ids(SYSTEM, TURN_1)
    wanted = ids(SYSTEM, message(USER, 77, 78))
    assert _longest_resumption(cached, wanted, len(SYSTEM) + 2) == (0, 0)


@pytest.mark.parametrize(
    ("a", "b", "shared"),
    [
        ([1, 2, 3], [1, 2, 4], 2),
        ([1, 2], [1, 2, 3], 2),  # one is a prefix of the other
        ([1, 2, 3], [1, 2, 3], 3),
        ([5], [6], 0),
        ([], [1], 0),
    ],
)
def test_common_prefix_of_lists_and_arrays(a: list[int], b: list[int], shared: int) -> None:
    assert _common_prefix(a, b) == shared
    assert _common_prefix(np.array(a, dtype=np.intc), b) == shared
    assert _common_prefix(np.array(a, dtype=np.intc), np.array(b, dtype=np.intc)) == shared
