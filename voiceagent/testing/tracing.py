"""Trace which sockets a command opens (strace), for the tests that prove `talk` is local."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

_NETWORK_CALL = re.compile(r"(socket|connect)\(.*AF_(INET6?|PACKET|NETLINK)")


def traced_calls(command: list[str], env: dict[str, str], scratch: Path) -> list[str]:
    """Run ``command`` under ``strace -f -k``; return the trace (socket and connect calls with
    their native stacks). Fails with the command's stderr if it exits non-zero."""
    trace = scratch / "trace.txt"
    done = subprocess.run(
        ["strace", "-f", "-qq", "-k", "-e", "trace=socket,connect", "-o", str(trace), *command],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"{command[0]} failed under strace: {done.stderr[-2000:]}")
    return trace.read_text().splitlines()


def network_calls(trace: list[str]) -> list[str]:
    """Each network socket or connect call, with the native stack that made it."""
    found = []
    for index, line in enumerate(trace):
        if _NETWORK_CALL.search(line):
            stack = [s.strip() for s in trace[index + 1 : index + 25] if s.startswith(" > ")]
            found.append(line + "\n    " + "\n    ".join(stack))
    return found
