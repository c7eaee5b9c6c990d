"""Memory is given back between replies, so a long conversation's resident memory stays flat."""

from __future__ import annotations

import asyncio
import ctypes.util
import gc
import platform
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from voiceagent.audio.clock import FakeClock
from voiceagent.audio.sinks import WavFileSink
from voiceagent.backends.llama_cpp import LlamaLlm
from voiceagent.interfaces import ChatMessage, ReplyLimits, Role
from voiceagent.responder import Responder
from voiceagent.workers import ModelWorker, trim_native_heap

RATE_HZ = 16000


class ScriptedLlm:
    def __init__(self, reply: str) -> None:
        self.reply = reply

    def stream_reply(
        self, messages: list[ChatMessage], limits: ReplyLimits, should_stop: Callable[[], bool]
    ) -> Iterator[str]:
        for word in self.reply.split():
            yield word + " "

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def close(self) -> None:
        pass


class ToneTts:
    """A voice that records which thread synthesised and released, in order."""

    sample_rate_hz = RATE_HZ

    def __init__(self, fail_release: bool = False) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail_release = fail_release

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        self.calls.append(("synthesize", threading.current_thread().name))
        yield np.full(RATE_HZ // 10, 0.1, dtype=np.float32)

    def release_memory(self) -> None:
        self.calls.append(("release", threading.current_thread().name))
        if self.fail_release:
            raise RuntimeError("arena busy")

    def close(self) -> None:
        pass


def reply_once(tts: ToneTts, tmp_path: Path) -> str:
    async def run() -> str:
        llm_worker, tts_worker = ModelWorker("llm"), ModelWorker("tts")
        clock = FakeClock()
        sink = WavFileSink.open(tmp_path / "reply.wav", RATE_HZ, clock=clock)
        try:
            responder = Responder(
                ScriptedLlm("Hello there. How are you today?"), tts, llm_worker, tts_worker,
                sink, clock, ReplyLimits(64, 10.0),
            )  # fmt: skip
            outcome = await responder.reply([ChatMessage(Role.USER, "hi")], lambda: True)
            return outcome.text
        finally:
            sink.close()
            llm_worker.close()
            tts_worker.close()

    return asyncio.run(run())


@pytest.mark.unit
def test_the_voice_releases_its_memory_after_each_reply_on_its_worker(tmp_path: Path) -> None:
    tts = ToneTts()
    assert reply_once(tts, tmp_path).startswith("Hello there.")
    kinds = [kind for kind, _ in tts.calls]
    assert kinds[-1] == "release" and kinds.count("release") == 1
    assert "synthesize" in kinds
    assert {thread for _, thread in tts.calls} == {tts.calls[0][1]}  # all on the TTS worker
    assert tts.calls[0][1].startswith("voiceagent-tts")


@pytest.mark.unit
def test_a_failed_release_does_not_fail_the_reply(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = reply_once(ToneTts(fail_release=True), tmp_path)
    assert text.startswith("Hello there.")
    assert "releasing memory after a reply failed" in caplog.text


@pytest.mark.unit
def test_trim_native_heap_works_where_glibc_is_the_allocator() -> None:
    is_glibc = platform.libc_ver()[0] == "glibc" and ctypes.util.find_library("c") is not None
    assert trim_native_heap() is is_glibc
    assert trim_native_heap() is is_glibc  # and again


class CyclicSampler:
    """Like llama-cpp-python's sampler: it holds itself in a reference cycle."""

    def __init__(self) -> None:
        self.closed = False
        self.me = self

    def close(self) -> None:
        self.closed = True


@pytest.mark.unit
def test_the_reply_sampler_is_freed_without_waiting_for_the_garbage_collector() -> None:
    sampler = CyclicSampler()
    owner = SimpleNamespace(_llama=SimpleNamespace(_sampler=sampler))
    LlamaLlm._free_sampler(owner)  # type: ignore[arg-type]
    assert sampler.closed
    assert owner._llama._sampler is None
    LlamaLlm._free_sampler(owner)  # type: ignore[arg-type]  # nothing left: no error


# -- with the real models -------------------------------------------------------------------


def _rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


@pytest.mark.models
def test_piper_gives_back_what_a_long_sentence_took(model_store_dir: Path) -> None:
    from voiceagent.backends.piper import PiperTts
    from voiceagent.models.catalog import ModelKind
    from voiceagent.models.store import resolve_model

    path = resolve_model("piper-en_US-joe-medium", ModelKind.TTS, store=model_store_dir)
    with PiperTts.load(path, threads=1) as tts:
        tts.release_memory()
        trim_native_heap()
        rested = _rss_mb()
        long_sentence = " ".join(["The quick brown fox jumps over the lazy dog"] * 4) + "."
        assert list(tts.synthesize(long_sentence))
        assert _rss_mb() > rested + 50  # the arena grew with the sentence...
        tts.release_memory()
        trim_native_heap()
        assert _rss_mb() < rested + 20  # ...and gave it back
        assert list(tts.synthesize("Still speaking."))  # the voice works after a release


@pytest.mark.models
def test_a_reply_leaves_no_native_sampler_behind(model_store_dir: Path) -> None:
    from voiceagent.models.catalog import ModelKind
    from voiceagent.models.store import resolve_model

    path = resolve_model("smollm2-135m-instruct", ModelKind.LLM, store=model_store_dir)
    with LlamaLlm.load(path, threads=1) as llm:
        messages = [ChatMessage(Role.USER, "Say hello.")]
        gc.collect()
        gc.disable()  # what only the collector would free must already be gone
        try:
            for _ in range(2):
                text = "".join(llm.stream_reply(messages, ReplyLimits(8, 10.0), lambda: False))
                assert text
                assert llm._llama._sampler is None
            alive = [o for o in gc.get_objects() if type(o).__name__ == "LlamaSampler"]
            assert alive == []  # closing the sampler also broke its reference cycle
        finally:
            gc.enable()
