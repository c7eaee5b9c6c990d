"""Sample formats, resampling and framing for the 16 kHz mono float32 pipeline.

Everything downstream of the audio layer (VAD, end-of-utterance, speech-to-text) sees one format:
16 kHz mono float32 in [-1, 1], cut into frames of exactly 512 samples (what Silero VAD expects
at 16 kHz). This module turns whatever a file or a device delivers into that format.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

from voiceagent.errors import DependencyError

PIPELINE_RATE_HZ = 16000
"""Sample rate of every frame handed to the VAD and speech-to-text stages."""

FRAME_SAMPLES = 512
"""Samples per VAD frame at 16 kHz (32 ms), the size Silero VAD is trained on."""

FRAME_DURATION_S = FRAME_SAMPLES / PIPELINE_RATE_HZ


@dataclass
class NonFiniteTally:
    """Running count of NaN/Inf samples replaced by silence.

    Mutable on purpose: one tally is passed to every block of a stream so the caller can report
    the total at the end ("the file had 12 NaN samples") instead of failing on the first one.
    """

    count: int = 0


def to_mono_float32(block: np.ndarray, tally: NonFiniteTally | None = None) -> np.ndarray:
    """Convert samples of any dtype and channel count to mono float32 in [-1, 1].

    Args:
        block: Samples shaped ``(frames,)`` or ``(frames, channels)``, as soundfile and
            sounddevice deliver them. Integer dtypes are scaled by their full range
            (unsigned ones, e.g. 8-bit WAV, are centred on their midpoint first).
        tally: If given, the number of NaN/Inf input values is added to it.

    Returns:
        A new 1-D float32 array; NaN/Inf become 0 and values are clipped to [-1, 1].

    Raises:
        ValueError: If ``block`` has more than two dimensions or a non-numeric dtype.
    """
    array = np.asarray(block)
    if array.ndim > 2:
        raise ValueError(f"expected (frames,) or (frames, channels) samples, got {array.shape}")
    kind = array.dtype.kind
    if kind == "u":
        # Unsigned PCM (8-bit WAV) stores silence at the midpoint, not at 0.
        half_range = float(2 ** (array.dtype.itemsize * 8 - 1))
        samples = (array.astype(_work_dtype(array)) - half_range) / half_range
    elif kind == "i":
        half_range = float(2 ** (array.dtype.itemsize * 8 - 1))
        samples = array.astype(_work_dtype(array)) / half_range
    elif kind == "f":
        samples = array.astype(np.float32, copy=True)
        finite = np.isfinite(samples)
        if not finite.all():
            if tally is not None:
                tally.count += int(samples.size - np.count_nonzero(finite))
            samples[~finite] = 0.0
    else:
        raise ValueError(f"cannot convert samples of dtype {array.dtype} to audio")

    if samples.ndim == 2:
        # Averaging (not summing) keeps a mono-in-stereo recording at its original level.
        samples = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    return np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False)


def _work_dtype(array: np.ndarray) -> type[np.floating]:
    # float32 has 24 bits of mantissa: exact for 8/16-bit PCM, not for 32/64-bit.
    return np.float32 if array.dtype.itemsize <= 2 else np.float64


def _import_soxr() -> ModuleType:
    try:
        import soxr
    except ImportError as error:
        raise DependencyError(
            "The Python package 'soxr' (audio resampling) is not installed.",
            fix="pip install soxr",
        ) from error
    return soxr


def resample_once(samples: np.ndarray, input_rate_hz: int, output_rate_hz: int) -> np.ndarray:
    """Resample a complete mono float32 clip in one call.

    Args:
        samples: Mono float32 samples.
        input_rate_hz: Rate of ``samples``.
        output_rate_hz: Wanted rate.

    Returns:
        Mono float32 samples at ``output_rate_hz`` (the input itself if the rates match).
    """
    if input_rate_hz == output_rate_hz or samples.size == 0:
        return samples.astype(np.float32, copy=False)
    soxr = _import_soxr()
    return np.asarray(
        soxr.resample(samples.astype(np.float32, copy=False), input_rate_hz, output_rate_hz),
        dtype=np.float32,
    )


class StreamResampler:
    """Resample a mono float32 stream chunk by chunk (wraps ``soxr.ResampleStream``).

    soxr keeps filter state between chunks, so chunk boundaries leave no clicks and the total
    output length matches ``n * output_rate / input_rate`` once :meth:`flush` has been called.
    """

    def __init__(self, input_rate_hz: int, output_rate_hz: int = PIPELINE_RATE_HZ) -> None:
        if input_rate_hz <= 0 or output_rate_hz <= 0:
            raise ValueError(
                f"sample rates must be positive, got {input_rate_hz}, {output_rate_hz}"
            )
        self.input_rate_hz = input_rate_hz
        self.output_rate_hz = output_rate_hz
        self._stream = None
        if input_rate_hz != output_rate_hz:
            soxr = _import_soxr()
            self._stream = soxr.ResampleStream(
                input_rate_hz, output_rate_hz, 1, dtype="float32", quality="HQ"
            )
        self._is_flushed = False

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Resample one chunk; may return fewer samples than expected (filter delay).

        Args:
            chunk: Mono float32 samples at ``input_rate_hz`` (any length, including 0).

        Returns:
            Mono float32 samples at ``output_rate_hz``.
        """
        if self._is_flushed:
            raise RuntimeError("StreamResampler.process() called after flush()")
        samples = np.ascontiguousarray(chunk, dtype=np.float32)
        if self._stream is None:
            return samples.copy()
        return np.asarray(self._stream.resample_chunk(samples, last=False), dtype=np.float32)

    def flush(self) -> np.ndarray:
        """Return the samples still held in the filter; call once, at the end of the stream."""
        if self._is_flushed:
            return np.zeros(0, dtype=np.float32)
        self._is_flushed = True
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        tail = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        return np.asarray(tail, dtype=np.float32)


@dataclass(frozen=True, eq=False)
class AudioFrame:
    """One VAD frame of 16 kHz mono float32 audio.

    Attributes:
        samples: Exactly ``FRAME_SAMPLES`` float32 samples.
        sample_index: Index of the first sample, counted from the start of the stream at 16 kHz;
            this is the audio clock (``start_s``), independent of wall time.
        valid_samples: How many samples are real audio; less than ``FRAME_SAMPLES`` only for a
            final frame that was zero-padded on flush.
    """

    samples: np.ndarray
    sample_index: int
    valid_samples: int = FRAME_SAMPLES

    @property
    def start_s(self) -> float:
        """Where the frame starts in the stream, in seconds."""
        return self.sample_index / PIPELINE_RATE_HZ

    @property
    def end_s(self) -> float:
        """Where the frame's real audio ends in the stream, in seconds."""
        return (self.sample_index + self.valid_samples) / PIPELINE_RATE_HZ


class Framer:
    """Cut a stream of arbitrary-sized chunks into exact ``FRAME_SAMPLES`` frames.

    Samples that do not fill a frame are kept for the next chunk; :meth:`flush` zero-pads the
    last partial frame so no audio is lost at the end of a file.
    """

    def __init__(self, frame_samples: int = FRAME_SAMPLES) -> None:
        if frame_samples <= 0:
            raise ValueError(f"frame_samples must be positive, got {frame_samples}")
        self.frame_samples = frame_samples
        self._pending = np.zeros(0, dtype=np.float32)
        self._next_index = 0

    @property
    def samples_seen(self) -> int:
        """Samples framed or pending so far (including the zero padding added by flush)."""
        return self._next_index + self._pending.size

    def push(self, chunk: np.ndarray) -> list[AudioFrame]:
        """Add samples and return every frame that is now complete.

        A list, not a generator, so the framer's state is updated even if the caller does not
        iterate the result.

        Args:
            chunk: Mono float32 samples at the pipeline rate (any length).

        Returns:
            Complete frames, in order; each owns its samples (safe to keep).
        """
        samples = np.asarray(chunk, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"Framer expects mono samples, got shape {samples.shape}")
        buffer = np.concatenate((self._pending, samples)) if self._pending.size else samples
        frame_count = buffer.size // self.frame_samples
        frames = []
        for position in range(frame_count):
            start = position * self.frame_samples
            frame = buffer[start : start + self.frame_samples].copy()
            frames.append(AudioFrame(frame, self._next_index, self.frame_samples))
            self._next_index += self.frame_samples
        self._pending = buffer[frame_count * self.frame_samples :].copy()
        return frames

    def flush(self) -> list[AudioFrame]:
        """Return the last partial frame, zero-padded, if any samples are pending."""
        if self._pending.size == 0:
            return []
        valid = self._pending.size
        frame = np.zeros(self.frame_samples, dtype=np.float32)
        frame[:valid] = self._pending
        self._pending = np.zeros(0, dtype=np.float32)
        index = self._next_index
        self._next_index += self.frame_samples
        return [AudioFrame(frame, index, valid)]
