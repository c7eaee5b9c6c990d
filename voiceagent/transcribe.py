"""``voiceagent transcribe``: files to text, with the same guards as a live session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from voiceagent.config import Settings
from voiceagent.interfaces import Transcript
from voiceagent.models.catalog import ModelKind
from voiceagent.models.store import resolve_model

FRAME = 512
SPEECH_PROBABILITY = 0.5
MIN_SPEECH_FRAMES = 8  # ~250 ms


@dataclass(frozen=True)
class FileTranscript:
    file: str
    text: str
    audio_s: float
    stt_ms: float
    dropped: str | None = None

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["audio_s"] = round(self.audio_s, 3)
        data["stt_ms"] = round(self.stt_ms, 1)
        return data


def voiced_span_share(probabilities: np.ndarray) -> tuple[int, float]:
    """Voiced frames, and their share of the span from the first to the last voiced frame."""
    voiced = np.flatnonzero(probabilities >= SPEECH_PROBABILITY)
    if voiced.size == 0:
        return 0, 0.0
    span = voiced[-1] - voiced[0] + 1
    return int(voiced.size), float(voiced.size / span)


def transcribe_files(files: list[Path], settings: Settings) -> Iterator[FileTranscript]:
    from voiceagent.audio.files import probe_audio, read_audio
    from voiceagent.backends.faster_whisper import WhisperStt
    from voiceagent.backends.silero import SileroVad
    from voiceagent.transcript_filter import (
        DEFAULT_FILTER_OPTIONS,
        DropReason,
        check_transcript,
    )

    for path in files:
        probe_audio(path)  # every file is checked before the models load
    vad = SileroVad.load(resolve_model(settings.vad_model, ModelKind.VAD))
    stt = WhisperStt.load(resolve_model(settings.stt_model, ModelKind.STT), threads=settings.threads)
    try:
        for path in files:
            clip = read_audio(path)
            samples = clip.samples
            vad.reset()
            usable = len(samples) - len(samples) % FRAME
            probabilities = np.array(
                [vad.probability(samples[i : i + FRAME]) for i in range(0, usable, FRAME)],
                dtype=np.float32,
            )
            voiced_frames, share = voiced_span_share(probabilities)
            audio_s = len(samples) / 16000
            if voiced_frames < MIN_SPEECH_FRAMES:
                yield FileTranscript(str(path), "", audio_s, 0.0, dropped="no_speech")
                continue
            if share < DEFAULT_FILTER_OPTIONS.min_voiced_share:
                # Dropped whatever Whisper would say (check_transcript), so it is not asked:
                # on a minute of music it took 7 s to loop on "see you in the next video".
                yield FileTranscript(
                    str(path), "", audio_s, 0.0, dropped=DropReason.LOW_VOICED_SHARE.value
                )
                continue
            transcript: Transcript = stt.transcribe(samples)
            reason = check_transcript(transcript, share)
            if reason is not None:
                dropped = str(getattr(reason, "value", reason))
                yield FileTranscript(str(path), "", audio_s, transcript.stt_ms, dropped=dropped)
            else:
                yield FileTranscript(str(path), transcript.text, audio_s, transcript.stt_ms)
    finally:
        stt.close()
        vad.close()
