"""How `voiceagent transcribe` cuts a long file at pauses: pure logic on scripted VAD scores."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voiceagent.transcribe import MAX_CHUNK_FRAMES, PAD_FRAMES, speech_chunks

pytestmark = pytest.mark.unit


def scores(*runs: tuple[int, float]) -> np.ndarray:
    """Frames of VAD probability: (count, probability) runs."""
    return np.concatenate([np.full(count, p, dtype=np.float32) for count, p in runs])


def test_no_voice_gives_no_chunk() -> None:
    assert speech_chunks(scores((500, 0.1))) == []


def test_a_short_recording_is_one_padded_chunk() -> None:
    probabilities = scores((100, 0.0), (200, 0.9), (100, 0.0))
    assert speech_chunks(probabilities) == [(100 - PAD_FRAMES, 300 + PAD_FRAMES)]


def test_the_cut_falls_in_the_middle_of_the_longest_pause() -> None:
    # Speech 0-500, a short pause, speech, a long pause at 700-760, speech to 1400.
    probabilities = scores((500, 0.9), (10, 0.1), (190, 0.9), (60, 0.1), (640, 0.9))
    chunks = speech_chunks(probabilities, max_frames=900)
    assert chunks[0] == (0, 730)
    assert chunks[1] == (730, 1400)


def test_speech_without_a_pause_is_cut_at_the_limit() -> None:
    probabilities = scores((2000, 0.9))
    assert speech_chunks(probabilities, max_frames=900) == [(0, 900), (900, 1800), (1800, 2000)]


def test_the_default_chunk_fits_whispers_window() -> None:
    assert MAX_CHUNK_FRAMES * 512 <= 30 * 16000


@given(st.lists(st.tuples(st.integers(1, 400), st.booleans()), min_size=1, max_size=40))
def test_chunks_are_contiguous_bounded_and_cut_in_pauses(runs: list[tuple[int, bool]]) -> None:
    probabilities = scores(*[(count, 0.9 if voiced else 0.0) for count, voiced in runs])
    chunks = speech_chunks(probabilities, max_frames=600, pad_frames=5)
    voiced = np.flatnonzero(probabilities >= 0.5)
    if voiced.size == 0:
        assert chunks == []
        return
    assert chunks[0][0] == max(0, voiced[0] - 5)
    assert chunks[-1][1] == min(len(probabilities), voiced[-1] + 1 + 5)
    for (_, end), (start, _) in zip(chunks, chunks[1:], strict=False):
        assert end == start
    for start, end in chunks:
        assert 0 < end - start <= 600
    for start, end in chunks[:-1]:
        window = probabilities[start + 200 : start + 600]
        if (window < 0.5).any():  # a pause in the last two thirds: the cut is inside one
            assert probabilities[end] < 0.5 or probabilities[end - 1] < 0.5
