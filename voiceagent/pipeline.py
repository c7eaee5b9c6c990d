"""Build a session's models from settings: resolve ids or paths, load each on its worker."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from voiceagent.backends._imports import require
from voiceagent.config import Settings
from voiceagent.models.catalog import ModelKind
from voiceagent.models.store import resolve_model
from voiceagent.session import Models
from voiceagent.workers import ModelWorker

AUTO_TURN_MODEL = "smart-turn-v3.2"


def resolve_all(settings: Settings, reply: bool) -> dict[str, Path]:
    """Check every model exists and is intact before anything is loaded (fail fast)."""
    paths = {
        "vad": resolve_model(settings.vad_model, ModelKind.VAD),
        "stt": resolve_model(settings.stt_model, ModelKind.STT),
    }
    if reply:
        paths["llm"] = resolve_model(settings.llm_model, ModelKind.LLM)
        paths["tts"] = resolve_model(settings.voice, ModelKind.TTS)
    turn = turn_model_ref(settings)
    if turn is not None:
        paths["turn"] = resolve_model(turn, ModelKind.TURN)
    return paths


def turn_model_ref(settings: Settings) -> str | None:
    """The end-of-turn model to use: "auto" takes Smart Turn when it is in the store."""
    ref = settings.turn_model
    if ref in (None, "", "none", "off"):
        return None
    if ref == "auto":
        from voiceagent.models.catalog import get_spec
        from voiceagent.models.store import ModelStatus, check_model

        spec = get_spec(AUTO_TURN_MODEL)
        return AUTO_TURN_MODEL if check_model(spec).status == ModelStatus.READY else None
    return ref


def load_model(kind: ModelKind, path: Path, settings: Settings) -> Any:
    """Load one model with the product's settings (call it on the model's worker thread)."""
    if kind is ModelKind.VAD:
        from voiceagent.backends.silero import SileroVad

        return SileroVad.load(path, threads=1)
    if kind is ModelKind.STT:
        from voiceagent.backends.faster_whisper import WhisperStt

        return WhisperStt.load(path, threads=settings.stt_threads, warm_up_audio=_warm_up_speech())
    if kind is ModelKind.LLM:
        from voiceagent.backends.llama_cpp import LlamaLlm

        llm = LlamaLlm.load(
            path,
            threads=settings.llm_threads,
            batch_threads=settings.llm_threads,
            context_tokens=settings.context_tokens,
        )
        llm.warm_up(settings.system_prompt)
        return llm
    if kind is ModelKind.TTS:
        from voiceagent.backends.piper import PiperTts

        return PiperTts.load(path, threads=settings.tts_threads)
    if kind is ModelKind.TURN:
        from voiceagent.backends.smart_turn import SmartTurn

        return SmartTurn.load(path, threads=1)
    raise ValueError(f"no loader for {kind}")


def _warm_up_speech() -> Any:
    """The bundled question as 16 kHz float32, or None if it cannot be read (a broken install)."""
    from voiceagent.audio.files import read_audio
    from voiceagent.errors import AudioError
    from voiceagent.paths import SAMPLE_QUESTION

    try:
        return read_audio(SAMPLE_QUESTION).samples
    except AudioError:  # only a warm-up: the model works without it
        return None


def _modules_for(paths: dict[str, Path]) -> list[str]:
    modules = {
        "vad": ["onnxruntime"],
        "stt": ["faster_whisper", "faster_whisper.feature_extractor"],
        "llm": ["llama_cpp"],
        "tts": ["onnxruntime", "piper"],
        "turn": ["onnxruntime", "faster_whisper.feature_extractor"],
    }
    return list(dict.fromkeys(m for name in paths for m in modules[name]))


_KINDS = {
    "vad": ModelKind.VAD,
    "stt": ModelKind.STT,
    "llm": ModelKind.LLM,
    "tts": ModelKind.TTS,
    "turn": ModelKind.TURN,
}


def load_models(settings: Settings, reply: bool, partials: bool = False) -> Models:
    """Load the models, each on its own worker thread, in parallel.

    With ``partials`` a second copy of the STT model transcribes the words so far while the
    user speaks (see :attr:`Models.stt_partial`).
    """
    paths = resolve_all(settings, reply)
    # Import the libraries here, one after the other: two loader threads importing the same
    # package at once (faster_whisper for Whisper and Smart Turn) trip Python's import lock.
    for module in _modules_for(paths):
        require(module)
    ids = {"vad": settings.vad_model, "stt": settings.stt_model}
    if reply:
        ids.update(llm=settings.llm_model, tts=settings.voice)
    if "turn" in paths:
        ids["turn"] = str(turn_model_ref(settings))
    jobs = dict(paths)
    kinds = dict(_KINDS)
    if partials:
        jobs["stt_partial"] = paths["stt"]
        kinds["stt_partial"] = _KINDS["stt"]
    workers = {name: ModelWorker(name) for name in jobs}
    futures = {
        name: workers[name].submit(functools.partial(load_model, kinds[name], path, settings))
        for name, path in jobs.items()
    }
    loaded: dict[str, Any] = {}
    first_error: BaseException | None = None
    for name, future in futures.items():
        try:
            loaded[name] = future.result()
        except BaseException as exc:  # re-raised below, after the others are closed
            first_error = first_error or exc
    if first_error is not None:
        for model in loaded.values():
            model.close()
        for worker in workers.values():
            worker.close()
        raise first_error
    return Models(
        vad=loaded["vad"],
        stt=loaded["stt"],
        llm=loaded.get("llm"),
        tts=loaded.get("tts"),
        turn=loaded.get("turn"),
        stt_partial=loaded.get("stt_partial"),
        workers=workers,
        ids=ids,
    )
