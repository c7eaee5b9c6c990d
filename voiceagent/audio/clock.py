"""The injectable clock: the only way audio code reads wall time.

Real-time pacing (playing a file "as if" from a microphone) and playback timestamps read this
clock, so tests swap in :class:`FakeClock` and run instantly without real ``sleep``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Monotonic time in seconds plus a way to wait for a moment on it."""

    def now_s(self) -> float:
        """Current time in seconds (arbitrary origin, never goes back)."""
        ...

    async def sleep_until(self, t_s: float) -> None:
        """Return once ``now_s() >= t_s`` (at once if that moment has passed)."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` and ``asyncio.sleep``."""

    def now_s(self) -> float:
        """Current monotonic time in seconds."""
        return time.monotonic()

    async def sleep_until(self, t_s: float) -> None:
        """Sleep on the event loop until ``t_s``."""
        delay_s = t_s - time.monotonic()
        # Sleep(0) even when late, so a fast producer still lets other tasks run.
        await asyncio.sleep(max(0.0, delay_s))


class FakeClock:
    """A clock that only moves when told to, for tests.

    With ``auto_advance=True`` (the default) :meth:`sleep_until` jumps the clock to the wanted
    time and yields to the event loop once: paced code runs at full speed while the test checks
    when it *asked* to wake (``sleep_requests_s``). With ``auto_advance=False`` sleepers wait
    until the test moves time with :meth:`advance` or :meth:`set` (call those on the loop's
    thread), for scripted timelines with several tasks.

    ``now_s`` is thread-safe, since playback callbacks read it from the device thread.
    """

    def __init__(self, start_s: float = 0.0, auto_advance: bool = True) -> None:
        self._now_s = start_s
        self._lock = threading.Lock()
        self.auto_advance = auto_advance
        self.sleep_requests_s: list[float] = []
        """Every ``t_s`` passed to :meth:`sleep_until`, in order."""
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now_s(self) -> float:
        """The fake current time."""
        with self._lock:
            return self._now_s

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake sleepers that are due."""
        if seconds < 0:
            raise ValueError("a clock cannot go back")
        with self._lock:
            self._now_s += seconds
        self._wake_due()

    def set(self, t_s: float) -> None:
        """Move time forward to ``t_s`` (no-op if already past) and wake sleepers that are due."""
        with self._lock:
            self._now_s = max(self._now_s, t_s)
        self._wake_due()

    async def sleep_until(self, t_s: float) -> None:
        """Record the request, then jump to ``t_s`` or wait until the test moves time there."""
        with self._lock:
            self.sleep_requests_s.append(t_s)
            if self.auto_advance:
                self._now_s = max(self._now_s, t_s)
            is_due = self._now_s >= t_s
        if is_due:
            await asyncio.sleep(0)
            return
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((t_s, wake))
        try:
            await wake
        finally:
            self._sleepers = [entry for entry in self._sleepers if entry[1] is not wake]

    def _wake_due(self) -> None:
        now_s = self.now_s()
        for t_s, wake in list(self._sleepers):
            if t_s <= now_s and not wake.done():
                wake.set_result(None)
