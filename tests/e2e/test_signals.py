"""SIGINT and SIGTERM in every state of a real session end it within a second, cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.models, pytest.mark.slow]

# The event after which the session is in each state.
STATES = {
    "listening": "listening",
    "hearing speech": "speech_start",
    "generating": "thinking",
    "speaking": "reply",
}
RUNS_PER_STATE = 10


def run_and_signal(env: dict[str, str], question: Path, output: Path, trigger: str, sig: int):
    talk = subprocess.Popen(
        [sys.executable, "-m", "voiceagent", "talk", "--input", str(question),
         "--output", str(output), "--jsonl"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert talk.stdout is not None
    seen = []
    for line in talk.stdout:
        event = json.loads(line)
        seen.append(event["event"])
        if event["event"] == trigger:
            break
    else:
        _, err = talk.communicate(timeout=30)
        pytest.fail(f"the session ended before {trigger!r}: {seen}; exit {talk.returncode}: {err}")
    sent = time.monotonic()
    talk.send_signal(sig)
    rest, err = talk.communicate(timeout=30)
    elapsed = time.monotonic() - sent
    return talk.returncode, elapsed, err, seen + [json.loads(x)["event"] for x in rest.splitlines()]


@pytest.mark.parametrize("state", list(STATES))
def test_signals_end_the_session_within_a_second(
    state, models_env, isolated_home, shared_audio, tmp_path
):
    env = {**os.environ, "VOICEAGENT_MODELS": str(models_env), "VOICEAGENT_HOME": str(isolated_home)}
    question = shared_audio / "speech" / "cmu_arctic_us_axb_a0005.wav"
    slowest = 0.0
    for run in range(RUNS_PER_STATE):
        sig = signal.SIGINT if run % 2 == 0 else signal.SIGTERM
        code, elapsed, err, events = run_and_signal(
            env, question, tmp_path / f"reply-{run}.wav", STATES[state], sig
        )
        assert code == 128 + sig, f"run {run} ({sig.name}): exit {code}: {err}"
        assert "Traceback" not in err
        assert [line for line in err.splitlines() if line.startswith("voiceagent:")] == [
            f"voiceagent: stopped ({sig.name})."
        ], err
        assert events[-1] == "session_end", events
        assert elapsed < 1.0, f"run {run} ({sig.name}) took {elapsed:.2f} s to stop"
        slowest = max(slowest, elapsed)
    # Every session log left behind is whole: one JSON object per line, readable only by us.
    for log in (isolated_home / "sessions").glob("*.jsonl"):
        assert oct(log.stat().st_mode & 0o777) == "0o600"
        for line in log.read_text().splitlines():
            json.loads(line)
    print(f"{state}: {RUNS_PER_STATE} runs, slowest stop {slowest * 1000:.0f} ms")
