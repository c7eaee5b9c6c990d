"""Trace what a command does to the system (strace): the sockets it opens, the processes it
starts, the files it writes. For the tests that prove `talk` is local and acts on nothing."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_NETWORK_CALL = re.compile(r"(socket|connect)\(.*AF_(INET6?|PACKET|NETLINK)")
_CALL = re.compile(r"^(?:\[pid\s+)?\d+\]?\s+(?P<name>\w+)\((?P<args>.*)")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_WRITE_FLAGS = re.compile(r"\bO_(WRONLY|RDWR|CREAT|TRUNC|APPEND)\b")

PROCESS_CALLS = ("execve", "execveat", "fork", "vfork", "clone", "clone3")
FILE_CHANGE_CALLS = (
    "open", "openat", "openat2", "creat", "mkdir", "mkdirat", "rename", "renameat", "renameat2",
    "link", "linkat", "symlink", "symlinkat", "unlink", "unlinkat", "rmdir", "truncate",
)  # fmt: skip
_PATH_CHANGES = set(FILE_CHANGE_CALLS) - {"open", "openat", "openat2"}


@dataclass(frozen=True)
class TracedRun:
    """A command's strace output (one line per call) and what it printed."""

    trace: list[str]
    stdout: str
    stderr: str


def traced_run(
    command: list[str],
    env: dict[str, str],
    scratch: Path,
    syscalls: Sequence[str] = ("socket", "connect"),
    *,
    with_stacks: bool = True,
) -> TracedRun:
    """Run ``command`` under ``strace -f``, tracing ``syscalls`` (with their native stacks,
    ``-k``, unless ``with_stacks`` is false). Fails with the command's stderr if it exits
    non-zero. A system call this machine lacks (``fork`` on arm64) is skipped."""
    trace = scratch / "trace.txt"
    wanted = ",".join(f"?{name}" for name in syscalls)
    stacks = ["-k"] if with_stacks else []
    done = subprocess.run(
        ["strace", "-f", "-qq", *stacks, "-e", f"trace={wanted}", "-o", str(trace), *command],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"{command[0]} failed under strace: {done.stderr[-2000:]}")
    return TracedRun(trace.read_text().splitlines(), done.stdout, done.stderr)


def traced_calls(command: list[str], env: dict[str, str], scratch: Path) -> list[str]:
    """The socket and connect calls of ``command``, with the native stack of each."""
    return traced_run(command, env, scratch).trace


def network_calls(trace: list[str]) -> list[str]:
    """Each network socket or connect call, with the native stack that made it."""
    found = []
    for index, line in enumerate(trace):
        if _NETWORK_CALL.search(line):
            stack = [s.strip() for s in trace[index + 1 : index + 25] if s.startswith(" > ")]
            found.append(line + "\n    " + "\n    ".join(stack))
    return found


def _calls(trace: list[str]) -> list[tuple[str, str, str]]:
    """(name, arguments, whole line) of each call; "resumed" halves carry no arguments."""
    found = []
    for line in trace:
        match = _CALL.match(line)
        if match:
            found.append((match["name"], match["args"], line))
    return found


def process_starts(trace: list[str]) -> list[str]:
    """Each call that runs a program or makes a process (a thread is a clone with
    CLONE_THREAD and is not one). The traced command's own start is the first execve."""
    found = []
    for name, args, line in _calls(trace):
        if name in ("clone", "clone3") and "CLONE_THREAD" in args:
            continue
        if name in PROCESS_CALLS:
            found.append(line)
    return found


def changed_paths(trace: list[str]) -> list[str]:
    """Every path the command opened for writing, created, renamed, linked or removed
    (attempts count, whether or not they succeeded)."""
    found: list[str] = []
    for name, args, _line in _calls(trace):
        if name in ("open", "openat", "openat2") and not _WRITE_FLAGS.search(args):
            continue
        if name in _PATH_CHANGES or name in ("open", "openat", "openat2"):
            found.extend(_QUOTED.findall(args))
    return found
