"""Run one recording through the product's own conversation loop, as ``talk`` does.

The file is played into a fresh :class:`~voiceagent.session.VoiceSession` at real-time pace
(followed by the same trailing silence ``talk`` appends) and the reply goes to a
:class:`~voiceagent.audio.sinks.WavFileSink`, which timestamps the first reply sample.

Where the user *really* stopped talking comes from an offline VAD pass over the whole clip
(:func:`find_speech`): the last 32 ms frame with Silero probability >= 0.5 that belongs to
speech rather than a blip (see there). ``voice_to_voice``
is measured from there to the first reply sample; the session's own figure, which starts at
the online VAD's stop point, is kept beside it as ``voice_to_voice_session``.

A recording is one utterance. If a pause splits it into several turns, the transcripts are
joined for the word error rate (one that continues the one before replaces it) and the
latencies are those of the last turn, the one that answers the end of the recording (the
extra turns are counted as ``split_turns``). Once the input has ended the session does not
wait for the reply to finish playing (``talk`` does); nothing is measured in that wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voiceagent.audio.clock import Clock, MonotonicClock
from voiceagent.audio.formats import FRAME_SAMPLES, PIPELINE_RATE_HZ, AudioFrame
from voiceagent.bench.corpus import Utterance
from voiceagent.bench.pool import SessionModels
from voiceagent.config import Settings
from voiceagent.events import (
    Dropped,
    ErrorEvent,
    Event,
    Interrupted,
    SpeechEnd,
    SpeechStart,
    TranscriptEvent,
    Turn,
)
from voiceagent.interfaces import ReplyLimits
from voiceagent.session import (
    PARTIAL_EVERY_S,
    Duplex,
    SessionOptions,
    VoiceActivityDetector,
    VoiceSession,
)
from voiceagent.turns.endpointing import EndpointingConfig
from voiceagent.turns.vad_state import VadConfig

SPEECH_THRESHOLD = 0.5

LATENCY_KEYS = (
    "eou",
    "stt",
    "llm_first_token",
    "tts_first_audio",
    "voice_to_voice",
    "transcript_ready",
    "voice_to_voice_session",
    "eou_true",
)
"""Per-turn latencies (ms). The first five are the contract's; ``voice_to_voice`` and
``eou_true`` start at the offline VAD's end of speech, ``voice_to_voice_session`` and ``eou`` at
the online VAD's."""


@dataclass(frozen=True)
class SpeechSpan:
    """Where the voice is in a clip, by an offline VAD pass (seconds from the start)."""

    start_s: float
    end_s: float


def find_speech(
    vad: VoiceActivityDetector,
    samples: np.ndarray,
    threshold: float = SPEECH_THRESHOLD,
    min_speech_ms: float = VadConfig.min_speech_ms,
    min_pause_ms: float = EndpointingConfig.min_silence_ms,
) -> SpeechSpan | None:
    """First and last frame with speech probability >= ``threshold``; None if there is none.

    Voiced frames closer than ``min_pause_ms`` form one stretch; a stretch with less than
    ``min_speech_ms`` of voiced frames is a blip, not speech, and is left out, as the session's
    VAD leaves it out (the defaults: its shortest speech, and the shortest pause that can end
    a turn). jfk.flac ends with two frames of applause 384 ms after "...for your country"
    (0.51, 0.88): counted as speech, they put the end of speech after the reply had begun.
    """
    vad.reset()
    voiced: list[int] = []
    for index, start in enumerate(range(0, len(samples), FRAME_SAMPLES)):
        frame = samples[start : start + FRAME_SAMPLES]
        if len(frame) < FRAME_SAMPLES:
            frame = np.pad(frame, (0, FRAME_SAMPLES - len(frame)))
        if vad.probability(frame.astype(np.float32, copy=False)) >= threshold:
            voiced.append(index)
    vad.reset()
    frame_ms = FRAME_SAMPLES / PIPELINE_RATE_HZ * 1000
    stretches: list[list[int]] = []
    for index in voiced:
        if stretches and (index - stretches[-1][-1] - 1) * frame_ms < min_pause_ms:
            stretches[-1].append(index)
        else:
            stretches.append([index])
    speech = [s for s in stretches if len(s) * frame_ms >= min_speech_ms]
    if not speech:
        return None
    end_sample = min(len(samples), (speech[-1][-1] + 1) * FRAME_SAMPLES)
    return SpeechSpan(
        speech[0][0] * FRAME_SAMPLES / PIPELINE_RATE_HZ, end_sample / PIPELINE_RATE_HZ
    )


@dataclass
class UtteranceResult:
    """What one configuration made of one recording."""

    corpus: str
    name: str
    audio_s: float
    reference: str | None
    speech_end_s: float | None
    hypothesis: str = ""
    reply: str = ""
    turns: int = 0
    dropped: list[str] = field(default_factory=list)
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    stt_ms: float = 0.0
    stt_audio_s: float = 0.0
    llm_tokens: int = 0
    llm_s: float = 0.0
    tts_compute_s: float = 0.0
    tts_audio_s: float = 0.0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    error: str | None = None
    talked_over: bool = False  # the last reply began before the user's speech ended

    @property
    def expects_speech(self) -> bool:
        return bool(self.reference and self.reference.strip())

    def to_json(self) -> dict[str, Any]:
        def rounded(value: float | None, digits: int = 1) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "corpus": self.corpus,
            "name": self.name,
            "audio_s": round(self.audio_s, 3),
            "speech_end_s": rounded(self.speech_end_s, 3),
            "reference": self.reference,
            "hypothesis": self.hypothesis,
            "reply": self.reply,
            "turns": self.turns,
            "talked_over": self.talked_over,
            "dropped": self.dropped,
            "latency_ms": {k: rounded(self.latency_ms.get(k)) for k in LATENCY_KEYS},
            "stt_ms": round(self.stt_ms, 1),
            "llm_tokens": self.llm_tokens,
            "tts_audio_s": round(self.tts_audio_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "error": self.error,
        }


class _InputEndClock:
    """The session's clock, except that once the input has ended it no longer sleeps.

    ``talk`` waits at the end for the last reply to finish playing; nothing is measured then,
    so the benchmark skips that wait (a long reply would otherwise cost its whole duration).
    """

    def __init__(self, inner: Clock) -> None:
        self._inner = inner
        self.input_ended = False

    def now_s(self) -> float:
        return self._inner.now_s()

    async def sleep_until(self, t_s: float) -> None:
        if self.input_ended:
            await asyncio.sleep(0)
            return
        await self._inner.sleep_until(t_s)


class _WatchedSource:
    """A frame source that tells the clock when the input has ended.

    Once the recording itself has ended, the trailing silence (there so the last utterance
    can end) is cut short as soon as no utterance is open: the last turn has been answered or
    dropped. Nothing measured changes; a run just does not sit through silence it no longer
    needs.
    """

    def __init__(
        self, inner: Any, clock: _InputEndClock, recorder: _TurnRecorder, audio_samples: int
    ) -> None:
        self._inner = inner
        self._clock = clock
        self._recorder = recorder
        self._audio_samples = audio_samples

    @property
    def overflow_count(self) -> int:
        return int(self._inner.overflow_count)

    async def frames(self) -> AsyncIterator[AudioFrame]:
        frames = self._inner.frames()
        async with contextlib.aclosing(frames):
            async for frame in frames:
                if frame.sample_index >= self._audio_samples and self._recorder.settled:
                    break
                yield frame
        self._clock.input_ended = True


class _TurnRecorder:
    """Keeps the session's events, each with the clock time it was emitted, and notes the
    first reply sample's time when a turn completes (the sink resets it per reply)."""

    def __init__(self, clock: Clock, sink: Any) -> None:
        self._clock = clock
        self._sink = sink
        self.events: list[Event] = []
        self.turns: list[tuple[Turn, float | None, float | None]] = []
        """(turn, clock time its end of utterance was decided, clock time of its first sample)"""
        self._speech_end_at: float | None = None
        self._transcript_speech_end_at: float | None = None
        self._open_utterance = False

    @property
    def settled(self) -> bool:
        """At least one turn was answered, and no utterance since waits for its outcome."""
        return bool(self.turns) and not self._open_utterance

    def emit(self, event: Event) -> None:
        now = self._clock.now_s()
        self.events.append(event)
        if isinstance(event, (SpeechStart, Interrupted)):
            # An interruption comes with the turn it cut off, after the speech that cut it
            # off had opened a new utterance: that one is still open.
            self._open_utterance = True
        elif isinstance(event, (Turn, Dropped)):
            self._open_utterance = False
        if isinstance(event, SpeechEnd):
            self._speech_end_at = now
        elif isinstance(event, TranscriptEvent):
            self._transcript_speech_end_at = self._speech_end_at
        elif isinstance(event, Turn):
            first = self._sink.first_sample_time_s if self._sink is not None else None
            self.turns.append((event, self._transcript_speech_end_at, first))


def session_options(
    settings: Settings, realtime: bool, reply: bool, speculate: bool = True
) -> SessionOptions:
    """The options ``talk --input FILE`` runs with (``speculate=False``: see
    :attr:`SessionOptions.speculate`)."""
    return SessionOptions(
        duplex=Duplex.HALF,
        reply=reply,
        realtime=realtime,
        endpointing=settings.endpointing(takes_back_early_answers=reply),
        limits=ReplyLimits(max_tokens=settings.max_reply_tokens, max_s=settings.max_reply_s),
        input_hears_output=False,  # a file cannot hear the reply
        partial_every_s=PARTIAL_EVERY_S if realtime else None,  # as in `talk`
        speculate=speculate,
    )


async def run_utterance(
    session_models: SessionModels,
    utterance: Utterance,
    audio_s: float,
    speech: SpeechSpan | None,
    settings: Settings,
    realtime: bool = True,
    reply: bool = True,
    clock: Clock | None = None,
    scratch_dir: Path | None = None,
    speculate: bool = True,
) -> UtteranceResult:
    """Play one recording into a fresh session and measure what came back."""
    from voiceagent.audio.sinks import WavFileSink
    from voiceagent.audio.sources import FileSource

    clock = clock or MonotonicClock()
    models = session_models.models
    result = UtteranceResult(
        utterance.corpus, utterance.name, audio_s, utterance.reference,
        None if speech is None else speech.end_s,
    )  # fmt: skip
    if session_models.llm is not None:
        await models.worker("llm").call(session_models.llm.start_fresh, settings.system_prompt)
    options = session_options(settings, realtime=realtime, reply=reply, speculate=speculate)
    source = FileSource.open(
        utterance.path, realtime=realtime, clock=clock,
        trailing_silence_ms=options.endpointing.file_tail_ms,
    )  # fmt: skip
    models.vad.reset()
    with tempfile.TemporaryDirectory(dir=scratch_dir, prefix="voiceagent-bench-") as scratch:
        sink = None
        if reply:
            assert models.tts is not None
            sink = WavFileSink.open(
                Path(scratch) / "reply.wav", models.tts.sample_rate_hz, clock=clock,
                pad_to_clock=True,
            )  # fmt: skip
        recorder = _TurnRecorder(clock, sink)
        session_clock = _InputEndClock(clock)
        session = VoiceSession(
            models,
            _WatchedSource(source, session_clock, recorder, round(audio_s * PIPELINE_RATE_HZ)),
            sink, recorder, session_clock, options,
            system_prompt=settings.system_prompt, history_tokens=settings.history_tokens,
        )  # fmt: skip
        try:
            await session.run()
        finally:
            if sink is not None:
                sink.close()
    _fill(result, recorder, source.start_time_s, speech, realtime)
    if session_models.llm is not None:
        result.llm_tokens = session_models.llm.generated_tokens
        result.llm_s = session_models.llm.generate_s
    if session_models.tts is not None:
        result.tts_compute_s = session_models.tts.compute_s
        result.tts_audio_s = session_models.tts.audio_s
    return result


def _fill(
    result: UtteranceResult,
    recorder: _TurnRecorder,
    started_at: float | None,
    speech: SpeechSpan | None,
    realtime: bool,
) -> None:
    transcripts = [e for e in recorder.events if isinstance(e, TranscriptEvent)]
    result.stt_ms = sum(t.stt_ms for t in transcripts)
    result.stt_audio_s = sum(t.audio_s for t in transcripts)
    result.dropped = [e.reason for e in recorder.events if isinstance(e, Dropped)]
    errors = [e.message for e in recorder.events if isinstance(e, ErrorEvent)]
    result.error = "; ".join(errors) or None
    result.turns = len(recorder.turns)
    # What was recognised, turn or not: a reply cut off by the user's next words leaves its
    # transcript without a finished turn. A transcript that continues the previous one says
    # its words again, with what followed: it replaces it.
    texts: list[str] = []
    for transcript in transcripts:
        if transcript.continues and texts:
            texts[-1] = transcript.text
        else:
            texts.append(transcript.text)
    result.hypothesis = " ".join(text for text in texts if text)
    result.reply = " ".join(t.reply_text for t, _, _ in recorder.turns if t.reply_text)
    if not recorder.turns or not realtime:
        return  # as fast as possible: latencies mean nothing
    # The turn that answers the end of the recording is the last one.
    turn, decided_at, first_sample_at = recorder.turns[-1]
    latency: dict[str, float | None] = {k: turn.latency_ms.get(k) for k in LATENCY_KEYS}
    latency["voice_to_voice_session"] = turn.latency_ms.get("voice_to_voice")
    latency["voice_to_voice"] = None
    latency["eou_true"] = None
    if speech is not None and started_at is not None:
        voice_stopped_at = started_at + speech.end_s
        if first_sample_at is not None and first_sample_at < voice_stopped_at:
            # The last reply began while the user was still speaking: nothing answered the
            # end of the recording, so there is no voice-to-voice to report, only the failure.
            result.talked_over = True
        elif first_sample_at is not None:
            latency["voice_to_voice"] = (first_sample_at - voice_stopped_at) * 1000
        if decided_at is not None:
            latency["eou_true"] = (decided_at - voice_stopped_at) * 1000
    result.latency_ms = latency
