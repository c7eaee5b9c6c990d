"""What happens when a sound device disappears mid-session: the reopen schedule and the notices.

Pure data and arithmetic; the device code (``devices.py``, ``speaker.py``, ``sources.py``) does
the reopening and reports each step as a :class:`DeviceNotice`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from voiceagent.errors import DeviceError


@dataclass(frozen=True)
class ReopenPolicy:
    """Exponential backoff for reopening a lost device.

    Attributes:
        first_delay_s: Wait before the first attempt.
        max_delay_s: The wait doubles after each failed attempt up to this.
        give_up_after_s: No attempt starts once the waits would add up to more than this.
    """

    first_delay_s: float = 0.25
    max_delay_s: float = 4.0
    give_up_after_s: float = 30.0

    def __post_init__(self) -> None:
        if self.first_delay_s <= 0 or self.max_delay_s < self.first_delay_s:
            raise ValueError("need 0 < first_delay_s <= max_delay_s")

    def delays_s(self) -> Iterator[float]:
        """The wait before each attempt, in order; finite."""
        delay_s = self.first_delay_s
        total_s = 0.0
        while total_s + delay_s <= self.give_up_after_s:
            yield delay_s
            total_s += delay_s
            delay_s = min(delay_s * 2, self.max_delay_s)


class NoticeKind(StrEnum):
    LOST = "lost"  # the device stopped; reopening starts
    RECOVERED = "recovered"  # reopened; audio flows again
    GAVE_UP = "gave_up"  # every attempt failed; the session must end


@dataclass(frozen=True)
class DeviceNotice:
    """One step of a device's loss and recovery, for the event stream and the session log.

    Attributes:
        kind: What happened.
        direction: ``"input"`` or ``"output"``.
        device: The device's name.
        message: One line for a person.
        attempts: Reopen attempts made so far.
        gap_s: Seconds without the device (``RECOVERED`` and ``GAVE_UP``).
        error: The error that ends the session (``GAVE_UP`` only).
    """

    kind: NoticeKind
    direction: str
    device: str
    message: str
    attempts: int = 0
    gap_s: float = 0.0
    error: DeviceError | None = None


NoticeHandler = Callable[[DeviceNotice], None]


def send_notice(
    handler: NoticeHandler | None,
    direction: str,
    kind: NoticeKind,
    device: str,
    message: str,
    attempts: int = 0,
    gap_s: float = 0.0,
    error: DeviceError | None = None,
) -> None:
    """Hand a notice about the ``direction`` ("input"/"output") device to ``handler``, if any."""
    if handler is not None:
        handler(DeviceNotice(kind, direction, device, message, attempts, gap_s, error))


@dataclass(frozen=True)
class DeviceCounts:
    """Device trouble in one session, for the status display, ``session_end`` and the log.

    Attributes:
        input_overflows: Microphone frames lost (device overflows plus frames we dropped).
        output_underflows: Speaker buffers that ran dry while audio was queued.
        device_losses: Times a device stopped on its own.
        device_reopens: Times a lost device was reopened.
    """

    input_overflows: int = 0
    output_underflows: int = 0
    device_losses: int = 0
    device_reopens: int = 0


def lost_message(cause: BaseException, policy: ReopenPolicy) -> str:
    """The one line shown when a device stops (the cause names the device)."""
    return f"{_reason(cause)}; trying to reopen it for up to {policy.give_up_after_s:g} s."


def gave_up_error(direction: str, device: str, gap_s: float, attempts: int) -> DeviceError:
    """The error that ends a session whose device did not come back."""
    flag = "--input" if direction == "input" else "--output"
    return DeviceError(
        f"the {direction} device {device} is gone and could not be reopened "
        f"({attempts} attempts in {gap_s:.0f} s).",
        fix=f"reconnect it or choose another with {flag} (see `voiceagent devices`), "
        "then start again.",
    )


def _reason(cause: BaseException) -> str:
    text = cause.message if isinstance(cause, DeviceError) else str(cause)
    return text.strip().rstrip(".") or type(cause).__name__
