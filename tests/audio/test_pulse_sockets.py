"""With a sound server, `talk` talks to it over its Unix socket and opens nothing else."""

from __future__ import annotations

import shutil
import sys

import pytest

from voiceagent.testing.tracing import network_calls, traced_calls

pytestmark = [pytest.mark.audio, pytest.mark.models]


def test_talk_with_the_sound_server_uses_only_its_unix_socket(
    pulse_server, models_env, isolated_home, shared_audio, tmp_path
):
    if not shutil.which("strace"):
        pytest.skip("strace is not installed (sudo apt-get install strace)")
    env = {**pulse_server.env, "VOICEAGENT_MODELS": str(models_env),
           "VOICEAGENT_HOME": str(isolated_home)}  # fmt: skip
    question = shared_audio / "speech" / "cmu_arctic_us_axb_a0005.wav"
    calls = traced_calls(
        [sys.executable, "-m", "voiceagent", "talk", "--input", str(question), "--jsonl"],
        env, tmp_path,
    )  # fmt: skip
    assert any("AF_UNIX" in c for c in calls), "the sound server was never reached"
    network = network_calls(calls)
    assert network == [], "\n".join(network[:3])
