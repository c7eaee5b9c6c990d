"""`talk` is fully local: it opens no network socket, only the local sound server's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.models


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


@pytest.fixture
def env(models_env, isolated_home):
    if not shutil.which("strace"):
        pytest.skip("strace is not installed (sudo apt-get install strace)")
    return {**os.environ, "VOICEAGENT_MODELS": str(models_env), "VOICEAGENT_HOME": str(isolated_home)}


def test_talk_on_files_opens_no_network_socket(env, shared_audio, tmp_path):
    question = shared_audio / "speech" / "cmu_arctic_us_axb_a0005.wav"
    calls = traced_sockets(
        [sys.executable, "-m", "voiceagent", "talk", "--input", str(question),
         "--output", str(tmp_path / "reply.wav"), "--jsonl"],
        env, tmp_path,
    )  # fmt: skip
    network = network_calls(calls)
    assert network == [], "\n".join(network[:3])
