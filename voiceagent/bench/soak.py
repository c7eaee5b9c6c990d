"""Soak: one long conversation fed from files as fast as possible, watched for leaks and drift.

One input holds N utterances (recordings taken in turn, 3 s of silence after each); a single
session answers them all with the real models, the way ``talk --fast`` would. Per turn it
records the latencies and the process's resident memory (at the turn's end, and at rest: the
lowest sampled since the turn before); per reply, the prompt size the LLM was given, to show
the conversation never outgrows the context window. Growth is judged on memory at rest: a
turn can end while a model call holds tens of MB for a moment (the LLM re-reading the history
after a trim, Piper's next sentence), which is not growth.

As-fast-as-possible pacing makes the latencies compute times, so a trend over the turns is
drift (a growing prompt, a leak), not what a user would feel. ``realtime=True`` instead plays
a polite user (:class:`ConversationSource`): each recording at real-time pace, then silence
until the reply has been heard; the latencies are then the ones a user would feel.

Drift is judged on medians of windows of turns, not on single turns: one slow turn (another
process takes the CPU) must not look like a trend.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from voiceagent.audio.clock import Clock, MonotonicClock
from voiceagent.audio.files import read_audio, write_wav
from voiceagent.audio.formats import FRAME_SAMPLES, PIPELINE_RATE_HZ, AudioFrame
from voiceagent.audio.sinks import WavFileSink
from voiceagent.audio.sources import FileSource
from voiceagent.bench.machine import RssSampler, current_rss_mb
from voiceagent.config import Settings
from voiceagent.events import LATENCY_KEYS, Dropped, ErrorEvent, Event, Interrupted, Turn
from voiceagent.interfaces import ChatMessage, LanguageModel, ReplyLimits
from voiceagent.session import SessionOptions, VoiceSession

GAP_S = 3.0
CLIP_COUNT = 12
WARM_UP_TURNS = 10
DRIFT_WINDOW_TURNS = 24  # two rounds of the 12 clips: every window hears the same questions
TRAILING_SILENCE_MS = 2500
ANSWER_TIMEOUT_S = 30.0  # a polite user stops waiting for an answer after this long


class ConversationSource:
    """A user who waits for each answer: a recording at real-time pace, then silence until
    ``answered()`` (the reply has been heard) has held for ``gap_s``, then the next one."""

    def __init__(
        self,
        clips: Sequence[np.ndarray],
        utterances: int,
        clock: Clock,
        answered: Callable[[int], bool],
        gap_s: float = 1.0,
    ) -> None:
        self._clips = clips
        self._utterances = utterances
        self._clock = clock
        self._answered = answered
        self._gap_s = gap_s
        self.overflow_count = 0

    async def frames(self) -> AsyncIterator[AudioFrame]:
        start_s = self._clock.now_s()
        index = 0
        silence = np.zeros(FRAME_SAMPLES, np.float32)

        async def paced(samples: np.ndarray) -> AudioFrame:
            nonlocal index
            await self._clock.sleep_until(start_s + (index + FRAME_SAMPLES) / PIPELINE_RATE_HZ)
            frame = AudioFrame(samples, index)
            index += FRAME_SAMPLES
            return frame

        for _ in range(round(self._gap_s * PIPELINE_RATE_HZ / FRAME_SAMPLES)):
            yield await paced(silence)
        for number in range(self._utterances):
            clip = self._clips[number % len(self._clips)]
            padded = np.zeros(-(-len(clip) // FRAME_SAMPLES) * FRAME_SAMPLES, np.float32)
            padded[: len(clip)] = clip
            for offset in range(0, len(padded), FRAME_SAMPLES):
                yield await paced(padded[offset : offset + FRAME_SAMPLES])
            asked_s = self._clock.now_s()
            quiet_since_s: float | None = None
            while self._clock.now_s() - asked_s < ANSWER_TIMEOUT_S:
                yield await paced(silence)
                if not self._answered(number + 1):
                    quiet_since_s = None
                elif quiet_since_s is None:
                    quiet_since_s = self._clock.now_s()
                elif self._clock.now_s() - quiet_since_s >= self._gap_s:
                    break


@dataclass(frozen=True)
class SoakTurn:
    """One answered turn: its latencies (ms), and the process's resident memory (MiB) and CPU
    time used so far (all threads, s) when it ended. ``rest_rss_mb`` is the lowest resident
    memory sampled since the turn before ended (``rss_mb`` when not sampled)."""

    index: int
    user_text: str
    reply_text: str
    latency_ms: dict[str, float | None]
    rss_mb: float
    cpu_s: float = 0.0
    rest_rss_mb: float | None = None

    @property
    def at_rest_mb(self) -> float:
        return self.rss_mb if self.rest_rss_mb is None else self.rest_rss_mb


@dataclass(frozen=True)
class LlmCall:
    """One reply the LLM generated (speculative ones included), in tokens."""

    prompt_tokens: int
    cached_prompt_tokens: int
    evaluated_prompt_tokens: int
    generated_tokens: int
    stop_reason: str | None


@dataclass
class SoakResult:
    """Everything one soak session produced."""

    utterances: int
    turns: list[SoakTurn] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    interruptions: int = 0
    llm_calls: list[LlmCall] = field(default_factory=list)
    context_tokens: int | None = None
    history_budget_tokens: int = 0
    history_trims: int = 0


@dataclass(frozen=True)
class SoakReport:
    """The soak's verdict figures; ``slope_ms_per_turn`` is fitted to every turn after the
    warm-up, ``window_slope_ms_per_turn`` to the medians of windows of ``window_turns``.

    ``cpu_ms_per_turn_window_slope`` is the same fit for the CPU time each turn used: other
    programs taking the cores slow the latencies but not that, while more work per turn (a
    real drift) raises both.

    Resident memory (MiB) is at rest (:attr:`SoakTurn.at_rest_mb`) after the first turn, the
    warm-up and the last; ``rss_growth_mb`` is from the warm-up to the last turn,
    ``rss_growth_from_first_mb`` from the first; ``rss_mb_turn_end_max`` is the highest
    sampled when a turn ended.
    """

    turns: int
    utterances: int
    errors: int
    dropped: int
    rss_mb_first: float | None
    rss_mb_after_warm_up: float | None
    rss_mb_last: float | None
    rss_growth_mb: float | None
    rss_growth_from_first_mb: float | None
    rss_mb_turn_end_max: float | None
    max_prompt_tokens: int
    max_prompt_and_reply_tokens: int
    context_tokens: int | None
    context_full_replies: int
    history_trims: int
    window_turns: int
    slope_ms_per_turn: dict[str, float | None]
    window_slope_ms_per_turn: dict[str, float | None]
    window_medians_ms: dict[str, list[float]]
    cpu_ms_per_turn_window_slope: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class SoakMeter:
    """An event sink that keeps each turn (with the process's memory and CPU time at its end),
    the errors, the dropped utterances and the interruptions."""

    def __init__(
        self,
        result: SoakResult,
        on_turn: Callable[[SoakTurn], None] | None,
        memory: RssSampler | None = None,
    ) -> None:
        self._result = result
        self._on_turn = on_turn
        self._memory = memory

    def emit(self, event: Event) -> None:
        if isinstance(event, Turn):
            rest = self._memory.take_low_mb() if self._memory is not None else None
            turn = SoakTurn(
                event.index, event.user_text, event.reply_text, dict(event.latency_ms),
                current_rss_mb(), time.process_time(), rest,
            )  # fmt: skip
            self._result.turns.append(turn)
            if self._on_turn is not None:
                self._on_turn(turn)
        elif isinstance(event, ErrorEvent):
            self._result.errors.append(event.message)
        elif isinstance(event, Dropped):
            self._result.dropped.append(event.reason)
        elif isinstance(event, Interrupted):
            self._result.interruptions += 1


class RecordingLlm:
    """Stands in for the session's LLM and records the token counts of every reply.

    The counts come from the backend's ``last_reply`` stats (llama.cpp's own tokenizer), read
    when each reply ends, even one that failed because the prompt did not fit.
    """

    def __init__(self, inner: LanguageModel, calls: list[LlmCall]) -> None:
        self._inner = inner
        self._calls = calls

    def stream_reply(
        self,
        messages: list[ChatMessage],
        limits: ReplyLimits,
        should_stop: Callable[[], bool],
    ) -> Iterator[str]:
        try:
            yield from self._inner.stream_reply(messages, limits, should_stop)
        finally:
            stats = getattr(self._inner, "last_reply", None)
            if stats is not None:
                reason = stats.stop_reason
                self._calls.append(
                    LlmCall(
                        stats.prompt_tokens, stats.cached_prompt_tokens,
                        stats.evaluated_prompt_tokens, stats.generated_tokens,
                        None if reason is None else str(reason.value),
                    )
                )  # fmt: skip

    def prefill(self, messages: list[ChatMessage]) -> int:
        prefill = getattr(self._inner, "prefill", None)
        return 0 if prefill is None else int(prefill(messages))

    def count_tokens(self, text: str) -> int:
        return self._inner.count_tokens(text)

    def close(self) -> None:
        self._inner.close()


def soak_clips(folder: Path, count: int = CLIP_COUNT) -> list[Path]:
    """The first ``count`` recordings (``*.wav``, by name) in ``folder``: the questions asked."""
    clips = sorted(folder.glob("*.wav"))[:count]
    if not clips:
        raise FileNotFoundError(f"no .wav recordings in {folder}")
    return clips


def build_input(clips: Sequence[Path], utterances: int, path: Path, gap_s: float = GAP_S) -> None:
    """Write one 16 kHz WAV: silence, then each clip in turn followed by ``gap_s`` of silence."""
    audio = [read_audio(p).samples for p in clips]  # read_audio gives the pipeline's 16 kHz
    gap = np.zeros(int(gap_s * PIPELINE_RATE_HZ), np.float32)
    pieces = [gap]
    for index in range(utterances):
        pieces += [audio[index % len(audio)], gap]
    write_wav(path, np.concatenate(pieces), PIPELINE_RATE_HZ)


def run_soak(
    settings: Settings,
    clips: Sequence[Path],
    utterances: int,
    scratch: Path,
    on_turn: Callable[[SoakTurn], None] | None = None,
    realtime: bool = False,
) -> SoakResult:
    """Load the models, answer ``utterances`` recordings in one session, and return the record.

    ``scratch`` receives the input WAV (as fast as possible) and the reply WAV. With
    ``realtime`` a :class:`ConversationSource` asks each question once the last answer has
    been heard, as ``talk`` would be used.
    """
    from voiceagent.pipeline import load_models
    from voiceagent.session import PARTIAL_EVERY_S

    result = SoakResult(utterances=utterances, history_budget_tokens=settings.history_tokens)
    models = load_models(settings, reply=True, partials=realtime)
    assert models.llm is not None and models.tts is not None
    result.context_tokens = getattr(models.llm, "context_tokens", None)
    models.llm = RecordingLlm(models.llm, result.llm_calls)
    clock = MonotonicClock()
    sink = WavFileSink.open(
        scratch / "soak-reply.wav", models.tts.sample_rate_hz, clock=clock, pad_to_clock=realtime
    )
    session: VoiceSession | None = None
    source: ConversationSource | FileSource
    if realtime:

        def answered(questions: int) -> bool:
            if session is None:
                return False
            done = len(result.turns) + len(result.dropped)
            return done >= questions and not session.is_replying

        audio = [read_audio(p).samples for p in clips]
        source = ConversationSource(audio, utterances, clock, answered)
    else:
        source_path = scratch / "soak-input.wav"
        build_input(clips, utterances, source_path)
        source = FileSource.open(
            source_path, realtime=False, clock=clock, trailing_silence_ms=TRAILING_SILENCE_MS
        )
    options = SessionOptions(
        realtime=realtime,
        endpointing=settings.endpointing(takes_back_early_answers=True),  # `talk --input FILE`
        limits=ReplyLimits(settings.max_reply_tokens, settings.max_reply_s),
        input_hears_output=False,
        partial_every_s=PARTIAL_EVERY_S if realtime else None,  # as in `talk`
    )
    memory = RssSampler(interval_s=0.05)
    session = VoiceSession(
        models, source, sink, SoakMeter(result, on_turn, memory), clock, options,
        system_prompt=settings.system_prompt, history_tokens=settings.history_tokens,
    )  # fmt: skip
    try:
        with memory:
            asyncio.run(session.run())
    finally:
        sink.close()
        models.close()
    result.history_trims = session.history.trims if session.history is not None else 0
    return result


def least_squares_slope(values: Sequence[float], x: Sequence[float] | None = None) -> float:
    """The slope of the least-squares line through ``values`` (per unit of ``x``)."""
    xs = np.arange(len(values), dtype=np.float64) if x is None else np.asarray(x, np.float64)
    return float(np.polyfit(xs, np.asarray(values, dtype=np.float64), 1)[0])


def window_medians(values: Sequence[float], window: int) -> list[float]:
    """Medians of consecutive windows of ``window`` values, the last window ending with the
    last value (a leftover at the start is not used)."""
    whole = len(values) - len(values) % window
    tail = np.asarray(values[len(values) - whole :], dtype=np.float64)
    return [float(np.median(chunk)) for chunk in tail.reshape(-1, window)] if whole else []


def _window_trend(values: Sequence[float], window: int) -> tuple[list[float], float | None]:
    """The window medians, and the slope (per turn) fitted to them when there are 3 or more."""
    medians = [round(m, 1) for m in window_medians(values, window)]
    if len(medians) < 3:
        return medians, None
    centres = [(i + 0.5) * window for i in range(len(medians))]
    return medians, round(least_squares_slope(medians, centres), 3)


def _mb(value: float) -> float:
    return round(value, 1)


def summarize(result: SoakResult, warm_up_turns: int = WARM_UP_TURNS) -> SoakReport:
    """The figures a soak is judged on (see :class:`SoakReport`)."""
    turns = result.turns
    first, last = (turns[0], turns[-1]) if turns else (None, None)
    warm = turns[min(warm_up_turns, len(turns)) - 1] if turns else None
    after = turns[warm_up_turns:]
    window = max(1, min(DRIFT_WINDOW_TURNS, len(after) // 4))
    slopes: dict[str, float | None] = {}
    window_slopes: dict[str, float | None] = {}
    medians: dict[str, list[float]] = {}
    for key in LATENCY_KEYS:
        values = [v for t in after if (v := t.latency_ms.get(key)) is not None]
        slopes[key] = round(least_squares_slope(values), 3) if len(values) >= 3 else None
        medians[key], window_slopes[key] = _window_trend(values, window)
    cpu_ms = [1000 * (b.cpu_s - a.cpu_s) for a, b in pairwise(turns[warm_up_turns - 1 :])]
    _, cpu_slope = _window_trend(cpu_ms, window)
    calls = result.llm_calls
    return SoakReport(
        turns=len(turns),
        utterances=result.utterances,
        errors=len(result.errors),
        dropped=len(result.dropped),
        rss_mb_first=_mb(first.at_rest_mb) if first else None,
        rss_mb_after_warm_up=_mb(warm.at_rest_mb) if warm else None,
        rss_mb_last=_mb(last.at_rest_mb) if last else None,
        rss_growth_mb=_mb(last.at_rest_mb - warm.at_rest_mb) if last and warm else None,
        rss_growth_from_first_mb=(
            _mb(last.at_rest_mb - first.at_rest_mb) if last and first else None
        ),
        rss_mb_turn_end_max=_mb(max(t.rss_mb for t in turns)) if turns else None,
        max_prompt_tokens=max((c.prompt_tokens for c in calls), default=0),
        max_prompt_and_reply_tokens=max(
            (c.prompt_tokens + c.generated_tokens for c in calls), default=0
        ),
        context_tokens=result.context_tokens,
        context_full_replies=sum(c.stop_reason == "context_full" for c in calls),
        history_trims=result.history_trims,
        window_turns=window,
        slope_ms_per_turn=slopes,
        window_slope_ms_per_turn=window_slopes,
        window_medians_ms=medians,
        cpu_ms_per_turn_window_slope=cpu_slope,
    )
