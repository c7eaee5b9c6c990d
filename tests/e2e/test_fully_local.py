"""`talk` is fully local: it opens no network socket, only the local sound server's."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from voiceagent.testing.tracing import network_calls, traced_calls

pytestmark = pytest.mark.models


@pytest.fixture
def env(models_env, isolated_home):
    if not shutil.which("strace"):
        pytest.skip("strace is not installed (sudo apt-get install strace)")
    return {**os.environ, "VOICEAGENT_MODELS": str(models_env), "VOICEAGENT_HOME": str(isolated_home)}


def test_talk_on_files_opens_no_network_socket(env, shared_audio, tmp_path):
    question = shared_audio / "speech" / "cmu_arctic_us_axb_a0005.wav"
    calls = traced_calls(
        [sys.executable, "-m", "voiceagent", "talk", "--input", str(question),
         "--output", str(tmp_path / "reply.wav"), "--jsonl"],
        env, tmp_path,
    )  # fmt: skip
    network = network_calls(calls)
    assert network == [], "\n".join(network[:3])
