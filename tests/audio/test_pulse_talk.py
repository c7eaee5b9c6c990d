"""`voiceagent talk` through a real sound server: a recording goes into the virtual microphone
and the spoken reply must arrive on the virtual speaker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

pytestmark = [pytest.mark.audio, pytest.mark.models]


def test_talk_from_virtual_microphone_to_virtual_speaker(
    pulse_server, models_env, isolated_home, shared_audio, tmp_path
):
    env = {
        **pulse_server.env,
        "VOICEAGENT_MODELS": str(models_env),
        "VOICEAGENT_HOME": str(isolated_home),
    }
    recording = tmp_path / "speaker.wav"
    recorder = subprocess.Popen(
        ["parecord", "--device=speaker.monitor", "--file-format=wav", str(recording)],
        env=env,
    )
    talk = subprocess.Popen(
        [sys.executable, "-m", "voiceagent", "talk", "--jsonl", "--max-turns", "1", "--no-log"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert talk.stdout is not None
        first = json.loads(talk.stdout.readline())
        assert first["event"] == "listening", first
        time.sleep(1.0)  # let the capture stream settle before the "user" speaks
        question = shared_audio / "speech" / "cmu_arctic_us_axb_a0005.wav"
        pulse_server.run("paplay", "--device=mic", str(question))
        out, err = talk.communicate(timeout=120)
    finally:
        talk.kill()
        time.sleep(0.5)
        recorder.terminate()
        recorder.wait(timeout=10)
    assert talk.returncode == 0, f"exit {talk.returncode}: {err[-2000:]}"
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    turn = next(e for e in events if e["event"] == "turn")
    assert "forget" in turn["user_text"].lower()
    assert turn["latency_ms"]["voice_to_voice"] is not None
    print(f"voice_to_voice through PulseAudio: {turn['latency_ms']['voice_to_voice']:.0f} ms")
    audio, rate = soundfile.read(recording, dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    window = rate // 10
    loud = [
        float(np.sqrt(np.mean(audio[i : i + window] ** 2)))
        for i in range(0, len(audio) - window, window)
    ]
    assert max(loud) > 0.01, "no reply reached the virtual speaker"
    assert sum(level > 0.01 for level in loud) >= 5  # at least half a second of voice
