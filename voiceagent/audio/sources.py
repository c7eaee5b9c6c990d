"""Where the user's voice comes from: a file played as if live, or a microphone.

Both yield 16 kHz :class:`AudioFrame`\\ s whose ``sample_index`` is the audio clock, so the
turn-taking logic works the same on either. Use them as::

    async with contextlib.aclosing(source.frames()) as frames:
        async for frame in frames:
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

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
from voiceagent.audio.recovery import (
    NoticeHandler,
    NoticeKind,
    ReopenPolicy,
    gave_up_error,
    lost_message,
    send_notice,
)
from voiceagent.audio.ring_buffer import AsyncFrameQueue
from voiceagent.errors import DependencyError, DeviceError

if TYPE_CHECKING:
    from voiceagent.audio.devices import MicrophoneStream

FILE_BLOCK_S = 0.5
"""Seconds of a file decoded at a time: bounds memory, keeps worker-thread hops rare."""

MICROPHONE_QUEUE_FRAMES = 160
"""Frames (~5 s) the microphone may run ahead of a slow consumer before the oldest are dropped."""

STALL_TIMEOUT_S = 5.0
"""A microphone silent this long (no callbacks at all) is treated as lost. Well above the one to
two seconds PortAudio's ALSA-to-PulseAudio path may stall when a stream starts."""

MAX_GAP_FILL_S = 2.0
"""Silence yielded for the time a lost microphone was away, at most: enough for a turn that was
in progress to end; a longer gap is skipped so the session does not chew through it."""

LEVEL_WINDOW_FRAMES = 3
"""Frames (~100 ms) averaged for the input level meter."""

SILENCE_DBFS = -100.0
"""The level meter's floor."""


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
        self._level = LevelMeter()

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
    def level_dbfs(self) -> float:
        """Level of the latest ~100 ms released (RMS, dBFS); safe to read from any thread."""
        return self._level.dbfs

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
                    self._level.add(frame.samples)
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


class LevelMeter:
    """The input level for a display: RMS of the latest few frames, in dBFS.

    Updated by the consumer once per frame (one dot product) and read from any thread.
    """

    def __init__(self, window_frames: int = LEVEL_WINDOW_FRAMES) -> None:
        self._mean_squares: deque[float] = deque(maxlen=window_frames)
        self._lock = threading.Lock()
        self._dbfs = SILENCE_DBFS

    @property
    def dbfs(self) -> float:
        """The level; :data:`SILENCE_DBFS` before any audio and for digital silence."""
        with self._lock:
            return self._dbfs

    def add(self, samples: np.ndarray) -> None:
        """Take one frame of float32 samples in [-1, 1]."""
        mean_square = float(np.dot(samples, samples)) / max(1, samples.size)
        with self._lock:
            self._mean_squares.append(mean_square)
            mean = sum(self._mean_squares) / len(self._mean_squares)
            self._dbfs = max(SILENCE_DBFS, 10 * math.log10(mean)) if mean > 0 else SILENCE_DBFS


class MicrophoneSource:
    """Capture from an input device (by index, name or the default) as 16 kHz frames.

    The device is opened when :meth:`frames` starts and released when it is closed. Frames the
    consumer does not take in time are dropped oldest-first and counted in ``overflow_count``.

    If the device stops mid-session (or delivers nothing for ``stall_timeout_s``), it is
    reopened with the ``reopen`` backoff, rescanning devices before each try; ``on_notice``
    hears of the loss, the recovery, or the giving up. The audio clock carries on: up to
    :data:`MAX_GAP_FILL_S` of silence stands in for the gap, then frames continue from there.
    """

    def __init__(
        self,
        device: str | int | None = None,
        queue_frames: int = MICROPHONE_QUEUE_FRAMES,
        clock: Clock | None = None,
        reopen: ReopenPolicy | None = None,
        on_notice: NoticeHandler | None = None,
        stall_timeout_s: float | None = STALL_TIMEOUT_S,
    ) -> None:
        self.device_spec = device
        self.queue_frames = queue_frames
        self.clock: Clock = clock or MonotonicClock()
        self.reopen = reopen
        self.on_notice = on_notice
        self.stall_timeout_s = stall_timeout_s
        self.device_name: str | None = None
        """Name of the opened device, once :meth:`frames` has started."""
        self.device_loss_count = 0
        """Times the device stopped on its own."""
        self.device_reopen_count = 0
        """Times it was reopened after a loss."""
        self._queue: AsyncFrameQueue[AudioFrame] | None = None
        self._stream: MicrophoneStream | None = None
        self._retired_queue_drops = 0
        self._retired_input_overflows = 0
        self._level = LevelMeter()

    @property
    def overflow_count(self) -> int:
        """Frames dropped by our queue plus callbacks where the device reported lost input."""
        queued = self._queue.overflow_count if self._queue is not None else 0
        return self._retired_queue_drops + queued + self.input_overflow_count

    @property
    def input_overflow_count(self) -> int:
        """Callbacks in which the device reported lost input."""
        current = self._stream.input_overflow_count if self._stream is not None else 0
        return self._retired_input_overflows + current

    @property
    def level_dbfs(self) -> float:
        """Input level of the latest ~100 ms (RMS, dBFS); safe to read from any thread."""
        return self._level.dbfs

    async def frames(self) -> AsyncIterator[AudioFrame]:
        """Open the device and yield frames until closed.

        Raises:
            DeviceError: The device is unknown, cannot be opened, or stops while recording and
                cannot be reopened.
            DependencyError: PortAudio is not installed.
        """
        await self._open(self.device_spec)
        next_index = 0
        try:
            while True:
                base_index = next_index
                try:
                    async with contextlib.aclosing(self._frames_until_lost()) as captured:
                        async for frame in captured:
                            if base_index:
                                frame = replace(frame, sample_index=frame.sample_index + base_index)
                            self._level.add(frame.samples)
                            next_index = frame.sample_index + FRAME_SAMPLES
                            yield frame
                    return
                except DeviceError as lost:
                    if self.reopen is None:
                        raise
                    gap_s = await self._recover(lost, self.reopen)
                for frame in silence_frames(next_index, min(gap_s, MAX_GAP_FILL_S)):
                    next_index = frame.sample_index + FRAME_SAMPLES
                    yield frame
        finally:
            await self._retire()

    async def _frames_until_lost(self) -> AsyncIterator[AudioFrame]:
        """The current stream's frames (indexed from 0); raises DeviceError when it is lost."""
        queue, stream = self._queue, self._stream
        assert queue is not None and stream is not None
        watchdog = None
        if self.stall_timeout_s is not None:
            watchdog = asyncio.ensure_future(self._watch_for_stall(stream, queue))
        try:
            async for frame in queue:
                yield frame
        finally:
            if watchdog is not None:
                watchdog.cancel()

    async def _watch_for_stall(
        self, stream: MicrophoneStream, queue: AsyncFrameQueue[AudioFrame]
    ) -> None:
        """Treat a stream that stops calling back (without saying so) as a lost device."""
        limit_s = self.stall_timeout_s
        assert limit_s is not None
        opened_s = self.clock.now_s()

        def heard_from_s() -> float:
            last_s = stream.last_callback_s
            return opened_s if last_s is None else last_s

        while True:
            await self.clock.sleep_until(heard_from_s() + limit_s)
            if self.clock.now_s() - heard_from_s() >= limit_s:
                name = stream.device.name
                silent = f"The input device {name} delivered no audio for {limit_s:g} s."
                queue.close(DeviceError(silent))
                return

    async def _recover(self, lost: DeviceError, policy: ReopenPolicy) -> float:
        """Reopen the lost device with backoff; returns the seconds without it.

        Raises:
            DeviceError: Every attempt failed (after a ``GAVE_UP`` notice).
        """
        lost_at_s = self.clock.now_s()
        name = self.device_name or "microphone"
        self.device_loss_count += 1
        await self._retire()
        self._notify(NoticeKind.LOST, name, lost_message(lost, policy))
        # The default device is looked up afresh; a chosen one by its full name.
        spec = None if self.device_spec is None else name
        attempts = 0
        last_error: Exception = lost
        for delay_s in policy.delays_s():
            await self.clock.sleep_until(self.clock.now_s() + delay_s)
            attempts += 1
            try:
                await self._open(spec, rescan=True)
            except (DeviceError, DependencyError) as error:
                last_error = error
                continue
            self.device_reopen_count += 1
            gap_s = self.clock.now_s() - lost_at_s
            message = f"the input device {self.device_name} is back after {gap_s:.1f} s."
            self._notify(NoticeKind.RECOVERED, self.device_name or name, message, attempts, gap_s)
            return gap_s
        gap_s = self.clock.now_s() - lost_at_s
        gave_up = gave_up_error("input", name, gap_s, attempts)
        self._notify(NoticeKind.GAVE_UP, name, str(gave_up), attempts, gap_s, gave_up)
        raise gave_up from last_error

    async def _open(self, spec: str | int | None, rescan: bool = False) -> None:
        # Imported here, not at the top: devices.py pulls in sounddevice (and PortAudio).
        from voiceagent.audio.devices import PORTAUDIO_LOCK, MicrophoneStream, rescan_devices

        queue: AsyncFrameQueue[AudioFrame] = AsyncFrameQueue(self.queue_frames)

        def open_stream() -> MicrophoneStream:
            with PORTAUDIO_LOCK:  # no other rescan between ours and the open
                if rescan:
                    rescan_devices()
                return MicrophoneStream.open(
                    spec, queue.put_threadsafe, queue.close_threadsafe, clock=self.clock
                )

        opening = asyncio.ensure_future(asyncio.to_thread(open_stream))
        try:
            stream = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # Stopped while the device was opening: close it once it is open.
            opening.add_done_callback(_close_when_opened)
            raise
        self._queue, self._stream = queue, stream
        self.device_name = stream.device.name

    async def _retire(self) -> None:
        """Close the current stream, keeping its counts."""
        stream, queue = self._stream, self._queue
        if stream is not None:
            await asyncio.to_thread(stream.close)
            self._retired_input_overflows += stream.input_overflow_count
        if queue is not None:
            queue.close()
            self._retired_queue_drops += queue.overflow_count
        self._stream, self._queue = None, None

    def _notify(self, kind: NoticeKind, *details: Any, **named: Any) -> None:
        send_notice(self.on_notice, "input", kind, *details, **named)


def silence_frames(first_index: int, duration_s: float) -> list[AudioFrame]:
    """Whole frames of silence covering ``duration_s``, numbered from ``first_index``."""
    count = math.ceil(max(0.0, duration_s) * PIPELINE_RATE_HZ / FRAME_SAMPLES)
    return [
        AudioFrame(np.zeros(FRAME_SAMPLES, np.float32), first_index + n * FRAME_SAMPLES)
        for n in range(count)
    ]


def _close_when_opened(opening: asyncio.Future[MicrophoneStream]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()
