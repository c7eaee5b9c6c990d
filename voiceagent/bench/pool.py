"""Load every model of a model matrix once, and hand each configuration its set.

``pipeline.load_models`` loads one full set per call; a matrix such as ``--stt a,b --llm x,y``
would load the VAD four times and each STT and LLM twice. The pool loads each (kind, id) once,
with the same backends and arguments as ``pipeline.load_models``, each on its own worker thread,
and builds a :class:`~voiceagent.session.Models` per configuration that shares them.

The LLM and TTS handed to a session are wrapped in :class:`TimedLlm` / :class:`TimedTts`, which
count generated tokens, compute time and audio produced, for tokens/s and real-time factors.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voiceagent.config import Settings
from voiceagent.interfaces import ChatMessage, LanguageModel, ReplyLimits, TextToSpeech
from voiceagent.models.catalog import ModelKind
from voiceagent.session import Models
from voiceagent.workers import ModelWorker


@dataclass(frozen=True)
class ModelChoice:
    """The models of one configuration (catalog ids or local paths)."""

    stt: str
    llm: str
    voice: str


@dataclass
class _Loaded:
    model: Any
    worker: ModelWorker
    path: Path
    rss_mb: float  # resident memory the process grew by while loading it


class ModelPool:
    """Each model loaded once, on its own worker thread; closed together by :meth:`close`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loaded: dict[tuple[ModelKind, str], _Loaded] = {}
        self._partial_stt: dict[str, _Loaded] = {}  # a second STT per id, for partials

    def resolve(self, choices: list[ModelChoice], reply: bool) -> dict[tuple[ModelKind, str], Path]:
        """Check every model exists and is intact before anything loads (fail fast)."""
        from voiceagent.models.store import resolve_model

        from voiceagent.pipeline import turn_model_ref

        wanted = [(ModelKind.VAD, self.settings.vad_model)]
        turn = turn_model_ref(self.settings)
        if turn is not None:
            wanted.append((ModelKind.TURN, turn))
        for choice in choices:
            wanted.append((ModelKind.STT, choice.stt))
            if reply:
                wanted += [(ModelKind.LLM, choice.llm), (ModelKind.TTS, choice.voice)]
        return {key: resolve_model(key[1], key[0]) for key in dict.fromkeys(wanted)}

    def load(
        self,
        choices: list[ModelChoice],
        reply: bool,
        on_loading: Callable[[ModelKind, str], None] | None = None,
    ) -> None:
        """Load every model the configurations need, one at a time (so memory is attributable)."""
        for key, path in self.resolve(choices, reply).items():
            if key in self._loaded:
                continue
            if on_loading is not None:
                on_loading(*key)
            self._loaded[key] = self._load_on_own_worker(key[0], path, f"{key[0]}")
        if reply:  # real time: the words so far are transcribed by a second copy, as in `talk`
            for choice in choices:
                if choice.stt not in self._partial_stt:
                    path = self._loaded[(ModelKind.STT, choice.stt)].path
                    loaded = self._load_on_own_worker(ModelKind.STT, path, "stt_partial")
                    self._partial_stt[choice.stt] = loaded

    def _load_on_own_worker(self, kind: ModelKind, path: Path, worker_name: str) -> _Loaded:
        """Load one model on a new worker thread, noting how much memory it took."""
        from voiceagent.bench.machine import current_rss_mb

        worker = ModelWorker(worker_name)
        before_mb = current_rss_mb()
        try:
            model = worker.submit(functools.partial(self._load_one, kind, path)).result()
        except BaseException:
            worker.close()
            raise
        return _Loaded(model, worker, path, max(0.0, current_rss_mb() - before_mb))

    def _load_one(self, kind: ModelKind, path: Path) -> Any:
        from voiceagent.pipeline import load_model

        return load_model(kind, path, self.settings)

    def vad(self) -> tuple[Any, ModelWorker]:
        """The loaded VAD and its worker (for the offline end-of-speech pass)."""
        loaded = self._loaded[(ModelKind.VAD, self.settings.vad_model)]
        return loaded.model, loaded.worker

    def path(self, kind: ModelKind, ref: str) -> Path:
        return self._loaded[(kind, ref)].path

    def models_rss_mb(self, choice: ModelChoice, reply: bool) -> float:
        """Memory the configuration's own models took when they loaded."""
        keys = [(ModelKind.VAD, self.settings.vad_model), (ModelKind.STT, choice.stt)]
        if reply:
            keys += [(ModelKind.LLM, choice.llm), (ModelKind.TTS, choice.voice)]
        return sum(self._loaded[k].rss_mb for k in keys)

    def models_for(self, choice: ModelChoice, reply: bool) -> SessionModels:
        """A fresh :class:`Models` for one session; the models inside are shared, never closed
        by the session (the pool closes them)."""
        vad = self._loaded[(ModelKind.VAD, self.settings.vad_model)]
        stt = self._loaded[(ModelKind.STT, choice.stt)]
        workers = {"vad": vad.worker, "stt": stt.worker}
        ids = {"vad": self.settings.vad_model, "stt": choice.stt}
        turn = next((v for (kind, _), v in self._loaded.items() if kind is ModelKind.TURN), None)
        if turn is not None:
            workers["turn"] = turn.worker
        llm: TimedLlm | None = None
        tts: TimedTts | None = None
        if reply:
            loaded_llm = self._loaded[(ModelKind.LLM, choice.llm)]
            loaded_tts = self._loaded[(ModelKind.TTS, choice.voice)]
            llm, tts = TimedLlm(loaded_llm.model), TimedTts(loaded_tts.model)
            workers.update(llm=loaded_llm.worker, tts=loaded_tts.worker)
            ids.update(llm=choice.llm, tts=choice.voice)
        partial = self._partial_stt.get(choice.stt) if reply else None
        if partial is not None:
            workers["stt_partial"] = partial.worker
        models = Models(
            vad=vad.model,
            stt=stt.model,
            stt_partial=partial.model if partial is not None else None,
            llm=llm,
            tts=tts,
            turn=turn.model if turn is not None else None,
            workers=workers,
            ids=ids,
        )
        return SessionModels(models, llm, tts)

    def close(self) -> None:
        for loaded in [*self._loaded.values(), *self._partial_stt.values()]:
            loaded.worker.close()
            loaded.model.close()
        self._loaded.clear()
        self._partial_stt.clear()


@dataclass
class SessionModels:
    models: Models
    llm: TimedLlm | None
    tts: TimedTts | None


@dataclass
class TimedLlm:
    """A :class:`LanguageModel` that counts what it generates and how long that takes."""

    inner: LanguageModel
    generated_tokens: int = 0
    generate_s: float = 0.0
    replies: int = field(default=0)

    def stream_reply(
        self, messages: list[ChatMessage], limits: ReplyLimits, should_stop: Callable[[], bool]
    ) -> Iterator[str]:
        started = time.perf_counter()
        deltas = 0
        try:
            for delta in self.inner.stream_reply(messages, limits, should_stop):
                deltas += 1
                yield delta
        finally:
            self.generate_s += time.perf_counter() - started
            self.replies += 1
            # llama.cpp's own count is exact (a token may decode to no text); else count deltas.
            stats = getattr(self.inner, "last_reply", None)
            self.generated_tokens += int(getattr(stats, "generated_tokens", deltas))

    def start_fresh(self, system_prompt: str) -> None:
        """Hold the system prompt in the cache and nothing else, as ``talk`` does once loaded.
        Without it a session found the last session's prompt there, its own when another
        configuration with the same LLM had just answered the same recording."""
        warm_up = getattr(self.inner, "warm_up", None)
        if warm_up is not None:
            warm_up(system_prompt)

    def prefill(self, messages: list[ChatMessage]) -> int:
        """Reading the prompt ahead, as in ``talk`` (not counted as generation)."""
        prefill = getattr(self.inner, "prefill", None)
        return 0 if prefill is None else int(prefill(messages))

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def close(self) -> None:  # the pool owns the model
        pass


class TimedTts:
    """A :class:`TextToSpeech` that adds up synthesis time and the audio it produced."""

    def __init__(self, inner: TextToSpeech) -> None:
        self.inner = inner
        self.sample_rate_hz = inner.sample_rate_hz
        self.compute_s = 0.0
        self.audio_samples = 0

    @property
    def audio_s(self) -> float:
        return self.audio_samples / self.sample_rate_hz

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        started = time.perf_counter()
        for chunk in self.inner.synthesize(text):
            self.compute_s += time.perf_counter() - started
            self.audio_samples += len(chunk)
            yield chunk
            started = time.perf_counter()
        self.compute_s += time.perf_counter() - started

    def release_memory(self) -> None:
        release = getattr(self.inner, "release_memory", None)
        if release is not None:
            release()

    def close(self) -> None:  # the pool owns the model
        pass
