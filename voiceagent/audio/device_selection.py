"""Choosing a sound device from a list: pure logic, no PortAudio.

``devices.py`` asks PortAudio for the list and hands it here, so the rules (default device,
index, name substring, ambiguity) are tested without any sound hardware.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from voiceagent.errors import DeviceError

DeviceKind = Literal["input", "output"]


@dataclass(frozen=True)
class DeviceInfo:
    """One sound device as PortAudio reports it.

    Attributes:
        index: PortAudio's device index (what ``--input 3`` refers to).
        name: Device name, e.g. ``"pulse"`` or ``"HDA Intel PCH: ALC257 Analog (hw:0,0)"``.
        host_api: Audio system, e.g. ``"ALSA"``.
        max_input_channels: 0 for an output-only device.
        max_output_channels: 0 for an input-only device.
        default_sample_rate_hz: The rate the device is opened at.
        is_default_input: Whether it is the system's default input.
        is_default_output: Whether it is the system's default output.
    """

    index: int
    name: str
    host_api: str
    max_input_channels: int
    max_output_channels: int
    default_sample_rate_hz: int
    is_default_input: bool = False
    is_default_output: bool = False

    def is_default(self, kind: DeviceKind) -> bool:
        """Whether it is the system's default device of that kind."""
        return self.is_default_input if kind == "input" else self.is_default_output

    def supports(self, kind: DeviceKind) -> bool:
        """Whether the device can record (``"input"``) or play (``"output"``)."""
        channels = self.max_input_channels if kind == "input" else self.max_output_channels
        return channels > 0


def select_device(
    devices: Sequence[DeviceInfo], spec: str | int | None, kind: DeviceKind
) -> DeviceInfo:
    """Choose a device from a list (the pure logic behind ``devices.find_device``).

    Args:
        devices: Every known device.
        spec: None for the default device, an index (``3`` or ``"3"``), or a case-insensitive
            part of the name; a name that matches one device exactly wins over substrings.
        kind: ``"input"`` or ``"output"``.

    Raises:
        DeviceError: No device of that kind, no match, or several matches; the message lists
            the choices.
    """
    candidates = [device for device in devices if device.supports(kind)]
    flag = f"--{kind}"
    if not candidates:
        raise DeviceError(f"No sound {kind} device found.", fix=_NO_DEVICE_FIX[kind])
    choices = "; ".join(f"{device.index}: {device.name}" for device in candidates)
    if spec is None:
        defaults = [device for device in candidates if device.is_default(kind)]
        # PortAudio may report no default (e.g. a bare ALSA setup); any device beats failing.
        return (defaults or candidates)[0]
    text = str(spec).strip()
    if isinstance(spec, int) or text.isdigit():
        return _select_by_index(devices, int(text), kind, choices)
    wanted = text.casefold()
    exact = [device for device in candidates if device.name.casefold() == wanted]
    if len(exact) == 1:
        return exact[0]
    matches = [device for device in candidates if wanted in device.name.casefold()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DeviceError(
            f"No sound {kind} device matches {text!r}.", fix=f"use one of {flag}: {choices}."
        )
    listed = "; ".join(f"{device.index}: {device.name}" for device in matches)
    raise DeviceError(
        f"{text!r} matches several {kind} devices ({listed}).",
        fix=f"pass the index instead, e.g. {flag} {matches[0].index}.",
    )


_NO_DEVICE_FIX = {
    "input": "connect a microphone, or pass an audio file with --input FILE.",
    "output": "connect speakers or headphones, or write to a file with --output FILE.wav.",
}


def _select_by_index(
    devices: Sequence[DeviceInfo], index: int, kind: DeviceKind, choices: str
) -> DeviceInfo:
    for device in devices:
        if device.index == index:
            if device.supports(kind):
                return device
            raise DeviceError(
                f"Sound device {index} ({device.name}) has no {kind} channels.",
                fix=f"use one of --{kind}: {choices}.",
            )
    raise DeviceError(f"There is no sound device {index}.", fix=f"use one of --{kind}: {choices}.")
