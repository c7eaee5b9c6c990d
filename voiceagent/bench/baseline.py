"""The sequential pipeline a user would write from the libraries' READMEs, to compare against.

    wait for 1000 ms of silence (a simple VAD loop)
    -> faster-whisper ``WhisperModel.transcribe()`` with its defaults (beam 5, 30 s window)
    -> llama-cpp-python ``create_chat_completion()`` (whole reply, no streaming)
    -> Piper ``PiperVoice.synthesize()`` (all of it)
    -> play: the first sample goes out now.

Same model files, same thread count for Whisper and llama.cpp, same system prompt and reply
token cap as the streaming session; Piper is loaded as its README does (``PiperVoice.load``,
onnxruntime picks its threads) and llama.cpp samples with its own defaults. Nothing overlaps, so each stage's "first output" is its
whole run: ``voice_to_voice`` = silence wait + STT + LLM + TTS, measured from the offline VAD's
end of speech like the streaming runs. The stages run back to back on the calling thread;
nothing waits in real time, the silence wait is added as the fixed number it is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voiceagent.audio.formats import PIPELINE_RATE_HZ
from voiceagent.backends._imports import require
from voiceagent.bench.corpus import Utterance
from voiceagent.bench.runner import SpeechSpan, UtteranceResult
from voiceagent.config import Settings

SILENCE_WAIT_MS = 1000.0


@dataclass(frozen=True)
class BaselinePaths:
    stt: Path
    llm: Path
    voice: Path


class BaselinePipeline:
    """Whisper, llama.cpp and Piper used the plain way, one after the other."""

    def __init__(self, whisper: Any, llama: Any, voice: Any, settings: Settings) -> None:
        self._whisper = whisper
        self._llama = llama
        self._voice = voice
        self.settings = settings
        self.silence_wait_ms = SILENCE_WAIT_MS

    @classmethod
    def load(cls, paths: BaselinePaths, settings: Settings, reply: bool = True) -> BaselinePipeline:
        faster_whisper = require("faster_whisper")
        whisper = faster_whisper.WhisperModel(
            str(paths.stt), device="cpu", compute_type="int8", cpu_threads=settings.threads,
            local_files_only=True,
        )  # fmt: skip
        llama = voice = None
        if reply:
            llama_cpp = require("llama_cpp")
            llama = llama_cpp.Llama(
                model_path=str(paths.llm), n_ctx=settings.context_tokens,
                n_threads=settings.threads, verbose=False,
            )  # fmt: skip
            piper = require("piper")
            voice = piper.PiperVoice.load(str(paths.voice))
        return cls(whisper, llama, voice, settings)

    def run(
        self, utterance: Utterance, samples: np.ndarray, speech: SpeechSpan | None
    ) -> UtteranceResult:
        """One turn: record until the silence wait has passed, then each stage in turn."""
        result = UtteranceResult(
            utterance.corpus, utterance.name, len(samples) / PIPELINE_RATE_HZ,
            utterance.reference, None if speech is None else speech.end_s,
        )  # fmt: skip
        if speech is None:
            return result  # the VAD loop never heard speech, so it never started a turn
        # The loop records from the start until the silence after the voice is long enough.
        end = round((speech.end_s + self.silence_wait_ms / 1000) * PIPELINE_RATE_HZ)
        recorded = samples[:end]
        if len(recorded) < end:
            recorded = np.pad(recorded, (0, end - len(recorded)))

        started = time.perf_counter()
        segments, _info = self._whisper.transcribe(recorded.astype(np.float32))
        text = " ".join(s.text.strip() for s in segments).strip()
        stt_ms = (time.perf_counter() - started) * 1000
        result.stt_ms, result.stt_audio_s = stt_ms, len(recorded) / PIPELINE_RATE_HZ
        if not text:
            result.dropped = ["empty_transcript"]
            return result
        result.hypothesis, result.turns = text, 1
        latency: dict[str, float | None] = {
            "eou": self.silence_wait_ms,
            "eou_true": self.silence_wait_ms,
            "stt": stt_ms,
            "transcript_ready": self.silence_wait_ms + stt_ms,
        }
        if self._llama is None or self._voice is None:
            result.latency_ms = latency
            return result

        started = time.perf_counter()
        completion = self._llama.create_chat_completion(
            messages=[
                {"role": "system", "content": self.settings.system_prompt},
                {"role": "user", "content": text},
            ],
            max_tokens=self.settings.max_reply_tokens,
        )
        llm_ms = (time.perf_counter() - started) * 1000
        reply = (completion["choices"][0]["message"].get("content") or "").strip()
        result.reply = reply
        result.llm_tokens = int(completion.get("usage", {}).get("completion_tokens", 0))
        result.llm_s = llm_ms / 1000

        started = time.perf_counter()
        audio = (
            [chunk.audio_float_array for chunk in self._voice.synthesize(reply)] if reply else []
        )
        tts_ms = (time.perf_counter() - started) * 1000
        result.tts_compute_s = tts_ms / 1000
        result.tts_audio_s = sum(len(a) for a in audio) / self._voice.config.sample_rate
        latency.update(
            llm_first_token=llm_ms,  # no streaming: the first token arrives with the last
            tts_first_audio=tts_ms,
            voice_to_voice=self.silence_wait_ms + stt_ms + llm_ms + tts_ms,
        )
        latency["voice_to_voice_session"] = latency["voice_to_voice"]
        result.latency_ms = latency
        return result

    def close(self) -> None:
        if self._llama is not None:
            self._llama.close()
        self._whisper = self._llama = self._voice = None
