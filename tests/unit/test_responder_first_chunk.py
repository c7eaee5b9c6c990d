"""The LLM waits between tokens while the first chunk is synthesised, and only then."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from voiceagent.audio.clock import MonotonicClock
from voiceagent.audio.sinks import WavFileSink
from voiceagent.interfaces import ChatMessage, ReplyLimits, Role
from voiceagent.responder import Responder
from voiceagent.testing.fakes import FakeLlm, FakeTts
from voiceagent.workers import ModelWorker

pytestmark = pytest.mark.unit


class SlowTts(FakeTts):
    """Takes 150 ms per chunk and notes when each synthesis ran."""

    def __init__(self) -> None:
        super().__init__()
        self.windows: list[tuple[float, float]] = []

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        started = time.monotonic()
        time.sleep(0.15)
        yield from super().synthesize(text)
        self.windows.append((started, time.monotonic()))


def test_no_token_is_generated_while_the_first_chunk_is_synthesised(tmp_path):
    token_times: list[float] = []
    lock = threading.Lock()

    def note(_: int) -> None:
        with lock:
            token_times.append(time.monotonic())
        time.sleep(0.005)

    llm = FakeLlm(" ".join(["Here is a rather long answer about printing."] * 4), note)
    tts = SlowTts()
    clock = MonotonicClock()
    sink = WavFileSink.open(tmp_path / "reply.wav", 16000, clock=clock)
    workers = [ModelWorker("llm"), ModelWorker("tts")]
    responder = Responder(llm, tts, *workers, sink, clock, ReplyLimits(max_tokens=64))
    try:
        outcome = asyncio.run(
            responder.reply([ChatMessage(Role.USER, "Tell me about printing.")], lambda: True)
        )
    finally:
        sink.close()
        for worker in workers:
            worker.close()
    assert len(outcome.chunks) >= 3
    first_start, first_end = tts.windows[0]
    # At most the token already under way when the chunk was cut lands in the window.
    during_first = [t for t in token_times if first_start + 0.01 < t < first_end]
    assert during_first == []
    # The LLM writes on while later chunks are synthesised.
    later_start, later_end = tts.windows[1]
    assert any(later_start < t < later_end for t in token_times)
