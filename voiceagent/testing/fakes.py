"""Fakes for every model interface, for scripted-timeline tests of the session logic.

They stand in for models only where the logic (turn-taking, barge-in, cancellation) is under
test; the product's end-to-end tests use the real models.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from voiceagent.interfaces import ChatMessage, ReplyLimits, Transcript

SPEECH_RMS = 0.05


class FakeVad:
    """Speech probability 1.0 for loud frames, 0.0 for quiet ones."""

    def probability(self, frame: np.ndarray) -> float:
        return 1.0 if float(np.sqrt(np.mean(np.square(frame)))) > SPEECH_RMS else 0.0

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class FakeStt:
    """Returns scripted texts in order (the last one repeats); records every call."""

    texts: list[str]
    calls: list[float] = field(default_factory=list)  # audio seconds of each call

    def transcribe(self, audio_16k: np.ndarray) -> Transcript:
        self.calls.append(len(audio_16k) / 16000)
        text = self.texts[min(len(self.calls) - 1, len(self.texts) - 1)]
        return Transcript(text=text, audio_s=len(audio_16k) / 16000, stt_ms=1.0)

    def close(self) -> None:
        pass


@dataclass
class FakeLlm:
    """Streams a scripted reply word by word; honours the caps and should_stop."""

    reply: str = "Hello there. How can I help you today?"
    before_each_token: Callable[[int], None] | None = None
    prompts: list[list[ChatMessage]] = field(default_factory=list)
    prefills: list[list[ChatMessage]] = field(default_factory=list)  # prompts read ahead
    stopped_early: threading.Event = field(default_factory=threading.Event)

    def stream_reply(
        self,
        messages: list[ChatMessage],
        limits: ReplyLimits,
        should_stop: Callable[[], bool],
    ) -> Iterator[str]:
        self.prompts.append(list(messages))
        words = self.reply.split(" ")
        for index, word in enumerate(words[: limits.max_tokens]):
            if should_stop():
                self.stopped_early.set()
                return
            if self.before_each_token is not None:
                self.before_each_token(index)
            yield word if index == 0 else " " + word

    def prefill(self, messages: list[ChatMessage]) -> int:
        self.prefills.append(list(messages))
        return len(messages[-1].content.split()) if messages else 0

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def close(self) -> None:
        pass


class FakeTts:
    """A 200 Hz tone, 100 ms per word, at 16 kHz."""

    sample_rate_hz = 16000

    def __init__(self) -> None:
        self.texts: list[str] = []

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        self.texts.append(text)
        words = len(text.split())
        if words == 0:
            return
        t = np.arange(int(0.1 * words * self.sample_rate_hz)) / self.sample_rate_hz
        yield (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)

    def close(self) -> None:
        pass


def scripted_audio(
    speech_s: list[tuple[float, float]], total_s: float, rate_hz: int = 16000
) -> np.ndarray:
    """Silence with loud noise bursts ("speech") at the given (start, end) seconds."""
    audio = np.zeros(int(total_s * rate_hz), np.float32)
    rng = np.random.default_rng(0)
    for start, end in speech_s:
        a, b = int(start * rate_hz), int(end * rate_hz)
        audio[a:b] = (0.3 * rng.standard_normal(b - a)).astype(np.float32)
    return audio
