"""A stand-in for the ``sounddevice`` module, for injecting device faults without hardware.

Install it with ``monkeypatch.setitem(sys.modules, "sounddevice", FakeSoundDevice(...))``. Each
stream that opens plays its script at once, on the thread that started it: blocks of audio
through the callback, then optionally a vanishing device (the finished callback, as PortAudio
does when a device is unplugged). Opens and starts can be made to fail with ``PortAudioError``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class PortAudioError(Exception):
    """Like ``sounddevice.PortAudioError``."""


class CallbackAbort(Exception):
    """Like ``sounddevice.CallbackAbort``."""


@dataclass(frozen=True)
class Audio:
    """Deliver ``blocks`` callbacks of ``value`` (input) or ask for as many (output), each
    flagged as an overflow (input) or underflow (output) when ``is_xrun``."""

    blocks: int
    value: float = 0.1
    is_xrun: bool = False


@dataclass(frozen=True)
class Vanish:
    """The device disappears: the stream stops and its finished callback runs. The next
    ``failing_opens`` opens and ``failing_starts`` starts of a stream of the same kind then
    fail (it is still away)."""

    failing_opens: int = 0
    failing_starts: int = 0


@dataclass
class CallbackStatus:
    input_overflow: bool = False
    output_underflow: bool = False


DEFAULT_DEVICES = [
    {"index": 0, "name": "fake mic", "hostapi": 0, "max_input_channels": 1,
     "max_output_channels": 0, "default_samplerate": 16000.0},
    {"index": 1, "name": "fake speaker", "hostapi": 0, "max_input_channels": 0,
     "max_output_channels": 2, "default_samplerate": 16000.0},
]  # fmt: skip


@dataclass
class FakeSoundDevice:
    """The module: device list, stream classes, PortAudio (re)initialisation.

    Attributes:
        scripts: One script per stream, taken in the order streams start (an empty list once
            they run out).
        failing_opens: This many next opens raise ``PortAudioError`` (then as many of each
            kind as ``failing_opens_of`` says).
        failing_starts: This many next starts raise ``PortAudioError`` (and ``failing_starts_of``).
        rescans: How many times PortAudio was re-initialised.
        live_at_rescan: Streams that were still running when PortAudio was terminated (a real
            PortAudio would have closed them under our feet).
    """

    scripts: list[list[Audio | Vanish]] = field(default_factory=list)
    devices: list[dict[str, Any]] = field(default_factory=lambda: list(DEFAULT_DEVICES))
    failing_opens: int = 0
    failing_starts: int = 0
    failing_opens_of: dict[str, int] = field(default_factory=dict)
    failing_starts_of: dict[str, int] = field(default_factory=dict)
    streams: list[FakeStream] = field(default_factory=list)
    rescans: int = 0
    live_at_rescan: list[FakeStream] = field(default_factory=list)
    PortAudioError: type[Exception] = PortAudioError
    CallbackAbort: type[Exception] = CallbackAbort

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def query_devices(self, kind: str | None = None) -> Any:
        if kind is None:
            return list(self.devices)
        key = f"max_{kind}_channels"
        for device in self.devices:
            if device[key] > 0:
                return device
        raise PortAudioError(f"no default {kind} device")

    def query_hostapis(self) -> list[dict[str, Any]]:
        return [{"name": "FAKE"}]

    def InputStream(self, **options: Any) -> FakeStream:  # noqa: N802 - sounddevice's name
        return self._open("input", options)

    def OutputStream(self, **options: Any) -> FakeStream:  # noqa: N802 - sounddevice's name
        return self._open("output", options)

    def _open(self, kind: str, options: dict[str, Any]) -> FakeStream:
        with self._lock:
            if self.failing_opens > 0 or self.failing_opens_of.get(kind, 0) > 0:
                if self.failing_opens > 0:
                    self.failing_opens -= 1
                else:
                    self.failing_opens_of[kind] -= 1
                raise PortAudioError("Error opening stream: Device unavailable [PaErrorCode -9985]")
            stream = FakeStream(self, kind, options)
            self.streams.append(stream)
            return stream

    def _start(self, kind: str) -> list[Audio | Vanish]:
        """A stream starts: fail, or hand it the next script."""
        with self._lock:
            if self.failing_starts > 0 or self.failing_starts_of.get(kind, 0) > 0:
                if self.failing_starts > 0:
                    self.failing_starts -= 1
                else:
                    self.failing_starts_of[kind] -= 1
                raise PortAudioError("Error starting stream: Unanticipated host error")
            return self.scripts.pop(0) if self.scripts else []

    def _terminate(self) -> None:
        self.live_at_rescan.extend(s for s in self.streams if s.is_active)

    def _initialize(self) -> None:
        self.rescans += 1

    def active_streams(self, kind: str) -> list[FakeStream]:
        return [s for s in self.streams if s.kind == kind and s.is_active]


class FakeStream:
    """One input or output stream; plays its script when started."""

    def __init__(self, module: FakeSoundDevice, kind: str, options: dict[str, Any]) -> None:
        self.module = module
        self.kind = kind
        self.options = options
        self.script: list[Audio | Vanish] = []
        self.is_active = False
        self.is_closed = False
        self.played: list[np.ndarray] = []
        self._callback: Callable[..., None] = options["callback"]
        self._finished: Callable[[], None] | None = options.get("finished_callback")

    @property
    def channels(self) -> int:
        return int(self.options["channels"])

    @property
    def block_frames(self) -> int:
        return int(self.options.get("blocksize") or 320)

    def start(self) -> None:
        self.script = self.module._start(self.kind)
        self.is_active = True
        for step in self.script:
            if not self.is_active:
                return
            if isinstance(step, Vanish):
                module = self.module
                with module._lock:
                    opens, starts = module.failing_opens_of, module.failing_starts_of
                    opens[self.kind] = opens.get(self.kind, 0) + step.failing_opens
                    starts[self.kind] = starts.get(self.kind, 0) + step.failing_starts
                self.vanish()
            else:
                status = CallbackStatus(step.is_xrun, step.is_xrun)
                for _ in range(step.blocks):
                    self.run_callback(step.value, status)

    def run_callback(self, value: float = 0.0, status: CallbackStatus | None = None) -> None:
        """One device period: capture ``value`` or collect what the sink plays."""
        status = status or CallbackStatus()
        frames = self.block_frames
        if self.kind == "input":
            block = np.full((frames, self.channels), value, dtype=np.float32)
            self._callback(block, frames, None, status)
        else:
            out = np.zeros((frames, self.channels), dtype=np.float32)
            self._callback(out, frames, None, status)
            self.played.append(out[:, 0].copy())

    def vanish(self) -> None:
        self.is_active = False
        if self._finished is not None:
            self._finished()

    def abort(self) -> None:
        was_active, self.is_active = self.is_active, False
        if was_active and self._finished is not None:
            self._finished()

    def close(self) -> None:
        self.is_active = False
        self.is_closed = True
