"""The interfaces between the session and the heavy model backends.

Each backend has a real implementation in ``voiceagent/backends/`` and a fake in
``voiceagent/testing/``. Audio is numpy float32, mono; rates are in the names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Transcript:
    """What speech-to-text made of one utterance."""

    text: str
    audio_s: float
    stt_ms: float
    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 1.0
    used_full_window: bool = False


class SpeechToText(Protocol):
    def transcribe(self, audio_16k: np.ndarray) -> Transcript: ...
    def close(self) -> None: ...


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class ReplyLimits:
    max_tokens: int = 96
    max_s: float = 10.0


class LanguageModel(Protocol):
    def stream_reply(
        self,
        messages: list[ChatMessage],
        limits: ReplyLimits,
        should_stop: Callable[[], bool],
    ) -> Iterator[str]:
        """Yield text deltas; stop between tokens once ``should_stop()`` is true."""
        ...

    def count_tokens(self, text: str) -> int: ...
    def close(self) -> None: ...


class TextToSpeech(Protocol):
    sample_rate_hz: int

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        """Yield float32 mono chunks at ``sample_rate_hz`` for one piece of text."""
        ...

    def close(self) -> None: ...
