"""Enter or Space in the terminal stops the reply.

In half duplex (laptop speakers) the microphone is not heard while we speak, so a voice cannot
interrupt us; a key can. The terminal is put in cbreak mode (keys arrive one by one, not echoed;
Ctrl-C still interrupts) for as long as the reader runs, and restored after. A ``talk`` run in
the background of a shell (``voiceagent talk ... &``) leaves the terminal alone: changing or
reading it from there would stop the process (SIGTTOU, SIGTTIN).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from collections.abc import Callable, Iterator
from typing import TextIO

STOP_KEYS = frozenset(b"\n\r ")


def _in_background(fd: int) -> bool:
    """Whether ``fd`` is our controlling terminal and another process group has it."""
    try:
        return os.tcgetpgrp(fd) != os.getpgrp()
    except OSError:  # not our controlling terminal: job control does not apply
        return False


class StopKeys:
    """Reads keys from a terminal on a thread and calls ``on_stop`` (from that thread) for
    each Enter or Space. A stream that is not a terminal (a pipe, a file, a closed stdin)
    makes it a no-op: ``active`` stays False."""

    def __init__(self, stream: TextIO, on_stop: Callable[[], None]) -> None:
        self._stream = stream
        self._on_stop = on_stop
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._saved: list | None = None  # the terminal's attributes before cbreak mode

    @property
    def active(self) -> bool:
        """Keys are being read."""
        return self._thread is not None

    def start(self) -> StopKeys:
        try:
            import termios
            import tty
        except ImportError:  # not a POSIX terminal
            return self
        try:
            if not self._stream.isatty():
                return self
            fd = self._stream.fileno()
            if _in_background(fd):
                return self
            saved = termios.tcgetattr(fd)
            tty.setcbreak(fd, termios.TCSANOW)
        except (OSError, ValueError, termios.error):
            return self
        self._fd, self._saved = fd, saved
        self._thread = threading.Thread(target=self._read, name="voiceagent-keys", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._fd is not None
        while not self._done.is_set():
            if _in_background(self._fd):  # sent to the background (Ctrl-Z, bg) meanwhile
                self._done.wait(0.1)
                continue
            try:
                ready, _, _ = select.select([self._fd], [], [], 0.1)
                if not ready:
                    continue
                data = os.read(self._fd, 64)
            except OSError:  # the terminal went away
                return
            if not data:
                return
            if any(byte in STOP_KEYS for byte in data):
                self._on_stop()

    def stop(self) -> None:
        """Stop reading and give the terminal back as it was."""
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        if self._fd is not None and self._saved is not None:
            import termios

            with contextlib.suppress(OSError, termios.error), _no_stop_on_terminal_output():
                termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._fd = self._saved = None

    def __enter__(self) -> StopKeys:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def _no_stop_on_terminal_output() -> Iterator[None]:
    """Ignore SIGTTOU meanwhile (on the main thread only: signals are set there), so giving the
    terminal back from the background does not stop the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTTOU, previous)
