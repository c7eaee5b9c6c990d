"""The speaker: an :class:`~voiceagent.audio.sinks.AudioSink` that plays through an output device,
and reopens it when it goes away mid-session."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np

from voiceagent.audio.clock import Clock, MonotonicClock
from voiceagent.audio.devices import (
    PORTAUDIO_LOCK,
    DeviceInfo,
    close_quietly,
    find_device,
    find_device_again,
    import_sounddevice,
    open_stream,
    register_stream,
    rescan_devices,
    unregister_stream,
)
from voiceagent.audio.formats import resample_once, to_mono_float32
from voiceagent.audio.recovery import (
    NoticeHandler,
    NoticeKind,
    ReopenPolicy,
    gave_up_error,
    lost_message,
    send_notice,
)
from voiceagent.audio.ring_buffer import SampleQueue
from voiceagent.audio.sinks import FADE_S, fade_ramp
from voiceagent.audio.sources import STALL_TIMEOUT_S
from voiceagent.errors import DependencyError, DeviceError

RECOVERY_JOIN_TIMEOUT_S = 5.0
"""How long :meth:`SpeakerSink.close` waits for a reopen attempt in progress to finish."""


OUTPUT_LATENCY_S = 0.05
"""Output buffer asked of PortAudio. Its "low" setting (8.6 ms through ALSA's pulse plugin here)
underran twice in 15 s with the CPU busy, and each underrun stalled the output for ~2 s while
ALSA recovered (a reply heard 2.5 s late); 50 ms never underran in the same test. It is also
how long audio keeps playing after a barge-in clears the queue."""


class SpeakerSink:
    """An :class:`~voiceagent.audio.sinks.AudioSink` that plays through an output device.

    Chunks are resampled to the device's rate and queued; PortAudio's callback takes from the
    queue and plays silence when it is empty. :meth:`clear` empties the queue, so playback stops
    within one device buffer (``OUTPUT_LATENCY_S``).

    With a ``reopen`` policy, a device that stops on its own is reopened on a background thread
    with backoff; audio queued or written meanwhile is dropped (it would be stale by then). If
    it cannot be reopened, ``on_notice`` gets a ``GAVE_UP`` notice and writes raise. Without a
    policy the first loss makes writes raise at once.
    """

    def __init__(
        self,
        device: DeviceInfo,
        clock: Clock | None = None,
        spec: str | int | None = None,
        reopen: ReopenPolicy | None = None,
        on_notice: NoticeHandler | None = None,
        stall_timeout_s: float = STALL_TIMEOUT_S,
    ) -> None:
        self.device = device
        self.stall_timeout_s = stall_timeout_s
        self.spec = spec
        self.clock: Clock = clock or MonotonicClock()
        self.reopen = reopen
        self.on_notice = on_notice
        self._queue = SampleQueue()
        self._lock = threading.Lock()
        self._stream: Any = None
        self._played_samples = 0
        self._device_samples = 0
        self._first_sample_time_s: float | None = None
        self._drain_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._error: BaseException | None = None
        self._is_closing = False
        self._is_pausing = False
        self._is_held = False
        self._fade_out: np.ndarray | None = None  # to play before anything else (_take_fade_out)
        self._fade_in = False  # the next audio played fades in (after resume)
        self._is_recovering = False
        self._stop_recovery = threading.Event()
        self._recovery: threading.Thread | None = None
        self.underflow_count = 0
        """Callbacks in which PortAudio ran out of data while we still had audio queued."""
        self.device_loss_count = 0
        """Times the device stopped on its own."""
        self.device_reopen_count = 0
        """Times it was reopened after a loss."""

    @classmethod
    def open(
        cls,
        spec: str | int | None = None,
        clock: Clock | None = None,
        reopen: ReopenPolicy | None = None,
        on_notice: NoticeHandler | None = None,
    ) -> SpeakerSink:
        """Find the output device ``spec`` (see :func:`find_device`) and start its stream."""
        sink = cls(find_device(spec, "output"), clock, spec, reopen, on_notice)
        sink.start()
        return sink

    def start(self) -> None:
        """Open the device at its own rate; it plays silence until something is written.

        Raises:
            DeviceError: It cannot be opened or started.
        """
        sounddevice = import_sounddevice()
        with PORTAUDIO_LOCK:
            self._is_pausing = False
            self._stream = open_stream(
                sounddevice.OutputStream,
                self.device,
                "output",
                latency=OUTPUT_LATENCY_S,
                callback=self._callback,
                finished_callback=self._finished,
            )
            register_stream(self)

    @property
    def output_rate_hz(self) -> int:
        """The device's rate."""
        return self.device.default_sample_rate_hz

    @property
    def output_latency_s(self) -> float:
        """The device's output latency as PortAudio reports it: how long a sample handed to
        the device takes to be heard, so also how long cleared audio keeps playing."""
        stream = self._stream
        latency = getattr(stream, "latency", 0.0) if stream is not None else 0.0
        return float(latency) if isinstance(latency, int | float) else 0.0

    @property
    def played_samples(self) -> int:
        """Samples of written audio handed to the device (cleared audio excluded)."""
        with self._lock:
            return self._played_samples

    @property
    def played_s(self) -> float:
        """``played_samples`` in seconds."""
        return self.played_samples / self.output_rate_hz

    @property
    def device_samples(self) -> int:
        """Samples handed to the device since start, silence included (the device's clock)."""
        with self._lock:
            return self._device_samples

    @property
    def queued_samples(self) -> int:
        """Samples written but not yet handed to the device."""
        return self._queue.queued_samples

    @property
    def first_sample_time_s(self) -> float | None:
        """Clock time the first sample since the last :meth:`mark_start`/:meth:`clear` was
        handed to the device."""
        with self._lock:
            return self._first_sample_time_s

    @property
    def is_recovering(self) -> bool:
        """The device was lost and is being reopened."""
        with self._lock:
            return self._is_recovering

    def write(self, chunk: np.ndarray, rate_hz: int) -> None:
        """Queue a chunk for playback (resampled from ``rate_hz`` to the device's rate).

        Each chunk is resampled on its own rather than through a stream resampler, so no tail
        is left inside a filter; TTS chunks end at sentence pauses, where edges are inaudible.
        While the device is being reopened the chunk is dropped.

        Raises:
            DeviceError: The device stopped (e.g. was unplugged) and did not come back.
        """
        if self._error is not None:
            raise self._error
        if self.is_recovering:
            return
        self._queue.write(resample_once(to_mono_float32(chunk), rate_hz, self.output_rate_hz))

    def mark_start(self) -> None:
        """Start timing a new reply."""
        with self._lock:
            self._first_sample_time_s = None

    def clear(self) -> None:
        """Drop all queued audio; the device plays silence from its next buffer on (after a
        fade of ``FADE_S``)."""
        with self._lock:
            self._take_fade_out()
            self._queue.clear()
            self._is_held = False
            self._fade_in = False
            self._first_sample_time_s = None
        self._wake_drain_waiters()

    @property
    def is_held(self) -> bool:
        """Between :meth:`hold` and :meth:`resume` (or :meth:`clear`)."""
        return self._is_held

    def hold(self) -> None:
        """Go silent from the device's next buffer on (after a fade of ``FADE_S``), keeping the
        queued audio (and what is written meanwhile) for :meth:`resume`."""
        with self._lock:
            if not self._is_held:
                self._take_fade_out()
                self._is_held = True

    def resume(self) -> None:
        """Play the queued audio on from where :meth:`hold` stopped it, fading in."""
        with self._lock:
            if self._is_held:
                self._is_held = False
                self._fade_in = True

    def _take_fade_out(self) -> None:
        """Takes the next ``FADE_S`` of queued audio, faded to silence, to play before the cut
        (with ``_lock`` held, so no callback plays anything in between)."""
        if self._is_held or self._fade_out is not None:
            return  # already silent, or fading
        tail = np.zeros(max(1, round(FADE_S * self.output_rate_hz)), dtype=np.float32)
        taken = self._queue.read_into(tail)
        if taken:
            self._fade_out = tail[:taken] * fade_ramp(taken, fade_in=False)
            self._played_samples += taken  # they will be heard, fading

    async def drain(self) -> None:
        """Wait until every written sample has been handed to the device.

        Returns early when the audio is cleared, the device is lost, or the sink closed.

        Raises:
            DeviceError: The device stopped and is not being reopened.
        """
        if self._queue.queued_samples == 0 or (self._stream is None and not self._is_pausing):
            return
        loop = asyncio.get_running_loop()
        # A wake-up is only a hint (a rescan closing the stream, a callback that ran between
        # two writes): go on waiting while written audio is still queued for a live device.
        while self._queue.queued_samples > 0 and self._error is None and not self._is_closing:
            if self._stream is None and not self._is_pausing:
                break
            done: asyncio.Future[None] = loop.create_future()
            with self._lock:
                self._drain_waiters.append((loop, done))
            if self._queue.queued_samples == 0:  # the callback may have emptied it meanwhile
                self._wake_drain_waiters()
            # The queued audio plays in its own length; a device that takes much longer than
            # that has stopped calling back without saying so, and counts as lost.
            playing_s = self._queue.queued_samples / self.output_rate_hz
            try:
                await asyncio.wait_for(asyncio.shield(done), playing_s + self.stall_timeout_s)
            except TimeoutError:
                if self._is_held:
                    continue  # held on purpose (the user may be talking), not stalled
                self.lose(
                    DeviceError(
                        f"The output device {self.device.name} stopped playing (nothing taken "
                        f"for {self.stall_timeout_s:g} s).",
                        fix="check that it is still connected, then start again.",
                    )
                )
                await done
        if self._error is not None:
            raise self._error

    def _callback(self, outdata: np.ndarray, frame_count: int, time_info: Any, status: Any) -> None:
        mono = np.zeros(frame_count, dtype=np.float32)
        fresh = 0
        with self._lock:
            faded = 0  # the end of a reply held or cleared, fading out (counted when taken)
            if self._fade_out is not None:
                faded = min(frame_count, self._fade_out.size)
                mono[:faded] = self._fade_out[:faded]
                rest = self._fade_out[faded:]
                self._fade_out = rest if rest.size else None
            if not self._is_held and self._fade_out is None:
                fresh = self._queue.read_into(mono[faded:])
                if self._fade_in and fresh:
                    ramp = min(fresh, round(FADE_S * self.output_rate_hz))
                    mono[faded : faded + ramp] *= fade_ramp(ramp, fade_in=True)
                    self._fade_in = False
            self._device_samples += frame_count
            self._played_samples += fresh
            if fresh:
                if self._first_sample_time_s is None:
                    self._first_sample_time_s = self.clock.now_s()
                if status.output_underflow:
                    self.underflow_count += 1
        outdata[:] = mono[:, np.newaxis]
        if faded + fresh < frame_count:
            self._wake_drain_waiters()

    def _finished(self) -> None:
        if self._is_closing or self._is_pausing:
            self._wake_drain_waiters()
            return
        self.lose(
            DeviceError(
                f"The output device {self.device.name} stopped unexpectedly.",
                fix="check that it is still connected, then start again.",
            )
        )

    def lose(self, cause: BaseException) -> None:
        """The device is gone: drop queued audio, then reopen it (with a policy) or fail.

        Called by PortAudio's thread when the stream stops on its own; safe from any thread.
        """
        with self._lock:
            if self._is_recovering or self._is_closing or self._error is not None:
                return
            self.device_loss_count += 1
            self._is_recovering = self.reopen is not None
        self._queue.clear()
        self.mark_start()
        if self.reopen is None:
            self._error = cause
            self._wake_drain_waiters()
            return
        self._wake_drain_waiters()
        self._recovery = threading.Thread(
            target=self._recover, args=(cause, self.reopen), name="speaker-reopen", daemon=True
        )
        self._recovery.start()

    def _recover(self, cause: BaseException, policy: ReopenPolicy) -> None:
        lost_at_s = self.clock.now_s()
        name = self.device.name
        with PORTAUDIO_LOCK:
            unregister_stream(self)
            if self._stream is not None:
                close_quietly(self._stream)
                self._stream = None
        self._notify(NoticeKind.LOST, name, lost_message(cause, policy))
        attempts = 0
        last_error = cause
        for delay_s in policy.delays_s():
            if self._stop_recovery.wait(delay_s):
                return  # closed meanwhile
            attempts += 1
            try:
                with PORTAUDIO_LOCK:  # no other rescan between ours and the open
                    if self._is_closing:
                        return
                    rescan_devices()
                    self.device = find_device_again(self.spec, self.device, "output")
                    self.start()
            except (DeviceError, DependencyError) as error:
                last_error = error
                continue
            with self._lock:
                self._is_recovering = False
                self.device_reopen_count += 1
            gap_s = self.clock.now_s() - lost_at_s
            self._notify(
                NoticeKind.RECOVERED,
                self.device.name,
                f"the output device {self.device.name} is back after {gap_s:.1f} s.",
                attempts,
                gap_s,
            )
            return
        gap_s = self.clock.now_s() - lost_at_s
        gave_up = gave_up_error("output", name, gap_s, attempts)
        gave_up.__cause__ = last_error
        self._error = gave_up
        self._wake_drain_waiters()
        self._notify(NoticeKind.GAVE_UP, name, str(gave_up), attempts, gap_s, gave_up)

    def _notify(self, kind: NoticeKind, *details: Any, **named: Any) -> None:
        send_notice(self.on_notice, "output", kind, *details, **named)

    def pause_for_rescan(self) -> None:
        """Close the PortAudio stream for a rescan; queued audio waits for the reopen."""
        self._is_pausing = True
        if self._stream is not None:
            close_quietly(self._stream)
            self._stream = None

    def resume_after_rescan(self) -> None:
        """Reopen the same device after a rescan; a failure counts as a device loss."""
        if not self._is_pausing:
            return
        try:
            self.device = find_device_again(self.spec, self.device, "output")
            self.start()
        except (DeviceError, DependencyError) as error:
            self._is_pausing = False
            with PORTAUDIO_LOCK:
                unregister_stream(self)
            self.lose(error)

    def _wake_drain_waiters(self) -> None:
        with self._lock:
            waiters, self._drain_waiters = self._drain_waiters, []
        for loop, done in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, done)
            except RuntimeError:
                pass  # That loop has closed; nobody is waiting any more.

    def close(self) -> None:
        """Stop playback at once and release the device; safe to call twice."""
        self._is_closing = True
        self._stop_recovery.set()
        recovery = self._recovery
        if recovery is not None and recovery is not threading.current_thread():
            recovery.join(RECOVERY_JOIN_TIMEOUT_S)
        with PORTAUDIO_LOCK:
            unregister_stream(self)
            if self._stream is not None:
                close_quietly(self._stream)
                self._stream = None
        self._queue.clear()
        self._wake_drain_waiters()

    def __enter__(self) -> SpeakerSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _resolve(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)
