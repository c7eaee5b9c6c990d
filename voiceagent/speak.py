"""``voiceagent say`` and ``voiceagent chat``: the reply half of the loop without a microphone."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from voiceagent.audio.clock import MonotonicClock
from voiceagent.config import Settings
from voiceagent.errors import UsageError
from voiceagent.interfaces import ReplyLimits
from voiceagent.models.catalog import ModelKind
from voiceagent.models.store import resolve_model
from voiceagent.turns.sentences import SpeakableChunker
from voiceagent.talk import open_sink
from voiceagent.turns.speech_text import text_for_speech


def say_text(text: str, settings: Settings, output: str | None) -> Path | None:
    """Speak ``text``; returns the WAV path when writing to a file."""
    from voiceagent.backends.piper import PiperTts

    if not text.strip():
        raise UsageError("nothing to say: the text is empty.", fix='voiceagent say "Hello"')
    tts = PiperTts.load(resolve_model(settings.voice, ModelKind.TTS), threads=settings.threads)
    clock = MonotonicClock()
    sink = open_sink(output, tts.sample_rate_hz, clock)
    try:
        chunker = SpeakableChunker()
        for chunk in [*chunker.feed(text), *chunker.flush()]:
            for audio in tts.synthesize(text_for_speech(chunk)):
                sink.write(audio, tts.sample_rate_hz)
        asyncio.run(sink.drain())
    finally:
        sink.close()
        tts.close()
    return getattr(sink, "path", None)


def run_chat(settings: Settings, *, speak: bool, output: str | None) -> None:
    """A typed conversation on stdin/stdout, with the same history rules as ``talk``."""
    from voiceagent.backends.llama_cpp import LlamaLlm
    from voiceagent.history import ConversationHistory

    llm = LlamaLlm.load(
        resolve_model(settings.llm_model, ModelKind.LLM),
        threads=settings.llm_threads,
        context_tokens=settings.context_tokens,
    )
    tts = sink = None
    if speak:
        from voiceagent.backends.piper import PiperTts

        tts = PiperTts.load(resolve_model(settings.voice, ModelKind.TTS), threads=1)
        sink = open_sink(output, tts.sample_rate_hz, MonotonicClock())
    history = ConversationHistory(
        settings.system_prompt, budget_tokens=settings.history_tokens, count_tokens=llm.count_tokens
    )
    limits = ReplyLimits(max_tokens=settings.max_reply_tokens, max_s=settings.max_reply_s)
    interactive = sys.stdin.isatty()
    try:
        while True:
            if interactive:
                print("you> ", end="", flush=True)
            line = sys.stdin.readline()
            if not line:
                break
            if not line.strip():
                continue
            history.add_user(line.strip())
            reply = ""
            chunker = SpeakableChunker()
            print("assistant> " if interactive else "", end="", flush=True)
            for delta in llm.stream_reply(history.messages(), limits, lambda: False):
                print(delta, end="", flush=True)
                reply += delta
                if tts is not None and sink is not None:
                    for chunk in chunker.feed(delta):
                        _speak(tts, sink, chunk)
            if tts is not None and sink is not None:
                for chunk in chunker.flush():
                    _speak(tts, sink, chunk)
            print(flush=True)
            history.add_assistant(reply.strip())
        if sink is not None:
            asyncio.run(sink.drain())
    finally:
        if sink is not None:
            sink.close()
        if tts is not None:
            tts.close()
        llm.close()


def _speak(tts, sink, chunk: str) -> None:  # noqa: ANN001
    for audio in tts.synthesize(text_for_speech(chunk)):
        sink.write(audio, tts.sample_rate_hz)


