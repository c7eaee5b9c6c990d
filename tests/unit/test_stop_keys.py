"""Enter or Space on a terminal stops the reply; anything that is not a terminal does nothing."""

from __future__ import annotations

import io
import os
import pty
import select
import signal
import sys
import termios
import threading
import time

import pytest

from voiceagent.stop_keys import StopKeys

pytestmark = pytest.mark.unit


def wait_for(condition, timeout_s: float = 5.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_enter_and_space_stop_other_keys_do_not_and_the_terminal_is_restored():
    master, slave = pty.openpty()
    stream = os.fdopen(slave, "r", closefd=False)
    before = termios.tcgetattr(slave)
    presses: list[str] = []
    got = threading.Event()

    def on_stop() -> None:
        presses.append(threading.current_thread().name)
        got.set()

    try:
        with StopKeys(stream, on_stop) as keys:
            assert keys.active
            assert not termios.tcgetattr(slave)[3] & termios.ICANON  # keys arrive one by one
            assert not termios.tcgetattr(slave)[3] & termios.ECHO  # and are not shown
            assert termios.tcgetattr(slave)[3] & termios.ISIG  # Ctrl-C still interrupts
            os.write(master, b"abc")
            time.sleep(0.3)
            assert presses == []
            os.write(master, b"\n")
            assert wait_for(lambda: len(presses) == 1)
            os.write(master, b" ")
            assert wait_for(lambda: len(presses) == 2)
        assert not keys.active
        assert presses == ["voiceagent-keys"] * 2
        assert termios.tcgetattr(slave) == before
    finally:
        stream.close()
        os.close(slave)
        os.close(master)


def test_a_pipe_or_a_string_is_not_a_terminal():
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(read_end, "r") as pipe:
            for stream in (pipe, io.StringIO("\n")):
                keys = StopKeys(stream, lambda: pytest.fail("no key can come from here"))
                with keys:
                    assert not keys.active
    finally:
        os.close(write_end)


CHILD = """
import os, sys
if {background}:  # a process of the same session in a group of its own: the shell's `&`
    if os.fork():
        os.wait()
        sys.exit(0)
    os.setpgid(0, 0)
from voiceagent.stop_keys import StopKeys
keys = StopKeys(sys.stdin, lambda: None).start()
print("active" if keys.active else "inactive", flush=True)
keys.stop()
print("done", flush=True)
"""


@pytest.mark.parametrize(("background", "expected"), [(False, "active"), (True, "inactive")])
def test_a_talk_in_the_background_of_a_shell_leaves_the_terminal_alone(background, expected):
    # The terminal is the child's controlling terminal, as a shell's is. Changing it from a
    # background process group would stop the process (SIGTTOU): it would never print "done".
    pid, master = pty.fork()
    if pid == 0:  # the child
        os.execv(sys.executable, [sys.executable, "-c", CHILD.format(background=background)])
    output = b""
    deadline = time.monotonic() + 30
    try:
        while b"done" not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    output += os.read(master, 1024)
                except OSError:  # the child ended
                    break
    finally:
        if b"done" not in output:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(master)
    lines = output.decode().split()
    assert lines == [expected, "done"], output
