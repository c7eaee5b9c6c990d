"""Where the user's voice comes from: a file played as if live, or a microphone.

Both yield 16 kHz :class:`AudioFrame`\\ s whose ``sample_index`` is the audio clock, so the
turn-taking logic works the same on either. Use them as::

    async with contextlib.aclosing(source.frames()) as frames:
        async for frame in frames:
            ...
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from voiceagent.audio.clock import Clock, MonotonicClock
from voiceagent.audio.files import AudioInfo, iter_audio_blocks, probe_audio
from voiceagent.audio.formats import (
    FRAME_SAMPLES,
    PIPELINE_RATE_HZ,
    AudioFrame,
    Framer,
    NonFiniteTally,
)
from voiceagent.audio.ring_buffer import AsyncFrameQueue

FILE_BLOCK_S = 0.5
"""Seconds of a file decoded at a time: bounds memory, keeps worker-thread hops rare."""

MICROPHONE_QUEUE_FRAMES = 160
"""Frames (~5 s) the microphone may run ahead of a slow consumer before the oldest are dropped."""


class AudioSource(Protocol):
    """Anything that yields 16 kHz frames with a running sample index."""

    @property
    def overflow_count(self) -> int:
        """Frames lost because the consumer fell behind."""
        ...

    def frames(self) -> AsyncIterator[AudioFrame]:
        """Yield frames until the source ends (a file) or is closed (a microphone)."""
        ...


class FileSource:
    """Play an audio file into the pipeline, at real-time pace or as fast as possible.

    At real-time pace a frame is released at the moment its last sample would have left a
    microphone (``start + (sample_index + 512) / 16000`` on the clock), so latency measured on
    a file matches latency measured live. Trailing silence is appended so the end-of-utterance
    logic sees the user stop talking at the end of the file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        realtime: bool = True,
        clock: Clock | None = None,
        trailing_silence_ms: int = 0,
    ) -> None:
        if trailing_silence_ms < 0:
            raise ValueError(f"trailing_silence_ms must be >= 0, got {trailing_silence_ms}")
        self.path = Path(path)
        self.realtime = realtime
        self.clock: Clock = clock or MonotonicClock()
        self.trailing_silence_ms = trailing_silence_ms
        self.info: AudioInfo | None = None
        self.start_time_s: float | None = None
        """Clock time the first frame's pacing started (real-time mode)."""
        self._tally = NonFiniteTally()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        realtime: bool = True,
        clock: Clock | None = None,
        trailing_silence_ms: int = 0,
    ) -> FileSource:
        """Create the source and check the file now, so a bad file fails before the session.

        Raises:
            AudioError: The file is missing, empty, not audio, unsupported or corrupt.
        """
        source = cls(path, realtime=realtime, clock=clock, trailing_silence_ms=trailing_silence_ms)
        source.info = probe_audio(source.path)
        return source

    @property
    def overflow_count(self) -> int:
        """Always 0: a file waits for its consumer."""
        return 0

    @property
    def non_finite_count(self) -> int:
        """NaN/Inf samples in the file replaced by silence so far."""
        return self._tally.count

    async def frames(self) -> AsyncIterator[AudioFrame]:
        """Yield the file's frames, then the trailing silence; the last frame is zero-padded.

        Decoding runs on a worker thread, one block at a time, so the event loop never waits
        on the disk.
        """
        blocks = await asyncio.to_thread(iter_audio_blocks, self.path, FILE_BLOCK_S, self._tally)
        framer = Framer()
        self.start_time_s = self.clock.now_s()
        try:
            while (block := await asyncio.to_thread(next, blocks, None)) is not None:
                for frame in framer.push(block):
                    await self._wait_for(frame)
                    yield frame
            for frame in [*framer.push(self._trailing_silence()), *framer.flush()]:
                await self._wait_for(frame)
                yield frame
        finally:
            _close_quietly(blocks)

    def _trailing_silence(self) -> np.ndarray:
        return np.zeros(round(self.trailing_silence_ms * PIPELINE_RATE_HZ / 1000), np.float32)

    async def _wait_for(self, frame: AudioFrame) -> None:
        if not self.realtime or self.start_time_s is None:
            return
        await self.clock.sleep_until(
            self.start_time_s + (frame.sample_index + FRAME_SAMPLES) / PIPELINE_RATE_HZ
        )


def _close_quietly(blocks: Iterator[np.ndarray]) -> None:
    close = getattr(blocks, "close", None)
    if close is None:
        return
    try:
        close()
    except ValueError:
        # Cancelled while a worker thread was decoding the next block: the generator is
        # still running there; it closes its file when it is garbage-collected.
        pass


class MicrophoneSource:
    """Capture from an input device (by index, name or the default) as 16 kHz frames.

    The device is opened when :meth:`frames` starts and released when it is closed. Frames the
    consumer does not take in time are dropped oldest-first and counted in ``overflow_count``.
    """

    def __init__(
        self,
        device: str | int | None = None,
        queue_frames: int = MICROPHONE_QUEUE_FRAMES,
    ) -> None:
        self.device_spec = device
        self.queue_frames = queue_frames
        self.device_name: str | None = None
        """Name of the opened device, once :meth:`frames` has started."""
        self._queue: AsyncFrameQueue[AudioFrame] | None = None
        self._input_overflow_count = 0

    @property
    def overflow_count(self) -> int:
        """Frames dropped by our queue plus callbacks where the device reported lost input."""
        queued = self._queue.overflow_count if self._queue is not None else 0
        return queued + self._input_overflow_count

    async def frames(self) -> AsyncIterator[AudioFrame]:
        """Open the device and yield frames until closed.

        Raises:
            DeviceError: The device is unknown, cannot be opened, or stops while recording.
            DependencyError: PortAudio is not installed.
        """
        # Imported here, not at the top: devices.py pulls in sounddevice (and PortAudio).
        from voiceagent.audio.devices import MicrophoneStream

        queue: AsyncFrameQueue[AudioFrame] = AsyncFrameQueue(self.queue_frames)
        self._queue = queue
        stream = await asyncio.to_thread(
            MicrophoneStream.open, self.device_spec, queue.put_threadsafe, queue.close_threadsafe
        )
        self.device_name = stream.device.name
        try:
            async for frame in queue:
                self._input_overflow_count = stream.input_overflow_count
                yield frame
        finally:
            await asyncio.to_thread(stream.close)
            self._input_overflow_count = stream.input_overflow_count
            queue.close()
