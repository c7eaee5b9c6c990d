"""With a sound server, `talk` talks to it over its Unix socket and opens nothing else."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.audio, pytest.mark.models]


def traced_sockets(command: list[str], env: dict[str, str], tmp_path) -> list[str]:
    trace = tmp_path / "trace.txt"
    done = subprocess.run(
        ["strace", "-f", "-qq", "-k", "-e", "trace=socket,connect", "-o", str(trace), *command],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return trace.read_text().splitlines()


def network_calls(trace: list[str]) -> list[str]:
    """Each network socket or connect call, with the native stack strace saw (-k)."""
    found = []
    for index, line in enumerate(trace):
        if re.search(r"(socket|connect)\(.*AF_(INET6?|PACKET|NETLINK)", line):
            stack = [s.strip() for s in trace[index + 1 : index + 25] if s.startswith(" > ")]
            found.append(line + "\n    " + "\n    ".join(stack))
    return found


def test_talk_with_the_sound_server_uses_only_its_unix_socket(
    pulse_server, models_env, isolated_home, shared_audio, tmp_path
):
    if not shutil.which("strace"):
        pytest.skip("strace is not installed (sudo apt-get install strace)")
    env = {**pulse_server.env, "VOICEAGENT_MODELS": str(models_env),
           "VOICEAGENT_HOME": str(isolated_home)}  # fmt: skip
    question = shared_audio / "speech" / "cmu_arctic_us_axb_a0005.wav"
    calls = traced_sockets(
        [sys.executable, "-m", "voiceagent", "talk", "--input", str(question), "--jsonl"],
        env, tmp_path,
    )  # fmt: skip
    assert any("AF_UNIX" in c for c in calls), "the sound server was never reached"
    network = network_calls(calls)
    assert network == [], "\n".join(network[:3])
