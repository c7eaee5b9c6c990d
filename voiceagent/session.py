"""VoiceSession: the conversation loop, LISTENING -> THINKING -> SPEAKING.

One asyncio task reads audio frames; each model runs on its own worker thread. Times come
from two clocks that never mix: *audio time* (samples counted at 16 kHz, used by the VAD and
the end-of-utterance policy) and *session time* (the injectable clock, used for latencies).
Each frame's arrival maps one onto the other, so "the user stopped talking" has a session time
even though it is found by counting samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
import re
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, Protocol

import numpy as np

from voiceagent.audio.clock import Clock
from voiceagent.audio.formats import FRAME_SAMPLES, PIPELINE_RATE_HZ, AudioFrame
from voiceagent.audio.sinks import AudioSink
from voiceagent.events import (
    Dropped,
    ErrorEvent,
    Event,
    EventSink,
    Interrupted,
    Listening,
    PartialTranscript,
    Reply,
    SessionEnd,
    SpeechEnd,
    SpeechStart,
    Thinking,
    TranscriptEvent,
    Turn,
)
from voiceagent.history import ConversationHistory, join_said
from voiceagent.interfaces import (
    ChatMessage,
    LanguageModel,
    ReplyLimits,
    Role,
    SpeechToText,
    TextToSpeech,
    Transcript,
)
from voiceagent.responder import Responder, heard_text
from voiceagent.transcript_filter import check_transcript
from voiceagent.turns.endpointing import (
    EndpointAction,
    EndpointingConfig,
    EndpointingPolicy,
    TurnDetectorHint,
)
from voiceagent.turns.sentences import whole_sentences
from voiceagent.turns.vad_state import (
    SilenceStarted,
    SpeechResumed,
    SpeechStarted,
    UtteranceStats,
    VadConfig,
    VadState,
    VadStateMachine,
)
from voiceagent.workers import ModelWorker

_log = logging.getLogger(__name__)


class VoiceActivityDetector(Protocol):
    def probability(self, frame: np.ndarray) -> float: ...
    def reset(self) -> None: ...
    def close(self) -> None: ...


class TurnDetector(Protocol):
    def end_probability(self, audio_16k: np.ndarray) -> float: ...
    def close(self) -> None: ...


class Duplex(StrEnum):
    HALF = "half"  # laptop speakers: the microphone is ignored while we speak
    FULL = "full"  # headsets: the user may interrupt


def hears_user_over_us(duplex: Duplex, input_hears_output: bool) -> bool:
    """Whether speech heard while we talk is the user's: with full duplex (a headset), or from
    an input that cannot hear our voice (a file). Then it interrupts us, and an answer begun
    too early can be taken back; in half duplex from a microphone it is ignored, as it is
    probably our own voice."""
    return duplex is Duplex.FULL or not input_hears_output


class State(Enum):
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"


PARTIAL_EVERY_S = 1.0
"""How often ``talk`` and ``bench`` transcribe the words so far while the user speaks."""

WEAK_VOICE_PROBABILITY = 0.8
"""A voiced frame below this speech probability often is the last before a pause: 73 of the 99
pauses of ../shared/audio/speech and hesitations.wav (63 below 0.7, 83 below 0.9), where 47
such frames in all were not followed by one (20 below 0.7, 97 below 0.9). On such a frame the
words so far are transcribed at once on the second STT copy; if the voice stops on the next
frame or the one after (a second weak frame, the fading end of the word), that transcript is
the pause's, 32-64 ms sooner. Otherwise the pause's own transcript would run beside it on the
other core, both slower."""


@dataclass(frozen=True)
class SessionOptions:
    duplex: Duplex = Duplex.HALF
    reply: bool = True
    realtime: bool = True
    max_turns: int | None = None
    endpointing: EndpointingConfig = field(default_factory=EndpointingConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    limits: ReplyLimits = field(default_factory=ReplyLimits)
    echo_tail_ms: float = 300.0  # half duplex: also ignore this long after our voice stops
    # A microphone may hear our voice; a file cannot. Only then is a transcript that repeats
    # our last reply taken for an echo (a user reading a file of sentences the LLM parroted
    # back must still be answered), and only then is the input ignored while we speak in half
    # duplex: speech from a file while we talk interrupts us, as it would on a headset.
    input_hears_output: bool = True
    echo_window_s: float = 2.0  # ... and only if it began this soon after our voice stopped
    max_buffer_s: float = 35.0
    # Transcribe the words so far this often while the user speaks (real time only): for the
    # display, and so the LLM can read the prompt ahead. None: only the pause is transcribed.
    partial_every_s: float | None = None
    # False: nothing starts on the user's words before the end of the turn is decided (no
    # early transcript, no read-ahead, no reply). The pause is still transcribed for the
    # end-of-turn policy, so the decisions are the same, but the turn's transcript is made
    # again once it is decided. `bench --no-speculation` measures what speculation buys.
    speculate: bool = True


@dataclass
class Models:
    """Loaded models and the worker thread each one runs on."""

    vad: VoiceActivityDetector
    stt: SpeechToText
    llm: LanguageModel | None = None
    tts: TextToSpeech | None = None
    turn: TurnDetector | None = None
    # A second instance of the STT model, on its own worker, for the words so far: a partial
    # still running when the pause begins then no longer holds up the pause's transcript
    # (it did in 6 of 33 turns, by up to 150 ms). Without it, partials share ``stt``.
    stt_partial: SpeechToText | None = None
    workers: dict[str, ModelWorker] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def worker(self, name: str) -> ModelWorker:
        if name not in self.workers:
            self.workers[name] = ModelWorker(name)
        return self.workers[name]

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()
        for model in (self.vad, self.stt, self.stt_partial, self.llm, self.tts, self.turn):
            if model is not None:
                model.close()


class FrameSource(Protocol):
    @property
    def overflow_count(self) -> int: ...
    def frames(self) -> AsyncIterator[AudioFrame]: ...


@dataclass
class _Utterance:
    start_sample: int
    speech_started_s: float
    began_s: float = 0.0  # session time the speech was confirmed
    voice_stopped_sample: int | None = None
    voice_stopped_s: float | None = None  # session time
    speculation: asyncio.Task[Any] | None = None
    transcript_done_s: float | None = None  # session time the speculation's text existed
    hint: asyncio.Task[float] | None = None
    hint_audio_end_s: float = 0.0
    partial: asyncio.Task[None] | None = None
    partial_upto: int = 0
    early: asyncio.Task[Transcript] | None = None  # transcript of the words up to early_upto
    early_upto: int = -1
    # When the user went on after a turn we answered too soon, the utterance starts where
    # that turn did: its words are transcribed again with the rest (see _go_on_from).
    says_again: str = ""  # that turn's transcript, which this one's replaces
    earlier_speech_s: float = 0.0  # that turn's voiced speech


@dataclass(frozen=True)
class _Answered:
    """The last utterance a reply was confirmed for: where its audio is, what it said."""

    start_sample: int
    speech_started_s: float
    speech_s: float
    voice_stopped_sample: int
    text: str


@dataclass
class _PendingReply:
    """A reply in the making. Until ``confirmed`` (the end of the turn is decided) it is
    speculative, started on the transcript of a pause. ``go`` lets its first audio out: open
    once confirmed and while the microphone hears no voice, so we never start talking over a
    user who is going on."""

    user_text: str
    generation: int
    confirmed: asyncio.Event
    go: asyncio.Event
    messages: list[ChatMessage]  # the prompt, taken before the history learns of this turn
    voice_stopped_s: float = 0.0
    latency: dict[str, float | None] = field(default_factory=dict)
    speculative: bool = False
    llm_started_early: bool = False


@dataclass
class SessionResult:
    turns: list[Turn] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    interruptions: int = 0
    input_overflows: int = 0


class VoiceSession:
    def __init__(
        self,
        models: Models,
        source: FrameSource,
        sink: AudioSink | None,
        events: EventSink,
        clock: Clock,
        options: SessionOptions,
        system_prompt: str = "",
        history_tokens: int = 1024,
        turn_log: Any = None,
    ) -> None:
        self.models = models
        self.source = source
        self.sink = sink
        self.events = events
        self.clock = clock
        self.options = options
        self.turn_log = turn_log
        self.state = State.LISTENING
        self.result = SessionResult()
        self._vad_state = VadStateMachine(options.vad)
        self._policy = EndpointingPolicy(options.endpointing)
        self._frames: deque[AudioFrame] = deque(
            maxlen=int(options.max_buffer_s * PIPELINE_RATE_HZ / FRAME_SAMPLES)
        )
        self._utterance: _Utterance | None = None
        self._generation = 0
        self._respond_task: asyncio.Task[None] | None = None
        self._pending: _PendingReply | None = None
        self._carried_user_text = ""  # said before a pause we wrongly took for the end
        self._answered: _Answered | None = None
        self._responder: Responder | None = None
        self._prefill: asyncio.Future[None] | None = None
        self._last_reply_text = ""
        self._started_s = clock.now_s()
        self._offset_s = 0.0  # session time minus audio time, from the latest frame
        self._held_since_s: float | None = None  # clock time the reply was held (see _update_hold)
        self.history: ConversationHistory | None = None
        if options.reply:
            assert models.llm is not None and models.tts is not None and sink is not None
            llm = models.llm
            self.history = ConversationHistory(
                system_prompt, budget_tokens=history_tokens, count_tokens=llm.count_tokens
            )
            self._responder = Responder(
                llm, models.tts, models.worker("llm"), models.worker("tts"),
                sink, clock, options.limits,
            )  # fmt: skip

    # --- plumbing ---------------------------------------------------------------------------

    def _now(self) -> float:
        return self.clock.now_s() - self._started_s

    def _emit(self, event: Event) -> None:
        self.events.emit(event)

    def _audio_between(self, start_sample: int, end_sample: int) -> np.ndarray:
        pieces = [
            f.samples[: f.valid_samples]
            for f in self._frames
            if f.sample_index + FRAME_SAMPLES > start_sample and f.sample_index < end_sample
        ]
        if not pieces:
            return np.zeros(0, np.float32)
        audio = np.concatenate(pieces)
        first = next(f.sample_index for f in self._frames if f.sample_index + FRAME_SAMPLES > start_sample)
        return audio[max(0, start_sample - first) : end_sample - first]

    def _is_our_voice_playing(self) -> bool:
        if self._responder is None:
            return False
        tail_s = self.options.echo_tail_ms / 1000
        return self.clock.now_s() < self._responder.speaking_until_s + tail_s

    @property
    def _pending_committed(self) -> bool:
        return self._pending is not None and self._pending.confirmed.is_set()

    def _reply_is_silent_yet(self) -> bool:
        """A confirmed reply whose first audio has not been played."""
        pending, responder = self._pending, self._responder
        if pending is None or not pending.confirmed.is_set() or responder is None:
            return False
        current = responder.current
        return current is None or not current.chunks

    def _update_audio_gate(self) -> None:
        """Hold the first audio while the microphone hears voice (a blip or a user going on)."""
        pending = self._pending
        if pending is None or not pending.confirmed.is_set():
            return
        if self._vad_state.state is VadState.SILENCE:
            pending.go.set()
        else:
            pending.go.clear()

    def _update_hold(self) -> None:
        """Voice heard over our reply holds it at once, before it is confirmed as speech.

        Where the user's speech interrupts us (see _hears_user_over_us) it takes min_speech_ms
        (250 ms) to tell it from a cough; until then the reply would play on over them, as it
        did over readers going on after a pause we took for their end. So the reply goes silent
        as soon as the VAD hears voice (two frames), and plays on from where it stopped if that
        voice is a blip; confirmed speech then interrupts it (_maybe_barge_in).
        """
        if self.sink is None or not self._hears_user_over_us or not self.options.realtime:
            return
        if self._held_since_s is not None:
            if self._vad_state.state is VadState.SILENCE:
                self._resume_held_reply()
            return
        if self._vad_state.state is VadState.CANDIDATE and self._reply_is_audible():
            self.sink.hold()
            self._held_since_s = self.clock.now_s()

    def _reply_is_audible(self) -> bool:
        responder = self._responder
        if responder is None or responder.current is None or not responder.current.chunks:
            return False
        return self.clock.now_s() < responder.speaking_until_s

    def _resume_held_reply(self) -> None:
        held_since_s, self._held_since_s = self._held_since_s, None
        if held_since_s is None or self.sink is None:
            return
        self.sink.resume()
        if self._responder is not None:
            self._responder.speaking_until_s += self.clock.now_s() - held_since_s

    @property
    def _turns_done(self) -> bool:
        limit = self.options.max_turns
        return limit is not None and len(self.result.turns) >= limit

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> SessionResult:
        """Listen until the source ends (or ``max_turns``), then finish the last reply."""
        self._emit(Listening(self._now()))
        vad_worker = self.models.worker("vad")
        frames = self.source.frames()
        try:
            async with contextlib.aclosing(frames):
                async for frame in frames:
                    await self._on_frame(frame, vad_worker)
                    if self._turns_done:
                        break
            await self._finish_listening()
            self._resume_held_reply()  # voice heard as the input ended never became speech
            self._abort_speculative_reply()
            if self._respond_task is not None:
                await self._respond_task
            if self.sink is not None:
                await self.sink.drain()
                if self.options.realtime and self._responder is not None:
                    await self.clock.sleep_until(self._responder.speaking_until_s)
        finally:
            await self._cancel_reply()
            self.result.input_overflows = self.source.overflow_count
            self._emit(
                SessionEnd(
                    self._now(),
                    turns=len(self.result.turns),
                    dropped=len(self.result.dropped),
                    input_overflows=self.result.input_overflows,
                )
            )
        return self.result

    async def _on_frame(self, frame: AudioFrame, vad_worker: ModelWorker) -> None:
        frame_end = frame.sample_index + frame.valid_samples
        self._offset_s = self._now() - frame_end / PIPELINE_RATE_HZ
        if not self._hears_user_over_us and self.options.realtime and self._is_our_voice_playing():
            # We are talking: whatever the microphone hears now is probably us. (As fast as
            # possible there is no shared timeline with our voice.)
            if self._vad_state.is_in_utterance or self._utterance is not None:
                self._abandon_utterance()
            return
        self._frames.append(frame)
        probability = await vad_worker.call(self.models.vad.probability, frame.samples)
        for event in self._vad_state.update(probability, frame_end):
            self._on_vad_event(event)
        self._update_hold()
        if self._reply_is_silent_yet():
            self._update_audio_gate()
        if self._utterance is not None:
            self._maybe_transcribe_early(self._utterance, probability, frame_end)
            self._maybe_partial(self._utterance, frame_end)
            await self._check_end_of_utterance(frame_end)
        if not self.options.realtime and self._respond_task is not None and self._pending_committed:
            # As fast as possible: one turn at a time, like a user who waits for the answer.
            await self._respond_task

    def _audio_time_to_session(self, sample: int) -> float:
        return sample / PIPELINE_RATE_HZ + self._offset_s

    def _on_vad_event(self, event: object) -> None:
        if isinstance(event, SpeechStarted):
            self._utterance = _Utterance(
                start_sample=event.audio_start_sample,
                speech_started_s=event.start_sample / PIPELINE_RATE_HZ,
                began_s=self.clock.now_s(),
            )
            self._emit(SpeechStart(self._now(), audio_s=event.start_sample / PIPELINE_RATE_HZ))
            answered, self._answered = self._answered, None
            if self._reply_is_silent_yet():
                # The user went on after we decided they were done, before we said a word:
                # drop the reply; their next words are merged into the same turn.
                self._abort_unheard_reply()
                self._go_on_from(answered, self._utterance)
            elif self._maybe_barge_in(event):
                self._go_on_from(answered, self._utterance)
        elif isinstance(event, SilenceStarted) and self._utterance is not None:
            utterance = self._utterance
            utterance.voice_stopped_sample = event.silence_start_sample
            utterance.voice_stopped_s = self._audio_time_to_session(event.silence_start_sample)
            missing = event.silence_start_sample - utterance.early_upto
            if utterance.early is not None and 0 <= missing <= self.options.vad.frame_samples:
                self._start_speculation(utterance, event.silence_start_sample, utterance.early)
            else:
                self._start_speculation(utterance, event.detected_sample)
        elif isinstance(event, SpeechResumed) and self._utterance is not None:
            # The user only paused: the early transcript is stale.
            self._utterance.voice_stopped_sample = None
            self._utterance.voice_stopped_s = None
            self._drop_speculation(self._utterance)
            self._abort_speculative_reply()

    def _go_on_from(self, answered: _Answered | None, utterance: _Utterance) -> None:
        """The user went on soon after a turn we answered, and the answer was dropped before a
        whole sentence of it was heard: that turn and this speech are one turn, as if we had
        waited. The new utterance starts where the answered one did, so its words are
        transcribed once, whole: a sentence's second half transcribed alone lost words
        ("...and it was natural there for..." for "...and it was natural therefore").

        Only within ``same_turn_ms`` of the voice stopping (a longer pause would have ended
        the turn even with the half-duplex longest wait), and only while the audio since then
        is all buffered and leaves room in Whisper's 30 s window. Otherwise the words are
        joined as text.
        """
        if answered is None:
            return
        config = self.options.endpointing
        stopped_s = answered.voice_stopped_sample / PIPELINE_RATE_HZ
        if (utterance.speech_started_s - stopped_s) * 1000 > config.same_turn_ms:
            return
        if utterance.speech_started_s - answered.speech_started_s > config.max_turn_s - 1.0:
            return
        if not self._buffer_holds(answered.start_sample):
            return
        utterance.start_sample = answered.start_sample
        utterance.speech_started_s = answered.speech_started_s
        utterance.says_again = answered.text
        utterance.earlier_speech_s = answered.speech_s

    def _buffer_holds(self, start_sample: int) -> bool:
        """Whether every frame from ``start_sample`` on is still buffered, none skipped."""
        frames = self._frames
        if not frames or frames[0].sample_index > start_sample:
            return False
        last = frames[-1]
        first = next(f for f in frames if f.sample_index + FRAME_SAMPLES > start_sample)
        held = sum(1 for f in frames if f.sample_index >= first.sample_index)
        return last.sample_index - first.sample_index == (held - 1) * FRAME_SAMPLES

    def _maybe_transcribe_early(
        self, utterance: _Utterance, probability: float, frame_end: int
    ) -> None:
        """On a weak voiced frame, transcribe the words so far on the second STT copy: if the
        voice stops within two frames, the pause's transcript is already on its way (see
        :data:`WEAK_VOICE_PROBABILITY`). Only while that copy is idle, so neither a partial
        nor the pause's own transcript ever queues behind it."""
        stt = self.models.stt_partial
        if (
            stt is None
            or not self.options.speculate
            or not self._vad_state.is_speech
            or probability >= WEAK_VOICE_PROBABILITY
            or (utterance.partial is not None and not utterance.partial.done())
            or (utterance.early is not None and not utterance.early.done())
        ):
            return
        audio = self._audio_between(utterance.start_sample, frame_end)
        utterance.early_upto = frame_end
        utterance.early = self._transcribe(utterance, audio, stt, "stt_partial")

    def _maybe_partial(self, utterance: _Utterance, frame_end: int) -> None:
        """The words so far, transcribed about every ``partial_every_s`` while the user speaks.

        They update the display, and with replies on they let the LLM read the prompt ahead
        (:meth:`_maybe_prefill`). They run on ``models.stt_partial`` when there is one, else
        only while the STT worker is free.
        """
        every_s = self.options.partial_every_s
        if every_s is None or not self._vad_state.is_speech:
            return
        if utterance.partial is not None and not utterance.partial.done():
            return
        if utterance.early is not None and not utterance.early.done():
            return
        shared = self.models.stt_partial is None
        if shared and utterance.speculation is not None and not utterance.speculation.done():
            return
        if frame_end - max(utterance.partial_upto, utterance.start_sample) < every_s * PIPELINE_RATE_HZ:
            return
        utterance.partial_upto = frame_end
        audio = self._audio_between(utterance.start_sample, frame_end)

        stt, worker = self.models.stt, "stt"
        if self.models.stt_partial is not None:
            stt, worker = self.models.stt_partial, "stt_partial"

        async def transcribe_partial() -> None:
            transcript = await self.models.worker(worker).call(stt.transcribe, audio)
            text = transcript.text.strip()
            if self._utterance is utterance and text:
                self._emit(PartialTranscript(self._now(), text=text))
                if utterance.voice_stopped_sample is None:
                    # Once the user pauses, the pause's own transcript is on its way and the
                    # LLM must stay free for the reply to it.
                    self._maybe_prefill(text, utterance.says_again)

        utterance.partial = asyncio.ensure_future(transcribe_partial())

    def _maybe_prefill(self, partial_text: str, says_again: str = "") -> None:
        """Have the LLM read the prompt with the user's words so far, but the last one (Whisper
        may still change it), so the reply only reads the rest of the prompt once the turn ends.
        Measured here on a 40-token user message: first token 82 ms instead of 233."""
        if self.history is None or self._respond_task is not None or not self.options.speculate:
            return
        words = partial_text.split()
        if len(words) < 3:
            return
        self._read_ahead(self._prompt_with(" ".join(words[:-1]), says_again))

    def _read_ahead(self, messages: list[ChatMessage]) -> None:
        """Have the LLM evaluate ``messages`` (but their closing tokens) on its worker now."""
        prefill = getattr(self.models.llm, "prefill", None)
        if prefill is None or (self._prefill is not None and not self._prefill.done()):
            return

        async def run() -> None:
            try:
                await self.models.worker("llm").call(prefill, messages)
            except Exception as exc:  # only a head start: the reply reads its whole prompt
                _log.debug("reading the prompt ahead failed: %s", exc)

        self._prefill = asyncio.ensure_future(run())

    def _start_speculation(
        self,
        utterance: _Utterance,
        upto_sample: int,
        early: asyncio.Task[Transcript] | None = None,
    ) -> None:
        """Transcribe the words up to ``upto_sample`` (or adopt ``early``, a transcript of them
        that may lack the last weak frame) and, with a turn model, judge whether the user is
        done."""
        self._drop_speculation(utterance)
        audio = self._audio_between(utterance.start_sample, upto_sample)
        speculation = early if early is not None else self._transcribe(utterance, audio)
        utterance.speculation = speculation
        if early is not None and early.done() and not early.cancelled():
            utterance.transcript_done_s = self._now()  # it finished before the pause was seen
        turn = self.models.turn
        if turn is not None:
            utterance.hint_audio_end_s = upto_sample / PIPELINE_RATE_HZ

            async def judge() -> float:
                # After the transcript, not beside it: on two cores Smart Turn slowed Whisper
                # by 17% (median), and the transcript is what the reply waits for. The hint
                # is still in time: the reply's first audio is ~200 ms further away.
                await asyncio.wait([speculation])
                return await self.models.worker("turn").call(turn.end_probability, audio)

            utterance.hint = asyncio.ensure_future(judge())

    def _transcribe(
        self,
        utterance: _Utterance,
        audio: np.ndarray,
        stt: SpeechToText | None = None,
        worker: str = "stt",
    ) -> asyncio.Task[Transcript]:
        """Transcribe on an STT worker. Once it is the utterance's speculation, note when the
        text exists and, if the user is still pausing, start the reply on it."""
        model = stt if stt is not None else self.models.stt

        async def transcribe() -> Transcript:
            transcript = await self.models.worker(worker).call(model.transcribe, audio)
            if utterance.speculation is task:
                utterance.transcript_done_s = self._now()
                if self._utterance is utterance and utterance.voice_stopped_sample is not None:
                    # Still pausing: start the reply now, not at the next frame (32 ms later).
                    self._maybe_start_speculative_reply(transcript, self._vad_state.stats())
            return transcript

        task = asyncio.ensure_future(transcribe())
        return task

    @staticmethod
    def _drop_speculation(utterance: _Utterance) -> None:
        for task in (utterance.speculation, utterance.hint):
            if task is not None:
                task.cancel()  # the running call finishes; its result is ignored
        utterance.speculation = None
        utterance.hint = None
        utterance.transcript_done_s = None

    def _abandon_utterance(self) -> None:
        if self._utterance is not None:
            self._drop_speculation(self._utterance)
        self._utterance = None
        self._vad_state.reset()
        self.models.vad.reset()

    async def _check_end_of_utterance(self, frame_end: int) -> None:
        utterance = self._utterance
        assert utterance is not None
        stats = self._vad_state.stats()
        speculation = utterance.speculation
        partial = None
        if speculation is not None and speculation.done() and not speculation.cancelled():
            with contextlib.suppress(Exception):
                partial = speculation.result().text
                self._maybe_start_speculative_reply(speculation.result(), stats)
        hint = None
        if utterance.hint is not None and utterance.hint.done() and not utterance.hint.cancelled():
            with contextlib.suppress(Exception):
                hint = TurnDetectorHint(utterance.hint.result(), utterance.hint_audio_end_s)
        stopped = utterance.voice_stopped_sample
        decision = self._policy.decide(
            voice_stopped_s=None if stopped is None else stopped / PIPELINE_RATE_HZ,
            now_s=frame_end / PIPELINE_RATE_HZ,
            speech_duration_s=_speech_s(utterance, stats),
            transcript=partial,
            turn_start_s=utterance.speech_started_s,
            hint=hint,
        )
        if decision.action is EndpointAction.WAIT:
            return
        self._utterance = None
        self._vad_state.reset()
        if decision.action is EndpointAction.TOO_SHORT:
            self._drop_speculation(utterance)
            self._abort_speculative_reply()
            self._record_drop("too_short", "")
            return
        await self._end_of_utterance(utterance, frame_end, stats)

    async def _end_of_utterance(
        self, utterance: _Utterance, frame_end: int, stats: UtteranceStats | None
    ) -> None:
        """``stats``: the VAD's counters for the utterance, taken before the VAD was reset."""
        decided_s = self._now()
        stop_sample = utterance.voice_stopped_sample
        if stop_sample is None:  # cut at the maximum turn length while still talking
            stop_sample = frame_end
            utterance.voice_stopped_s = self._audio_time_to_session(frame_end)
        voice_stopped_s = utterance.voice_stopped_s or decided_s
        speculative = utterance.speculation is not None and self.options.speculate
        if not speculative:
            if utterance.speculation is not None:  # made for the decision only
                self._drop_speculation(utterance)
                forget_drafts = getattr(self.models.stt, "forget_drafts", None)
                if forget_drafts is not None:
                    forget_drafts()  # a draft of the same audio would make it faster
            audio = self._audio_between(utterance.start_sample, stop_sample)
            utterance.speculation = self._transcribe(utterance, audio)
        transcript = await utterance.speculation
        # When the text existed: for a speculative transcript, usually before the end of the
        # turn was decided.
        ready_s = utterance.transcript_done_s if utterance.transcript_done_s is not None else self._now()
        eou_ms = (decided_s - voice_stopped_s) * 1000
        self._emit(
            SpeechEnd(
                decided_s,
                audio_s=stop_sample / PIPELINE_RATE_HZ,
                eou_ms=eou_ms,
                decided_audio_s=frame_end / PIPELINE_RATE_HZ,
            )
        )
        voiced_share = stats.voiced_share if stats else 0.0
        reason = self._drop_reason(transcript, voiced_share, utterance.began_s)
        if reason is not None:
            self._abort_speculative_reply()
            self._record_drop(reason, transcript.text)
            return
        self._emit(
            TranscriptEvent(ready_s, text=transcript.text, stt_ms=transcript.stt_ms,
                            audio_s=transcript.audio_s, continues=bool(utterance.says_again))
        )  # fmt: skip
        latency: dict[str, float | None] = {
            "eou": eou_ms,
            "stt": transcript.stt_ms,
            "transcript_ready": (ready_s - voice_stopped_s) * 1000,
            "llm_first_token": None,
            "tts_first_audio": None,
            "voice_to_voice": None,
        }
        if not self.options.reply:
            self._record_turn(transcript.text, "", latency, speculative)
            return
        pending = self._pending
        if pending is None or pending.confirmed.is_set() or pending.user_text != transcript.text:
            await self._cancel_reply()  # one reply at a time
            pending = self._start_reply(transcript.text, utterance.says_again)
        assert self.history is not None
        self.history.add_user(transcript.text, says_again=utterance.says_again)
        if self._carried_user_text:
            carried = self._carried_user_text
            pending.user_text = join_said(carried, transcript.text, utterance.says_again)
            self._carried_user_text = ""
        pending.voice_stopped_s = voice_stopped_s
        pending.latency = latency
        pending.speculative = speculative
        pending.confirmed.set()
        self._answered = _Answered(
            utterance.start_sample, utterance.speech_started_s, _speech_s(utterance, stats),
            stop_sample, transcript.text,
        )  # fmt: skip
        self._update_audio_gate()

    def _drop_reason(
        self, transcript: Transcript, voiced_share: float, began_s: float
    ) -> str | None:
        reason = check_transcript(transcript, voiced_share)
        if reason is not None:
            return str(getattr(reason, "value", reason))
        if self._is_echo(transcript.text, began_s):
            return "echo"
        return None

    def _maybe_start_speculative_reply(
        self, transcript: Transcript, stats: UtteranceStats | None
    ) -> None:
        """The user is pausing and the pause's transcript is ready: start thinking and
        synthesising now, so the answer is ready when the end of the turn is confirmed."""
        if not (self.options.reply and self.options.realtime and self.options.speculate):
            return
        if self._respond_task is not None:
            return
        utterance = self._utterance
        began_s = utterance.began_s if utterance is not None else self.clock.now_s()
        if self._drop_reason(transcript, stats.voiced_share if stats else 0.0, began_s) is not None:
            return
        says_again = utterance.says_again if utterance is not None else ""
        self._start_reply(transcript.text, says_again).llm_started_early = True

    def _abort_unheard_reply(self) -> None:
        if self._pending is not None:
            # The history keeps this as an unanswered user turn; the next one joins it.
            self._carried_user_text = f"{self._carried_user_text} {self._pending.user_text}".strip()
        self._drop_reply()

    def _abort_speculative_reply(self) -> None:
        pending = self._pending
        if pending is None or pending.confirmed.is_set():
            return
        self._drop_reply()

    def _drop_reply(self) -> None:
        """Abandon the current reply at once: late tokens and audio of its generation are
        ignored, and the LLM stops at its next token."""
        self._generation += 1
        if self._respond_task is not None:
            self._respond_task.cancel()
        self._respond_task = None
        self._pending = None
        self.state = State.LISTENING

    def _start_reply(self, user_text: str, says_again: str = "") -> _PendingReply:
        self._generation += 1
        pending = _PendingReply(
            user_text, self._generation, asyncio.Event(), asyncio.Event(),
            self._prompt_with(user_text, says_again),
        )  # fmt: skip
        self._pending = pending
        self._respond_task = asyncio.ensure_future(self._respond(pending))
        return pending

    def _prompt_with(self, user_text: str, says_again: str = "") -> list[ChatMessage]:
        """The history plus the new user message, without changing the history yet
        (``says_again``: see :meth:`ConversationHistory.add_user`)."""
        assert self.history is not None
        messages = self.history.messages()
        if messages and messages[-1].role is Role.USER:
            last = messages.pop()
            user_text = join_said(last.content, user_text, says_again)
        return [*messages, ChatMessage(Role.USER, user_text)]

    async def _respond(self, pending: _PendingReply) -> None:
        assert self._responder is not None and self.history is not None
        generation = pending.generation

        def is_current() -> bool:
            return generation == self._generation

        def first_audio() -> None:
            self.state = State.SPEAKING

        try:
            reply = asyncio.ensure_future(
                self._responder.reply(pending.messages, is_current, first_audio, gate=pending.go)
            )
            await pending.confirmed.wait()
            self.state = State.THINKING
            self._emit(Thinking(self._now()))
            outcome = await reply
        except Exception as exc:  # a model failing mid-turn must not end the session
            # The unanswered user turn stays; the next one is merged into it.
            self._emit(ErrorEvent(self._now(), message=f"reply failed: {exc}"))
            self._respond_task = None
            self._pending = None
            self.state = State.LISTENING
            return
        finally:
            if not reply.done():
                reply.cancel()
        if not is_current():
            return
        voice_stopped_s = pending.voice_stopped_s
        latency = pending.latency
        user_text = pending.user_text
        speculative = pending.speculative
        reply_text = outcome.text.strip()
        self.history.add_assistant(reply_text)
        # While the reply plays, the LLM reads the next prompt's start. That is nearly free,
        # unless the history was just trimmed: then the whole rest of the conversation is
        # evaluated again (~500 tokens, seconds), better now than when the user has spoken.
        self._read_ahead(self.history.messages())
        self._last_reply_text = reply_text
        self._emit(Reply(self._now(), text=reply_text))
        latency["llm_first_token"] = outcome.llm_first_token_ms
        latency["tts_first_audio"] = outcome.tts_first_audio_ms
        if outcome.first_audio_s is None and outcome.chunks and self.sink is not None:
            # A speaker reports its first sample from the device callback, once playing.
            await self.sink.drain()
            outcome.first_audio_s = self.sink.first_sample_time_s
            if not is_current():
                return
        if outcome.first_audio_s is not None:
            latency["voice_to_voice"] = (outcome.first_audio_s - self._started_s - voice_stopped_s) * 1000
        self._record_turn(
            user_text, reply_text, latency, speculative, reply_started_early=pending.llm_started_early
        )
        self.state = State.LISTENING
        self._respond_task = None
        self._pending = None

    @property
    def is_replying(self) -> bool:
        """A reply is being generated, or its audio is still playing."""
        if self._respond_task is not None or self._held_since_s is not None:
            return True
        return self._responder is not None and self.clock.now_s() < self._responder.speaking_until_s

    @property
    def _hears_user_over_us(self) -> bool:
        """See :func:`hears_user_over_us`."""
        return hears_user_over_us(self.options.duplex, self.options.input_hears_output)

    def _maybe_barge_in(self, event: SpeechStarted) -> bool:
        """Confirmed user speech while we reply stops us at once (see _hears_user_over_us).

        Speech is only confirmed after the VAD's min_speech_ms, so a cough never gets here.
        Returns whether a reply was stopped before a whole sentence of it was heard: it is
        forgotten, and the user's turn is not over.
        """
        if not self._hears_user_over_us or self._responder is None:
            return False
        if not self.is_replying:
            return False
        confirmed_s = self._audio_time_to_session(event.detected_sample)
        voice_began_s = self._audio_time_to_session(event.start_sample)
        return self._cut_reply(confirmed_s, voice_began_s, by="voice")

    def stop_reply(self) -> bool:
        """The user asked us to stop talking (a key in the terminal): the reply is cut as a
        barge-in cuts it, in either duplex mode, so a laptop-speaker user whose voice is not
        heard over ours can still interrupt. Call on the event loop's thread.

        Returns:
            Whether there was a reply to stop.
        """
        if self._responder is None or not self.is_replying:
            return False
        if self._pending is not None and not self._pending.confirmed.is_set():
            return False  # a reply made ahead in the user's pause: nothing was said yet
        self._cut_reply(self._now(), None, by="key")
        return True

    def _cut_reply(self, confirmed_s: float, voice_began_s: float | None, by: str) -> bool:
        """Silence and abandon the reply, keep in the history the whole sentences heard, and
        report it (``confirmed_s``: when the stop was decided, ``voice_began_s``: when the
        user's voice began, if it was their voice; session seconds). Returns whether it was
        forgotten (no whole sentence of it heard)."""
        assert self.sink is not None and self._responder is not None
        responder = self._responder
        heard_samples = self._heard_samples()
        current = responder.current
        first_sample_s = current.first_audio_s if current is not None else None
        if first_sample_s is None:
            first_sample_s = self.sink.first_sample_time_s
        self.sink.clear()
        cleared_s = self._now()
        # Held when the voice began: it has been silent since then.
        held_since_s, self._held_since_s = self._held_since_s, None
        silenced_s = cleared_s if held_since_s is None else held_since_s - self._started_s
        responder.speaking_until_s = self.clock.now_s()
        pending, still_writing = self._pending, self._respond_task is not None
        self._drop_reply()
        heard = heard_text(current.chunks, heard_samples) if current is not None else ""
        if still_writing and pending is not None and pending.confirmed.is_set() and current:
            # Cut off while the LLM was still writing: the turn was heard in part and is
            # reported with what was played (its `turn` event would otherwise never come).
            latency = dict(pending.latency)
            latency["llm_first_token"] = current.llm_first_token_ms
            latency["tts_first_audio"] = current.tts_first_audio_ms
            if first_sample_s is not None:
                stopped_s = self._started_s + pending.voice_stopped_s
                latency["voice_to_voice"] = (first_sample_s - stopped_s) * 1000
            self._record_turn(
                pending.user_text, heard, latency, pending.speculative,
                reply_started_early=pending.llm_started_early,
            )  # fmt: skip
        kept = whole_sentences(heard)
        if self.history is not None:
            # The LLM keeps the whole sentences that were heard, not a cut-off phrase: after
            # one reply cut to "In", SmolLM2-135M answered the next seven questions with "In"
            # (and with "The words of" after "The words of"). Cut inside its first sentence,
            # the reply is forgotten and the next words join the question it answered.
            self.history.replace_last_assistant(kept)
        self._last_reply_text = heard
        self.result.interruptions += 1
        # Audio already handed to a device still plays for its output latency.
        silent_s = silenced_s + float(getattr(self.sink, "output_latency_s", 0.0))
        self._emit(
            Interrupted(
                cleared_s,
                played_text=heard,
                silent_after_ms=(silent_s - confirmed_s) * 1000,
                talked_over_ms=0.0
                if voice_began_s is None
                else max(0.0, silent_s - voice_began_s) * 1000,
                by=by,
            )
        )
        if self.turn_log is not None and self.result.turns:
            self.turn_log.write_interruption(self.result.turns[-1].index, heard)
        return not kept

    def _heard_samples(self) -> int:
        """How much of the current reply reached the user's ears, in output samples.

        A speaker counts what it handed to the device; a file takes everything at once, so
        there the reply's own timeline (first sample time + elapsed) tells what was heard.
        """
        assert self.sink is not None and self._responder is not None
        current = self._responder.current
        if current is None or current.first_audio_s is None:
            return 0
        elapsed_s = max(0.0, self.clock.now_s() - current.first_audio_s)
        start = current.chunks[0].start_sample if current.chunks else 0
        by_time = start + int(elapsed_s * self.sink.output_rate_hz)
        return min(self.sink.played_samples, by_time)

    async def _cancel_reply(self) -> None:
        task = self._respond_task
        self._pending = None
        if task is None:
            return
        self._generation += 1
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        self._respond_task = None

    async def _finish_listening(self) -> None:
        """The input ended: an utterance still waiting for its end is ended now."""
        if self._utterance is not None and self._utterance.voice_stopped_sample is not None:
            last = self._frames[-1] if self._frames else None
            end = last.sample_index + last.valid_samples if last else 0
            utterance, self._utterance = self._utterance, None
            stats = self._vad_state.stats()
            # Nothing more will be heard: the reply's audio gate must not wait for silence.
            self._vad_state.reset()
            await self._end_of_utterance(utterance, end, stats)

    # --- bookkeeping ------------------------------------------------------------------------

    def _is_echo(self, text: str, began_s: float) -> bool:
        """Half duplex: a transcript that repeats what we just said, heard by a microphone
        soon after we said it, is our own voice."""
        options = self.options
        if hears_user_over_us(options.duplex, options.input_hears_output):
            return False
        if not self._last_reply_text or self._responder is None:
            return False
        if began_s > self._responder.speaking_until_s + options.echo_window_s:
            return False
        heard = _words(text)
        said = _words(self._last_reply_text)
        if not heard or not said:
            return False
        matcher = difflib.SequenceMatcher(a=heard, b=said, autojunk=False)
        matched = sum(block.size for block in matcher.get_matching_blocks())
        return matched / len(heard) >= 0.7

    def _record_drop(self, reason: str, text: str) -> None:
        event = Dropped(self._now(), reason=reason, text=text)
        self.result.dropped.append(event)
        self._emit(event)

    def _record_turn(
        self,
        user_text: str,
        reply_text: str,
        latency: dict[str, float | None],
        speculative: bool,
        reply_started_early: bool = False,
    ) -> None:
        rounded = {k: (None if v is None else round(v, 1)) for k, v in latency.items()}
        turn = Turn(
            self._now(),
            index=len(self.result.turns) + 1,
            user_text=user_text,
            reply_text=reply_text,
            latency_ms=rounded,
            speculative=speculative,
            reply_started_early=reply_started_early,
        )
        self.result.turns.append(turn)
        self._emit(turn)
        if self.turn_log is not None:
            self.turn_log.write_turn(turn, self.models.ids)


def _speech_s(utterance: _Utterance, stats: UtteranceStats | None) -> float:
    """Voiced speech in the utterance, with that of a turn it goes on from."""
    voiced_s = stats.speech_samples / PIPELINE_RATE_HZ if stats else 0.0
    return voiced_s + utterance.earlier_speech_s


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())
