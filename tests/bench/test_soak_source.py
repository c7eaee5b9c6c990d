"""The polite user of the real-time soak: each question once the last answer was heard."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from voiceagent.audio.clock import FakeClock
from voiceagent.audio.formats import FRAME_SAMPLES
from voiceagent.bench.soak import ANSWER_TIMEOUT_S, ConversationSource

pytestmark = pytest.mark.unit


def collect(source: ConversationSource) -> list:
    async def run() -> list:
        return [frame async for frame in source.frames()]

    return asyncio.run(run())


def test_each_question_waits_for_the_answer_to_be_heard() -> None:
    clock = FakeClock()
    clip = np.full(FRAME_SAMPLES * 10, 0.5, np.float32)
    answered_at = {1: 3.0, 2: 7.0}  # when each answer has been heard (clock time)

    def answered(questions: int) -> bool:
        return clock.now_s() >= answered_at[questions]

    frames = collect(ConversationSource([clip], 2, clock, answered, gap_s=1.0))
    indices = [f.sample_index for f in frames]
    assert indices == [i * FRAME_SAMPLES for i in range(len(frames))]  # one unbroken clock
    loud = [i for i, f in enumerate(frames) if f.samples.any()]
    first, second = loud[:10], loud[10:]
    assert len(first) == len(second) == 10
    # The second question starts once the first answer was heard, plus the 1 s gap.
    second_start_s = frames[second[0]].sample_index / 16000
    assert 4.0 <= second_start_s <= 4.1
    # The source ends 1 s after the last answer; it never outruns the clock.
    assert frames[-1].sample_index / 16000 == pytest.approx(8.0, abs=0.1)
    assert clock.now_s() == pytest.approx((frames[-1].sample_index + FRAME_SAMPLES) / 16000)


def test_an_answer_that_never_comes_does_not_hang_the_conversation() -> None:
    clock = FakeClock()
    clip = np.full(FRAME_SAMPLES * 5, 0.5, np.float32)
    frames = collect(ConversationSource([clip], 2, clock, lambda _: False, gap_s=1.0))
    loud = sum(1 for f in frames if f.samples.any())
    assert loud == 10
    expected_s = 1.0 + 2 * (5 * FRAME_SAMPLES / 16000 + ANSWER_TIMEOUT_S)
    assert clock.now_s() == pytest.approx(expected_s, abs=0.1)
