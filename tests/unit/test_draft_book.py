"""DraftBook: which earlier transcript drafts a new one (pure logic, no model)."""

from __future__ import annotations

import numpy as np

from voiceagent.backends.whisper_decoder import DraftBook


def audio(seconds: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(int(seconds * 16000)).astype(np.float32)


def test_the_longest_earlier_audio_that_the_new_one_begins_with_drafts_it() -> None:
    book = DraftBook()
    utterance = audio(5.0)
    book.remember(utterance[:16000], [1])
    book.remember(utterance[:48000], [1, 2, 3])
    book.remember(audio(4.0, seed=1), [9, 9])  # another utterance
    assert book.draft_for(utterance) == [1, 2, 3]
    assert book.draft_for(utterance[:32000]) == [1]


def test_audio_that_differs_anywhere_in_the_prefix_gets_no_draft() -> None:
    book = DraftBook()
    utterance = audio(3.0)
    book.remember(utterance[:16000], [1, 2])
    changed = utterance.copy()
    changed[100] += 0.5
    assert book.draft_for(changed) == []
    assert book.draft_for(utterance[:8000]) == []  # shorter than anything remembered


def test_the_book_keeps_its_own_copy_and_only_the_latest_entries() -> None:
    book = DraftBook(keep=2)
    first = audio(1.0)
    book.remember(first, [1])
    kept = first.copy()
    first[:] = 0  # the caller reuses its buffer
    assert book.draft_for(kept) == [1]
    book.remember(audio(1.0, seed=2), [2])
    book.remember(audio(1.0, seed=3), [3])
    assert book.draft_for(kept) == []  # pushed out
    book.clear()
    assert book.draft_for(audio(1.0, seed=3)) == []
