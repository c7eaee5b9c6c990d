"""The closed set of events a session emits, and where they go.

Every event carries ``t_s``, seconds since the session started (on the session's clock).
``to_json()`` gives the contract's JSON object for ``--jsonl``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol, TextIO

LATENCY_KEYS = ("eou", "stt", "llm_first_token", "tts_first_audio", "voice_to_voice")


@dataclass(frozen=True)
class Event:
    name: ClassVar[str] = "event"
    t_s: float

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"event": self.name}
        for key, value in asdict(self).items():
            data[key] = round(value, 3) if isinstance(value, float) else value
        return data


@dataclass(frozen=True)
class Listening(Event):
    name: ClassVar[str] = "listening"
    source: str = ""


@dataclass(frozen=True)
class SpeechStart(Event):
    name: ClassVar[str] = "speech_start"
    audio_s: float = 0.0


@dataclass(frozen=True)
class SpeechEnd(Event):
    """The end of the utterance was decided; ``audio_s`` is where the voice stopped and
    ``decided_audio_s`` the input position at which the decision was made."""

    name: ClassVar[str] = "speech_end"
    audio_s: float = 0.0
    eou_ms: float = 0.0
    decided_audio_s: float = 0.0


@dataclass(frozen=True)
class PartialTranscript(Event):
    name: ClassVar[str] = "partial_transcript"
    text: str = ""


@dataclass(frozen=True)
class TranscriptEvent(Event):
    name: ClassVar[str] = "transcript"
    text: str = ""
    stt_ms: float = 0.0
    audio_s: float = 0.0
    # The user went on right after a turn we answered, before a whole sentence of the answer
    # was heard: the words of that turn were transcribed again with the rest, and this text
    # replaces the previous transcript.
    continues: bool = False


@dataclass(frozen=True)
class Dropped(Event):
    """A turn the session will not answer (noise, echo, a phantom transcript, too short)."""

    name: ClassVar[str] = "dropped"
    reason: str = ""
    text: str = ""


@dataclass(frozen=True)
class Thinking(Event):
    name: ClassVar[str] = "thinking"


@dataclass(frozen=True)
class Reply(Event):
    name: ClassVar[str] = "reply"
    text: str = ""


@dataclass(frozen=True)
class Interrupted(Event):
    name: ClassVar[str] = "interrupted"
    played_text: str = ""
    # From the speech being confirmed (or the key pressed) to the reply being held or cut (plus
    # a device's output latency; a 5 ms fade follows); below 0 when it was held as the voice
    # began, before the speech was confirmed.
    silent_after_ms: float = 0.0
    # How long the reply went on over the user's voice: from its first voiced frame to the
    # same moment.
    talked_over_ms: float = 0.0
    by: str = "voice"  # or "key": the user pressed Enter or Space in the terminal


@dataclass(frozen=True)
class Turn(Event):
    name: ClassVar[str] = "turn"
    index: int = 0
    user_text: str = ""
    reply_text: str = ""
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    speculative: bool = False  # the transcript was made during the pause, before the decision
    reply_started_early: bool = False  # the LLM and TTS started before the decision too


@dataclass(frozen=True)
class ErrorEvent(Event):
    name: ClassVar[str] = "error"
    message: str = ""


@dataclass(frozen=True)
class DeviceLost(Event):
    """A sound device stopped mid-session; it is being reopened (``message`` says so)."""

    name: ClassVar[str] = "device_lost"
    direction: str = ""  # "input" or "output"
    device: str = ""
    message: str = ""


@dataclass(frozen=True)
class DeviceRecovered(Event):
    """A lost sound device was reopened after ``attempts`` tries and ``gap_s`` seconds."""

    name: ClassVar[str] = "device_recovered"
    direction: str = ""
    device: str = ""
    attempts: int = 0
    gap_s: float = 0.0


@dataclass(frozen=True)
class SessionEnd(Event):
    name: ClassVar[str] = "session_end"
    turns: int = 0
    dropped: int = 0
    input_overflows: int = 0
    reply_file: str | None = None
    output_underflows: int = 0
    device_losses: int = 0
    device_reopens: int = 0


class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...


class JsonlEvents:
    """``--jsonl``: one JSON object per line on stdout, flushed at once."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout

    def emit(self, event: Event) -> None:
        self._stream.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
        self._stream.flush()


class CollectedEvents:
    """Keeps every event in a list (tests, the benchmark)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class FanOut:
    def __init__(self, *sinks: EventSink) -> None:
        self._sinks = sinks

    def emit(self, event: Event) -> None:
        for sink in self._sinks:
            sink.emit(event)
