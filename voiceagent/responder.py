"""One spoken reply: LLM tokens -> speakable chunks -> Piper -> the sink, all streamed.

The LLM iterates on its own worker thread and hands text deltas to the event loop through an
asyncio queue; each chunk is synthesised on the TTS worker while the LLM keeps writing. A
generation number marks the reply: once the session bumps it (barge-in, shutdown) late tokens
and audio are dropped and the LLM is told to stop between tokens.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from voiceagent.audio.clock import Clock
from voiceagent.audio.sinks import AudioSink
from voiceagent.interfaces import ChatMessage, LanguageModel, ReplyLimits, TextToSpeech
from voiceagent.turns.sentences import SpeakableChunker
from voiceagent.turns.speech_text import text_for_speech
from voiceagent.workers import ModelWorker, trim_native_heap

_log = logging.getLogger(__name__)


@dataclass
class SpokenChunk:
    """A piece of the reply as it went to the sink, to tell later what the user heard."""

    text: str
    start_sample: int  # sink.played_samples before it was written
    sample_count: int


@dataclass
class ReplyOutcome:
    text: str = ""
    llm_first_token_ms: float | None = None
    tts_first_audio_ms: float | None = None
    first_audio_s: float | None = None
    chunks: list[SpokenChunk] = field(default_factory=list)


class Responder:
    def __init__(
        self,
        llm: LanguageModel,
        tts: TextToSpeech,
        llm_worker: ModelWorker,
        tts_worker: ModelWorker,
        sink: AudioSink,
        clock: Clock,
        limits: ReplyLimits,
    ) -> None:
        self.llm = llm
        self.tts = tts
        self.llm_worker = llm_worker
        self.tts_worker = tts_worker
        self.sink = sink
        self.clock = clock
        self.limits = limits
        self.speaking_until_s = float("-inf")
        self.current: ReplyOutcome | None = None  # the reply being spoken, for barge-in

    async def reply(
        self,
        messages: list[ChatMessage],
        is_current: Callable[[], bool],
        on_first_audio: Callable[[], None] | None = None,
        gate: asyncio.Event | None = None,
    ) -> ReplyOutcome:
        """Generate and speak one reply; returns what was said and when.

        ``is_current`` turns false when the reply is abandoned (barge-in or shutdown). With a
        ``gate`` the reply is speculative: tokens and the first chunk's audio are made at once,
        but nothing reaches the sink until the gate opens (the end of the turn is confirmed).
        """
        loop = asyncio.get_running_loop()
        deltas: asyncio.Queue[str | None] = asyncio.Queue()
        stop = threading.Event()
        # Cleared while the first chunk is synthesised: the LLM waits between tokens, so the
        # voice has both cores for the sound the user is waiting for. The LLM is far ahead of
        # the voice anyway (the first chunk plays for ~1 s; the second needs ~0.3 s to make).
        may_generate = threading.Event()
        may_generate.set()
        outcome = ReplyOutcome()
        self.current = outcome
        started_s = self.clock.now_s()

        def should_stop() -> bool:
            return stop.is_set() or not is_current()

        def generate() -> None:
            try:
                for delta in self.llm.stream_reply(messages, self.limits, should_stop):
                    loop.call_soon_threadsafe(deltas.put_nowait, delta)
                    while not may_generate.wait(0.1) and not should_stop():
                        pass
            finally:
                loop.call_soon_threadsafe(deltas.put_nowait, None)

        generation = asyncio.ensure_future(self.llm_worker.call(generate))
        chunker = SpeakableChunker()
        self.sink.mark_start()
        try:
            while (delta := await deltas.get()) is not None:
                if outcome.llm_first_token_ms is None:
                    outcome.llm_first_token_ms = (self.clock.now_s() - started_s) * 1000
                outcome.text += delta
                for chunk in chunker.feed(delta):
                    if not is_current():
                        break
                    if not outcome.chunks and outcome.tts_first_audio_ms is None:
                        may_generate.clear()  # the first chunk: see may_generate
                    try:
                        await self._speak(
                            chunk, outcome, is_current, on_first_audio, gate, may_generate.set
                        )
                    finally:
                        may_generate.set()
                if not is_current():
                    break
            if is_current():
                for chunk in chunker.flush():
                    await self._speak(chunk, outcome, is_current, on_first_audio, gate)
        finally:
            stop.set()
            may_generate.set()
            await asyncio.shield(generation)
        await self.tts_worker.call(self._release_memory)
        return outcome

    def _release_memory(self) -> None:
        """After a reply (on the TTS worker): the voice frees its scratch memory, then the C heap
        returns its free pages, so a long conversation's resident memory stays flat."""
        release = getattr(self.tts, "release_memory", None)
        try:
            if release is not None:
                release()
            trim_native_heap()
        except Exception as exc:  # memory is only given back; the conversation goes on
            _log.warning("releasing memory after a reply failed: %s", exc)

    async def _speak(
        self,
        chunk: str,
        outcome: ReplyOutcome,
        is_current: Callable[[], bool],
        on_first_audio: Callable[[], None] | None,
        gate: asyncio.Event | None,
        synthesised: Callable[[], None] | None = None,
    ) -> None:
        text = text_for_speech(chunk)
        if not text.strip():
            return
        asked_s = self.clock.now_s()
        audio = await self.tts_worker.call(lambda: list(self.tts.synthesize(text)))
        done_s = self.clock.now_s()
        if synthesised is not None:
            synthesised()
        if outcome.tts_first_audio_ms is None:
            outcome.tts_first_audio_ms = (done_s - asked_s) * 1000
        rate = self.tts.sample_rate_hz
        samples = sum(len(a) for a in audio)
        if samples == 0:
            return
        if gate is not None and not gate.is_set():
            await gate.wait()
        if not is_current():
            return
        if on_first_audio is not None and not outcome.chunks:
            on_first_audio()
        before = _written_position(self.sink)
        for piece in audio:
            self.sink.write(piece, rate)
        if outcome.first_audio_s is None:
            outcome.first_audio_s = self.sink.first_sample_time_s
        duration_s = samples / rate
        now_s = self.clock.now_s()
        self.speaking_until_s = max(self.speaking_until_s, now_s) + duration_s
        outcome.chunks.append(SpokenChunk(text, before, _written_position(self.sink) - before))


def _written_position(sink: AudioSink) -> int:
    """Samples handed to the sink so far, whether played yet or still queued."""
    return sink.played_samples + int(getattr(sink, "queued_samples", 0))


def heard_text(chunks: list[SpokenChunk], heard_samples: int) -> str:
    """The part of a reply the user heard before it was cut: whole chunks, then the share of
    the cut chunk's words that fits the time it played."""
    words: list[str] = []
    for chunk in chunks:
        if heard_samples >= chunk.start_sample + chunk.sample_count:
            words.extend(chunk.text.split())
        elif heard_samples > chunk.start_sample and chunk.sample_count:
            share = (heard_samples - chunk.start_sample) / chunk.sample_count
            chunk_words = chunk.text.split()
            words.extend(chunk_words[: int(len(chunk_words) * share)])
            break
        else:
            break
    return " ".join(words)
