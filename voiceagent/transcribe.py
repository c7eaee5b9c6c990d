"""``voiceagent transcribe``: files to text, with the same guards as a live session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from voiceagent.backends.faster_whisper import WINDOW_SAMPLES, WhisperStt
from voiceagent.backends.silero import SileroVad
from voiceagent.config import Settings
from voiceagent.interfaces import Transcript
from voiceagent.models.catalog import ModelKind
from voiceagent.models.store import resolve_model
from voiceagent.transcript_filter import DEFAULT_FILTER_OPTIONS, DropReason, check_transcript

FRAME = 512
SPEECH_PROBABILITY = 0.5
MIN_SPEECH_FRAMES = 8  # ~250 ms
MAX_CHUNK_FRAMES = 29 * 16000 // FRAME  # a long file is cut into chunks inside Whisper's 30 s
PAD_FRAMES = 10  # ~320 ms of the file kept before the first and after the last voiced frame


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


def speech_chunks(
    probabilities: np.ndarray, max_frames: int = MAX_CHUNK_FRAMES, pad_frames: int = PAD_FRAMES
) -> list[tuple[int, int]]:
    """Cut the voiced part of a file into chunks of at most ``max_frames`` frames.

    The chunks run from ``pad_frames`` before the first voiced frame to ``pad_frames`` after
    the last, and each cut falls in the middle of the longest run of unvoiced frames in the
    last two thirds of the chunk (at ``max_frames`` when the voice never pauses there), so no
    word is split where the speaker paused. Returns (first frame, end frame) pairs; none when
    no frame is voiced.
    """
    voiced = probabilities >= SPEECH_PROBABILITY
    where = np.flatnonzero(voiced)
    if where.size == 0:
        return []
    start = max(0, int(where[0]) - pad_frames)
    end = min(len(probabilities), int(where[-1]) + 1 + pad_frames)
    chunks: list[tuple[int, int]] = []
    while end - start > max_frames:
        low, high = start + max_frames // 3, start + max_frames
        cut, best = high, 0
        run_start = None
        for frame in range(low, high + 1):
            silent = frame < high and not voiced[frame]
            if silent and run_start is None:
                run_start = frame
            elif not silent and run_start is not None:
                if frame - run_start > best:
                    best, cut = frame - run_start, (run_start + frame) // 2
                run_start = None
        chunks.append((start, cut))
        start = cut
    chunks.append((start, end))
    return chunks


def transcribe_files(files: list[Path], settings: Settings) -> Iterator[FileTranscript]:
    from voiceagent.audio.files import probe_audio, read_audio

    for path in files:
        probe_audio(path)  # every file is checked before the models load
    vad = SileroVad.load(resolve_model(settings.vad_model, ModelKind.VAD))
    stt_path = resolve_model(settings.stt_model, ModelKind.STT)
    stt = WhisperStt.load(stt_path, threads=settings.threads)
    try:
        for path in files:
            samples = read_audio(path).samples
            text, stt_ms, dropped = transcribe_audio(samples, stt, vad)
            yield FileTranscript(str(path), text, len(samples) / 16000, stt_ms, dropped=dropped)
    finally:
        stt.close()
        vad.close()


def transcribe_audio(
    samples: np.ndarray, stt: WhisperStt, vad: SileroVad
) -> tuple[str, float, str | None]:
    """The text of a whole recording (16 kHz mono), its STT time, and why it was dropped.

    Over 30 s it is cut at pauses into chunks of under 30 s, each judged on its own: music
    before a talk is dropped and the talk kept, and every chunk takes Whisper's short-window
    path (see the README's "Long files").
    """
    vad.reset()
    usable = len(samples) - len(samples) % FRAME
    probabilities = np.array(
        [vad.probability(samples[i : i + FRAME]) for i in range(0, usable, FRAME)],
        dtype=np.float32,
    )
    if len(samples) <= WINDOW_SAMPLES:
        parts = [_transcribe_part(stt, samples, probabilities)]
    else:
        parts = [
            _transcribe_part(stt, samples[a * FRAME : b * FRAME], probabilities[a:b])
            for a, b in speech_chunks(probabilities)
        ]
    stt_ms = sum((part.stt_ms for part in parts), 0.0)
    kept = [part.text for part in parts if part.dropped is None]
    if kept:
        return " ".join(kept), stt_ms, None
    # The reason of the part that sounded most like speech.
    loudest = max(parts, key=lambda part: part.voiced_frames, default=None)
    return "", stt_ms, loudest.dropped if loudest is not None else "no_speech"


@dataclass(frozen=True)
class _Part:
    text: str
    stt_ms: float
    voiced_frames: int
    dropped: str | None


def _transcribe_part(stt: WhisperStt, samples: np.ndarray, probabilities: np.ndarray) -> _Part:
    """One file, or one chunk of a long one, with the guards of a live turn."""
    voiced_frames, share = voiced_span_share(probabilities)
    if voiced_frames < MIN_SPEECH_FRAMES:
        return _Part("", 0.0, voiced_frames, "no_speech")
    if share < DEFAULT_FILTER_OPTIONS.min_voiced_share:
        # Dropped whatever Whisper would say (check_transcript), so it is not asked: on a
        # minute of music it took 7 s to loop on "see you in the next video".
        return _Part("", 0.0, voiced_frames, DropReason.LOW_VOICED_SHARE.value)
    transcript: Transcript = stt.transcribe(samples)
    reason = check_transcript(transcript, share)
    if reason is not None:
        return _Part("", transcript.stt_ms, voiced_frames, str(getattr(reason, "value", reason)))
    return _Part(transcript.text, transcript.stt_ms, voiced_frames, None)
