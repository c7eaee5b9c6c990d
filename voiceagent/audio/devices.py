"""Sound devices: listing, choosing, capturing from a microphone, and the PortAudio lifecycle.

The only module that imports sounddevice, and only inside functions: ``import voiceagent`` and
``voiceagent --help`` must work on a machine without PortAudio. Devices are opened at their own
sample rate (the one they run at natively, so no driver-side resampling surprises) and
converted here: captured audio to 16 kHz frames. The speaker lives in ``speaker.py``.

PortAudio lists devices only when it is initialised, and re-initialising it closes every open
stream. So every stream is opened and closed through this module, which keeps a registry of
open streams: :func:`rescan_devices` pauses them, re-initialises PortAudio, and reopens them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from voiceagent.audio.clock import Clock, MonotonicClock
from voiceagent.audio.device_selection import DeviceInfo, DeviceKind, select_device
from voiceagent.audio.formats import (
    PIPELINE_RATE_HZ,
    AudioFrame,
    Framer,
    StreamResampler,
    to_mono_float32,
)
from voiceagent.errors import DependencyError, DeviceError

if TYPE_CHECKING:
    from voiceagent.audio.speaker import SpeakerSink

__all__ = [
    "DeviceInfo",
    "MicrophoneStream",
    "SpeakerSink",
    "find_device",
    "find_device_again",
    "import_sounddevice",
    "list_devices",
    "rescan_devices",
    "select_device",
]

INPUT_BLOCK_S = 0.02
"""Capture callback period: short enough for low latency, long enough to be cheap."""


def __getattr__(name: str) -> Any:
    # SpeakerSink moved to speaker.py; it is still importable from here.
    if name == "SpeakerSink":
        from voiceagent.audio.speaker import SpeakerSink

        return SpeakerSink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


class PausableStream(Protocol):
    """A device stream that can step aside while PortAudio re-initialises."""

    def pause_for_rescan(self) -> None:
        """Close the PortAudio stream, keeping everything else; never raises."""
        ...

    def resume_after_rescan(self) -> None:
        """Reopen the device (found again by name); report a failure as a device loss."""
        ...


PORTAUDIO_LOCK = threading.RLock()
"""Held while a stream is opened or closed and during a rescan. Never taken by callbacks."""
_open_streams: list[PausableStream] = []


def register_stream(stream: PausableStream) -> None:
    """Note an open stream so a rescan pauses and resumes it (call with PORTAUDIO_LOCK held)."""
    if stream not in _open_streams:
        _open_streams.append(stream)


def unregister_stream(stream: PausableStream) -> None:
    """Forget a closed stream (call with PORTAUDIO_LOCK held)."""
    if stream in _open_streams:
        _open_streams.remove(stream)


def rescan_devices() -> None:
    """Make PortAudio enumerate devices again (it only does so at initialisation).

    Needed after a sound server starts or a headset is plugged in while we run. Streams opened
    through this module are paused around it and reopened after. Uses sounddevice's private
    ``_terminate``/``_initialize``: there is no public way.

    Raises:
        DependencyError: PortAudio is missing.
        DeviceError: PortAudio failed to re-initialise.
    """
    sounddevice = import_sounddevice()
    with PORTAUDIO_LOCK:
        paused = list(_open_streams)
        for stream in paused:
            stream.pause_for_rescan()
        try:
            sounddevice._terminate()
            sounddevice._initialize()
        except sounddevice.PortAudioError as error:
            raise DeviceError(f"Could not restart PortAudio: {error}.") from error
        finally:
            for stream in paused:
                stream.resume_after_rescan()


def list_devices() -> list[DeviceInfo]:
    """List every input and output device PortAudio knows about.

    Raises:
        DependencyError: PortAudio is missing.
        DeviceError: PortAudio failed to enumerate devices.
    """
    sounddevice = import_sounddevice()
    with PORTAUDIO_LOCK:  # never while another thread re-initialises PortAudio
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


def find_device_again(spec: str | int | None, device: DeviceInfo, kind: DeviceKind) -> DeviceInfo:
    """Find a device once more after a rescan, when its index may have changed.

    The default device is looked up afresh (so a session follows the system's choice when a
    headset goes away); a named or numbered one is looked up by its full name.
    """
    return find_device(None if spec is None else device.name, kind)


def open_stream(
    factory: Callable[..., Any], device: DeviceInfo, kind: DeviceKind, **options: Any
) -> Any:
    """Open and start a stream in mono, falling back to stereo for hardware that refuses one
    channel. Call with PORTAUDIO_LOCK held.

    Raises:
        DeviceError: PortAudio could not open or start it.
    """
    sounddevice = import_sounddevice()
    max_channels = device.max_input_channels if kind == "input" else device.max_output_channels
    last_error: Exception | None = None
    for channels in dict.fromkeys((1, min(2, max_channels))):
        try:
            stream = factory(
                device=device.index,
                samplerate=device.default_sample_rate_hz,
                channels=channels,
                dtype="float32",
                **options,
            )
        except sounddevice.PortAudioError as error:
            last_error = error
            continue
        try:
            stream.start()
        except sounddevice.PortAudioError as error:
            close_quietly(stream)
            last_error = error
            continue
        return stream
    raise DeviceError(
        f"Could not open the {kind} device {device.index} ({device.name}): {last_error}.",
        fix="close other programs using it, or choose another device (see `voiceagent devices`).",
    ) from last_error


def close_quietly(stream: Any) -> None:
    """Stop and close a PortAudio stream whose device may already be gone.

    A vanished device makes ``abort``/``close`` fail too; there is nothing left to release
    then, so that failure is not worth reporting on top of the loss itself.
    """
    sounddevice = import_sounddevice()
    for step in (stream.abort, stream.close):
        try:
            step()
        except sounddevice.PortAudioError:
            pass


class MicrophoneStream:
    """Capture from an input device, delivering 16 kHz :class:`AudioFrame`\\ s to a callback.

    ``on_frame`` and ``on_error`` run on PortAudio's audio thread and must not block; pass e.g.
    :meth:`AsyncFrameQueue.put_threadsafe`. Resampling happens here, on that thread: soxr takes
    microseconds per 20 ms block, and it keeps the hand-off down to one small frame at a time.

    When the device stops on its own (unplugged, sound server gone), ``on_error`` receives a
    :class:`DeviceError`; reopening is the caller's choice (see ``MicrophoneSource``).
    """

    def __init__(
        self,
        device: DeviceInfo,
        on_frame: Callable[[AudioFrame], None],
        on_error: Callable[[BaseException], None] | None = None,
        spec: str | int | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.device = device
        self.spec = spec
        self.clock: Clock = clock or MonotonicClock()
        self._on_frame = on_frame
        self._on_error = on_error
        self._resampler = StreamResampler(device.default_sample_rate_hz, PIPELINE_RATE_HZ)
        self._framer = Framer()
        self._stream: Any = None
        self._lock = threading.Lock()
        self._input_overflow_count = 0
        self._last_callback_s: float | None = None
        self._is_stopping = False

    @classmethod
    def open(
        cls,
        spec: str | int | None,
        on_frame: Callable[[AudioFrame], None],
        on_error: Callable[[BaseException], None] | None = None,
        clock: Clock | None = None,
    ) -> MicrophoneStream:
        """Find the input device ``spec`` (see :func:`find_device`) and start capturing."""
        stream = cls(find_device(spec, "input"), on_frame, on_error, spec=spec, clock=clock)
        stream.start()
        return stream

    @property
    def input_overflow_count(self) -> int:
        """Callbacks in which PortAudio reported lost input (we were too slow)."""
        with self._lock:
            return self._input_overflow_count

    @property
    def last_callback_s(self) -> float | None:
        """Clock time of the latest capture callback; None before the first."""
        with self._lock:
            return self._last_callback_s

    def start(self) -> None:
        """Open the device at its own rate and start capturing.

        Raises:
            DeviceError: It cannot be opened or started.
        """
        sounddevice = import_sounddevice()
        with PORTAUDIO_LOCK:
            self._is_stopping = False
            self._stream = open_stream(
                sounddevice.InputStream,
                self.device,
                "input",
                blocksize=round(INPUT_BLOCK_S * self.device.default_sample_rate_hz),
                callback=self._callback,
                finished_callback=self._finished,
            )
            register_stream(self)

    def _callback(self, indata: np.ndarray, frame_count: int, time_info: Any, status: Any) -> None:
        now_s = self.clock.now_s()
        with self._lock:
            self._last_callback_s = now_s
            if status.input_overflow:
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

    def pause_for_rescan(self) -> None:
        """Close the PortAudio stream for a rescan; the frame count carries on after."""
        self._is_stopping = True
        if self._stream is not None:
            close_quietly(self._stream)
            self._stream = None

    def resume_after_rescan(self) -> None:
        """Reopen the same device after a rescan; a failure is reported as a device loss."""
        if self._stream is not None:
            return
        try:
            device = find_device_again(self.spec, self.device, "input")
            if device.default_sample_rate_hz != self.device.default_sample_rate_hz:
                self._resampler = StreamResampler(device.default_sample_rate_hz, PIPELINE_RATE_HZ)
            self.device = device
            self.start()
        except (DeviceError, DependencyError) as error:
            self._report(error)

    def close(self) -> None:
        """Stop capturing and release the device; safe to call twice, and after a loss."""
        self._is_stopping = True
        with PORTAUDIO_LOCK:
            unregister_stream(self)
            if self._stream is not None:
                close_quietly(self._stream)
                self._stream = None
