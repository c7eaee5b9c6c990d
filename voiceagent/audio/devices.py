"""Sound devices: listing, choosing, capturing from a microphone and playing to a speaker.

The only module that imports sounddevice, and only inside functions: ``import voiceagent`` and
``voiceagent --help`` must work on a machine without PortAudio. Devices are opened at their own
sample rate (the one they run at natively, so no driver-side resampling surprises) and
converted here: captured audio to 16 kHz frames, the voice's audio to the device's rate.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from voiceagent.audio.clock import Clock, MonotonicClock
from voiceagent.audio.device_selection import DeviceInfo, DeviceKind, select_device
from voiceagent.audio.formats import (
    PIPELINE_RATE_HZ,
    AudioFrame,
    Framer,
    StreamResampler,
    resample_once,
    to_mono_float32,
)
from voiceagent.audio.ring_buffer import SampleQueue
from voiceagent.errors import DependencyError, DeviceError

__all__ = [
    "DeviceInfo",
    "MicrophoneStream",
    "SpeakerSink",
    "find_device",
    "import_sounddevice",
    "list_devices",
    "rescan_devices",
    "select_device",
]

INPUT_BLOCK_S = 0.02
"""Capture callback period: short enough for low latency, long enough to be cheap."""


def import_sounddevice() -> ModuleType:
    """Import sounddevice, turning a missing PortAudio into a one-line fix.

    Raises:
        DependencyError: sounddevice or the PortAudio system library is missing.
    """
    try:
        import sounddevice
    except OSError as error:
        # sounddevice raises OSError("PortAudio library not found") when libportaudio is absent.
        raise DependencyError(
            f"The PortAudio sound library is not installed ({error}).",
            fix="sudo apt-get install libportaudio2",
        ) from error
    except ImportError as error:
        raise DependencyError(
            "The Python package 'sounddevice' is not installed.", fix="pip install sounddevice"
        ) from error
    return sounddevice


def rescan_devices() -> None:
    """Make PortAudio enumerate devices again (it only does so at initialisation).

    Needed after a sound server starts or a headset is plugged in while we run. Uses
    sounddevice's private ``_terminate``/``_initialize``: there is no public way. Do not call
    while a stream is open.
    """
    sounddevice = import_sounddevice()
    sounddevice._terminate()
    sounddevice._initialize()


def list_devices() -> list[DeviceInfo]:
    """List every input and output device PortAudio knows about.

    Raises:
        DependencyError: PortAudio is missing.
        DeviceError: PortAudio failed to enumerate devices.
    """
    sounddevice = import_sounddevice()
    try:
        raw_devices = sounddevice.query_devices()
        host_apis = sounddevice.query_hostapis()
    except sounddevice.PortAudioError as error:
        raise DeviceError(f"Could not list sound devices: {error}.") from error
    default_input = _default_index(sounddevice, "input")
    default_output = _default_index(sounddevice, "output")
    return [
        DeviceInfo(
            index=int(raw["index"]),
            name=str(raw["name"]),
            host_api=str(host_apis[raw["hostapi"]]["name"]),
            max_input_channels=int(raw["max_input_channels"]),
            max_output_channels=int(raw["max_output_channels"]),
            default_sample_rate_hz=round(raw["default_samplerate"]),
            is_default_input=int(raw["index"]) == default_input,
            is_default_output=int(raw["index"]) == default_output,
        )
        for raw in raw_devices
    ]


def _default_index(sounddevice: ModuleType, kind: DeviceKind) -> int | None:
    try:
        return int(sounddevice.query_devices(kind=kind)["index"])
    except (sounddevice.PortAudioError, ValueError, KeyError, TypeError):
        return None


def find_device(spec: str | int | None, kind: DeviceKind) -> DeviceInfo:
    """Find a device by index, by name, or the default one.

    Args:
        spec: None for the default device, an index (``3`` or ``"3"``), or a case-insensitive
            part of the name (``"usb"``).
        kind: ``"input"`` or ``"output"``.

    Raises:
        DeviceError: No such device, or the name matches several; the message lists the choices.
    """
    return select_device(list_devices(), spec, kind)


def _open_stream(
    factory: Callable[..., Any], device: DeviceInfo, kind: DeviceKind, **options: Any
) -> Any:
    """Open a stream in mono, falling back to stereo for hardware that refuses one channel."""
    sounddevice = import_sounddevice()
    max_channels = device.max_input_channels if kind == "input" else device.max_output_channels
    last_error: Exception | None = None
    for channels in dict.fromkeys((1, min(2, max_channels))):
        try:
            return factory(
                device=device.index,
                samplerate=device.default_sample_rate_hz,
                channels=channels,
                dtype="float32",
                **options,
            )
        except sounddevice.PortAudioError as error:
            last_error = error
    raise DeviceError(
        f"Could not open the {kind} device {device.index} ({device.name}): {last_error}.",
        fix="close other programs using it, or choose another device (see `voiceagent devices`).",
    ) from last_error


class MicrophoneStream:
    """Capture from an input device, delivering 16 kHz :class:`AudioFrame`\\ s to a callback.

    ``on_frame`` and ``on_error`` run on PortAudio's audio thread and must not block; pass e.g.
    :meth:`AsyncFrameQueue.put_threadsafe`. Resampling happens here, on that thread: soxr takes
    microseconds per 20 ms block, and it keeps the hand-off down to one small frame at a time.
    """

    def __init__(
        self,
        device: DeviceInfo,
        on_frame: Callable[[AudioFrame], None],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.device = device
        self._on_frame = on_frame
        self._on_error = on_error
        self._resampler = StreamResampler(device.default_sample_rate_hz, PIPELINE_RATE_HZ)
        self._framer = Framer()
        self._stream: Any = None
        self._lock = threading.Lock()
        self._input_overflow_count = 0
        self._is_stopping = False

    @classmethod
    def open(
        cls,
        spec: str | int | None,
        on_frame: Callable[[AudioFrame], None],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> MicrophoneStream:
        """Find the input device ``spec`` (see :func:`find_device`) and start capturing."""
        stream = cls(find_device(spec, "input"), on_frame, on_error)
        stream.start()
        return stream

    @property
    def input_overflow_count(self) -> int:
        """Callbacks in which PortAudio reported lost input (we were too slow)."""
        with self._lock:
            return self._input_overflow_count

    def start(self) -> None:
        """Open the device at its own rate and start capturing."""
        sounddevice = import_sounddevice()
        self._stream = _open_stream(
            sounddevice.InputStream,
            self.device,
            "input",
            blocksize=round(INPUT_BLOCK_S * self.device.default_sample_rate_hz),
            callback=self._callback,
            finished_callback=self._finished,
        )
        self._stream.start()

    def _callback(self, indata: np.ndarray, frame_count: int, time_info: Any, status: Any) -> None:
        if status.input_overflow:
            with self._lock:
                self._input_overflow_count += 1
        try:
            resampled = self._resampler.process(to_mono_float32(indata))
            for frame in self._framer.push(resampled):
                self._on_frame(frame)
        except Exception as error:  # noqa: BLE001 - must not escape into PortAudio's thread
            self._report(error)
            raise import_sounddevice().CallbackAbort from error

    def _finished(self) -> None:
        if not self._is_stopping:
            self._report(
                DeviceError(
                    f"The input device {self.device.name} stopped unexpectedly.",
                    fix="check that it is still connected, then start again.",
                )
            )

    def _report(self, error: BaseException) -> None:
        if self._on_error is not None:
            self._on_error(error)

    def close(self) -> None:
        """Stop capturing and release the device; safe to call twice."""
        self._is_stopping = True
        if self._stream is not None:
            self._stream.abort()
            self._stream.close()
            self._stream = None


class SpeakerSink:
    """An :class:`~voiceagent.audio.sinks.AudioSink` that plays through an output device.

    Chunks are resampled to the device's rate and queued; PortAudio's callback takes from the
    queue and plays silence when it is empty. :meth:`clear` empties the queue, so playback stops
    within one device buffer (``latency="low"``: a few tens of milliseconds).
    """

    def __init__(self, device: DeviceInfo, clock: Clock | None = None) -> None:
        self.device = device
        self.clock: Clock = clock or MonotonicClock()
        self._queue = SampleQueue()
        self._lock = threading.Lock()
        self._stream: Any = None
        self._played_samples = 0
        self._device_samples = 0
        self._first_sample_time_s: float | None = None
        self._drain_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._error: BaseException | None = None
        self._is_closing = False
        self.underflow_count = 0
        """Callbacks in which PortAudio ran out of data while we still had audio queued."""

    @classmethod
    def open(cls, spec: str | int | None = None, clock: Clock | None = None) -> SpeakerSink:
        """Find the output device ``spec`` (see :func:`find_device`) and start its stream."""
        sink = cls(find_device(spec, "output"), clock=clock)
        sink.start()
        return sink

    def start(self) -> None:
        """Open the device at its own rate; it plays silence until something is written."""
        sounddevice = import_sounddevice()
        self._stream = _open_stream(
            sounddevice.OutputStream,
            self.device,
            "output",
            latency="low",
            callback=self._callback,
            finished_callback=self._finished,
        )
        self._stream.start()

    @property
    def output_rate_hz(self) -> int:
        """The device's rate."""
        return self.device.default_sample_rate_hz

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

    def write(self, chunk: np.ndarray, rate_hz: int) -> None:
        """Queue a chunk for playback (resampled from ``rate_hz`` to the device's rate).

        Each chunk is resampled on its own rather than through a stream resampler, so no tail
        is left inside a filter; TTS chunks end at sentence pauses, where edges are inaudible.

        Raises:
            DeviceError: The device stopped (e.g. was unplugged).
        """
        if self._error is not None:
            raise self._error
        self._queue.write(resample_once(to_mono_float32(chunk), rate_hz, self.output_rate_hz))

    def mark_start(self) -> None:
        """Start timing a new reply."""
        with self._lock:
            self._first_sample_time_s = None

    def clear(self) -> None:
        """Drop all queued audio; the device plays silence from its next buffer on."""
        self._queue.clear()
        self.mark_start()
        self._wake_drain_waiters()

    async def drain(self) -> None:
        """Wait until every written sample has been handed to the device.

        Returns early when the audio is cleared or the sink closed.

        Raises:
            DeviceError: The device stopped before the audio was played.
        """
        if self._queue.queued_samples == 0 or self._stream is None:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._drain_waiters.append((loop, done))
        if self._queue.queued_samples == 0:  # the callback may have emptied it meanwhile
            self._wake_drain_waiters()
        await done
        if self._error is not None:
            raise self._error

    def _callback(self, outdata: np.ndarray, frame_count: int, time_info: Any, status: Any) -> None:
        mono = np.zeros(frame_count, dtype=np.float32)
        copied = self._queue.read_into(mono)
        outdata[:] = mono[:, np.newaxis]
        with self._lock:
            self._device_samples += frame_count
            if copied:
                if self._first_sample_time_s is None:
                    self._first_sample_time_s = self.clock.now_s()
                self._played_samples += copied
                if status.output_underflow:
                    self.underflow_count += 1
        if copied < frame_count:
            self._wake_drain_waiters()

    def _finished(self) -> None:
        if not self._is_closing:
            self._error = DeviceError(
                f"The output device {self.device.name} stopped unexpectedly.",
                fix="check that it is still connected, then start again.",
            )
        self._wake_drain_waiters()

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
        if self._stream is not None:
            self._stream.abort()
            self._stream.close()
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
