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
    """Takes 150 ms per chunk and notes, in one log with the LLM's tokens, when each ran."""

    def __init__(self, log: list[str], lock: threading.Lock) -> None:
        super().__init__()
        self.log, self.lock = log, lock

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        with self.lock:
            self.log.append("tts start")
        time.sleep(0.15)
        yield from super().synthesize(text)
        with self.lock:
            self.log.append("tts end")


def test_no_token_is_generated_while_the_first_chunk_is_synthesised(tmp_path):
    log: list[str] = []  # the order of tokens and syntheses, whatever the machine's speed
    lock = threading.Lock()

    def note(_: int) -> None:
        with lock:
            log.append("token")
        time.sleep(0.005)

    llm = FakeLlm(" ".join(["Here is a rather long answer about printing."] * 4), note)
    tts = SlowTts(log, lock)
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
    during: list[int] = []  # the tokens written during each synthesis
    inside = False
    for entry in log:
        if entry == "tts start":
            during.append(0)
        elif entry == "token" and inside:
            during[-1] += 1
        inside = entry == "tts start" or (inside and entry != "tts end")
    # At most the token already under way when the first chunk was cut lands in its window.
    assert during[0] <= 1, log
    # The LLM writes on while later chunks are synthesised (150 ms each, 5 ms per token).
    assert max(during[1:]) >= 2, log
