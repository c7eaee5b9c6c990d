"""Where the assistant's voice goes: the :class:`AudioSink` interface and a WAV file sink.

The speaker sink lives in ``devices.py`` (it needs sounddevice); this module must stay importable
on a machine without PortAudio, so ``talk --output reply.wav`` works there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from voiceagent.audio.clock import Clock, MonotonicClock
from voiceagent.audio.files import commit_temporary, import_soundfile, temporary_beside
from voiceagent.audio.formats import resample_once, to_mono_float32
from voiceagent.errors import AudioError

FADE_S = 0.005
"""Audio cut off (hold, clear) fades out over this much of what came next, and held audio
fades back in over it, as on the speaker: a waveform stopped mid-swing clicks."""


def fade_ramp(samples: int, fade_in: bool) -> np.ndarray:
    """Gains for a fade of ``samples``: 1/n, 2/n ... 1 in, 1 ... 1/n out (never a 0, so a
    faded sample is still there)."""
    ramp = np.arange(1, samples + 1, dtype=np.float32) / max(samples, 1)
    return ramp if fade_in else ramp[::-1].copy()


@runtime_checkable
class AudioSink(Protocol):
    """Plays (or records) float32 audio chunks; shared by the speaker and the WAV file sink."""

    @property
    def output_rate_hz(self) -> int:
        """Rate of the device or file; chunks at other rates are resampled to it."""
        ...

    @property
    def played_samples(self) -> int:
        """Written samples (at ``output_rate_hz``) handed to the device or file so far.

        Cleared audio is not counted, so after a barge-in this says how much of the reply the
        user actually heard.
        """
        ...

    @property
    def played_s(self) -> float:
        """``played_samples`` in seconds."""
        ...

    @property
    def first_sample_time_s(self) -> float | None:
        """Clock time the first sample since the last :meth:`mark_start`/:meth:`clear` was
        handed to the device or file; None until then."""
        ...

    def write(self, chunk: np.ndarray, rate_hz: int) -> None:
        """Queue a chunk of samples at ``rate_hz`` for playback; never blocks on the device."""
        ...

    def mark_start(self) -> None:
        """Start timing a new reply: ``first_sample_time_s`` is None until its first sample."""
        ...

    def clear(self) -> None:
        """Drop all queued audio at once (barge-in) and restart timing like :meth:`mark_start`."""
        ...

    def hold(self) -> None:
        """Go silent at once but keep what was not heard yet, to :meth:`resume` or :meth:`clear`.

        While held, :attr:`played_samples` stands still and writes are kept too.
        """
        ...

    def resume(self) -> None:
        """Play on from where :meth:`hold` stopped: nothing is lost, it only comes later."""
        ...

    async def drain(self) -> None:
        """Wait until everything written has been handed to the device or file."""
        ...

    def close(self) -> None:
        """Stop and release the device or finish the file; safe to call twice."""
        ...


@dataclass(frozen=True)
class WrittenChunk:
    """Where one chunk landed in a sink's output.

    Attributes:
        start_sample: Index of its first sample in the output, at ``output_rate_hz``.
        sample_count: Its length at ``output_rate_hz``.
        output_rate_hz: Rate of the output.
        written_at_s: Clock time it was written.
    """

    start_sample: int
    sample_count: int
    output_rate_hz: int
    written_at_s: float

    @property
    def start_s(self) -> float:
        """Where it starts in the output, in seconds."""
        return self.start_sample / self.output_rate_hz

    @property
    def duration_s(self) -> float:
        """Its length in seconds."""
        return self.sample_count / self.output_rate_hz


class WavFileSink:
    """An :class:`AudioSink` that writes a mono 16-bit WAV file.

    The file is written to a hidden temporary file beside ``path`` and renamed onto it by
    :meth:`close`, so a reader never sees half a file. With ``pad_to_clock`` silence is inserted
    so each chunk starts at the clock time it was written (relative to :meth:`open`), like a
    speaker that sat idle in between, and :meth:`clear` cuts off what lies ahead of the clock
    (not heard yet), as :meth:`hold` does until :meth:`resume` writes it back at the clock's
    time. Otherwise chunks follow each other directly and all counts as played (and nothing is
    ever held).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        output_rate_hz: int,
        clock: Clock | None = None,
        pad_to_clock: bool = False,
    ) -> None:
        self.path = Path(path)
        self._output_rate_hz = output_rate_hz
        self.clock: Clock = clock or MonotonicClock()
        self.pad_to_clock = pad_to_clock
        self.chunks: list[WrittenChunk] = []
        """Every chunk written, in order, with where it starts in the file."""
        self._file: Any = None
        self._temporary: Path | None = None
        self._opened_at_s = 0.0
        self._written_samples = 0
        self._played_samples = 0
        self._first_sample_time_s: float | None = None
        self._is_closed = False
        self._held: list[np.ndarray] | None = None

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        output_rate_hz: int,
        clock: Clock | None = None,
        pad_to_clock: bool = False,
    ) -> WavFileSink:
        """Create the sink and its temporary file.

        Raises:
            AudioError: The destination folder is missing or not writable.
        """
        sink = cls(path, output_rate_hz, clock=clock, pad_to_clock=pad_to_clock)
        soundfile = import_soundfile()
        sink._temporary = temporary_beside(sink.path)
        try:
            sink._file = soundfile.SoundFile(
                str(sink._temporary),
                mode="w+",  # readable too: hold() takes back audio written ahead of the clock
                samplerate=output_rate_hz,
                channels=1,
                format="WAV",
                subtype="PCM_16",
            )
        except (RuntimeError, soundfile.SoundFileError) as error:
            sink._temporary.unlink(missing_ok=True)
            raise AudioError(f"Could not write {sink.path}: {error}.") from error
        sink._opened_at_s = sink.clock.now_s()
        return sink

    @property
    def output_rate_hz(self) -> int:
        """Rate of the WAV file."""
        return self._output_rate_hz

    @property
    def played_samples(self) -> int:
        """Samples of written audio in the file (padding silence excluded)."""
        return self._played_samples

    @property
    def played_s(self) -> float:
        """``played_samples`` in seconds."""
        return self._played_samples / self._output_rate_hz

    @property
    def queued_samples(self) -> int:
        """Samples written but not in the file: what :meth:`hold` keeps."""
        return sum(piece.size for piece in self._held) if self._held is not None else 0

    @property
    def is_held(self) -> bool:
        """Between :meth:`hold` and :meth:`resume` (or :meth:`clear`)."""
        return self._held is not None

    @property
    def first_sample_time_s(self) -> float | None:
        """Clock time of the first write since the last :meth:`mark_start`/:meth:`clear`."""
        return self._first_sample_time_s

    def write(self, chunk: np.ndarray, rate_hz: int) -> None:
        """Append a chunk (resampled to the file's rate) to the file."""
        if self._file is None or self._is_closed:
            raise RuntimeError("WavFileSink.write() needs an open sink (use WavFileSink.open)")
        samples = resample_once(to_mono_float32(chunk), rate_hz, self._output_rate_hz)
        if self._held is not None:
            self._held.append(samples)
            return
        self._place(samples)

    def _place(self, samples: np.ndarray) -> None:
        """Write ``samples`` at the clock's time (padding up to it first with ``pad_to_clock``)."""
        now_s = self.clock.now_s()
        if self.pad_to_clock:
            due_sample = round((now_s - self._opened_at_s) * self._output_rate_hz)
            if due_sample > self._written_samples:
                self._append(np.zeros(due_sample - self._written_samples, dtype=np.float32))
        if samples.size == 0:
            return
        self.chunks.append(
            WrittenChunk(self._written_samples, samples.size, self._output_rate_hz, now_s)
        )
        self._append(samples)
        self._played_samples += samples.size
        if self._first_sample_time_s is None:
            self._first_sample_time_s = now_s

    def _append(self, samples: np.ndarray) -> None:
        try:
            self._file.write(samples)
        except (RuntimeError, OSError) as error:
            raise AudioError(f"Could not write {self.path}: {error}.") from error
        self._written_samples += samples.size

    def mark_start(self) -> None:
        """Start timing a new reply."""
        self._first_sample_time_s = None

    def clear(self) -> None:
        """Stop "playing" now: with ``pad_to_clock`` the file is a timeline, so audio written
        ahead of the clock (not yet heard, as on a speaker) is cut off the file, and held audio
        is dropped. Without it, everything written counts as played and only the timing
        restarts."""
        self.mark_start()
        self._held = None
        self._cut_ahead(keep_cut=False)

    def hold(self) -> None:
        """Go silent now: with ``pad_to_clock``, audio written ahead of the clock is taken off
        the file and kept, with whatever is written until :meth:`resume`. Without it nothing
        lies ahead to hold (everything counts as played), so this does nothing."""
        if not self.pad_to_clock or self._held is not None or self._is_closed:
            return
        cut = self._cut_ahead(keep_cut=True)
        self._held = [cut] if cut.size else []

    def resume(self) -> None:
        """Write what :meth:`hold` kept at the clock's time, after the silence it left, fading
        in over ``FADE_S``."""
        held, self._held = self._held, None
        if held:
            audio = np.concatenate(held)
            ramp = min(audio.size, round(FADE_S * self._output_rate_hz))
            audio[:ramp] *= fade_ramp(ramp, fade_in=True)
            self._place(audio)

    def _cut_ahead(self, keep_cut: bool) -> np.ndarray:
        """Cuts the audio written ahead of the clock off the file (``pad_to_clock`` only), after
        fading out its first ``FADE_S`` as a speaker does, and returns what was cut when
        ``keep_cut`` (read back from the file), else an empty array."""
        nothing = np.zeros(0, dtype=np.float32)
        if not self.pad_to_clock or self._file is None or self._is_closed:
            return nothing
        now_sample = max(0, round((self.clock.now_s() - self._opened_at_s) * self._output_rate_hz))
        keep = min(self._written_samples, now_sample + round(FADE_S * self._output_rate_hz))
        cut = self._written_samples - keep
        if cut <= 0:
            return nothing
        try:
            self._file.seek(now_sample)
            fading = self._file.read(keep - now_sample, dtype="float32")
            taken = self._file.read(cut, dtype="float32") if keep_cut else nothing
            self._file.seek(now_sample)
            self._file.write(fading * fade_ramp(fading.size, fade_in=False))
            self._file.truncate(keep)
        except (RuntimeError, OSError) as error:
            raise AudioError(f"Could not write {self.path}: {error}.") from error
        self._written_samples = keep
        self._played_samples -= sum(
            min(c.sample_count, max(0, c.start_sample + c.sample_count - keep)) for c in self.chunks
        )
        self.chunks = [
            replace(c, sample_count=min(c.sample_count, keep - c.start_sample))
            for c in self.chunks
            if c.start_sample < keep
        ]
        return taken

    async def drain(self) -> None:
        """Return at once: writes go straight to the file."""

    def close(self) -> None:
        """Finish the file and rename it onto ``path``."""
        if self._is_closed or self._file is None or self._temporary is None:
            self._is_closed = True
            return
        self._is_closed = True
        self._file.close()
        commit_temporary(self._temporary, self.path)

    def __enter__(self) -> WavFileSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Keep what was written even after an error: it is the user's requested output.
        self.close()
