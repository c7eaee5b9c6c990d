"""`voiceagent talk` when its devices go away: events, counters, and a clean one-line exit.

The models are the fakes and the sound devices a fake ``sounddevice`` module (fault injection);
the command itself, the session and the device code are the real ones.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from typer.testing import CliRunner

from voiceagent import talk
from voiceagent.audio.recovery import ReopenPolicy
from voiceagent.cli import app
from voiceagent.session import Models
from voiceagent.testing.fake_sounddevice import Audio, FakeSoundDevice, Vanish
from voiceagent.testing.fakes import FakeLlm, FakeStt, FakeTts, FakeVad

pytestmark = pytest.mark.unit

TINY = ReopenPolicy(first_delay_s=0.001, max_delay_s=0.002, give_up_after_s=0.01)


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> None:
    import voiceagent.pipeline as pipeline

    def load_models(settings: Any, reply: bool, partials: bool = False) -> Models:
        if not reply:
            return Models(vad=FakeVad(), stt=FakeStt(["hello"]))
        return Models(vad=FakeVad(), stt=FakeStt(["hello"]), llm=FakeLlm(), tts=FakeTts())

    monkeypatch.setattr(pipeline, "resolve_all", lambda settings, reply: {})
    monkeypatch.setattr(pipeline, "load_models", load_models)
    monkeypatch.setattr(talk, "REOPEN_POLICY", TINY)


def install(monkeypatch: pytest.MonkeyPatch, fake: FakeSoundDevice) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", fake)


def voiceagent_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("voiceagent:")]


@pytest.mark.usefixtures("fake_models")
def test_lost_microphone_recovers_then_a_lasting_loss_ends_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install(monkeypatch, FakeSoundDevice(scripts=[
        [Audio(16, 0.0), Vanish()],  # lost; the first reopen works
        [Audio(16, 0.0), Vanish(failing_opens=10**6)],  # lost for good
    ]))  # fmt: skip
    result = CliRunner().invoke(app, ["talk", "--no-reply", "--jsonl"])
    assert result.exit_code == 1, result.output
    (line,) = voiceagent_lines(result.stderr)
    assert "the input device fake mic is gone" in line and "Fix:" in line
    events = [json.loads(text) for text in result.stdout.splitlines()]
    names = [event["event"] for event in events]
    assert names == [
        "listening", "device_lost", "device_recovered", "device_lost", "error", "session_end",
    ]  # fmt: skip
    assert events[1]["direction"] == "input" and events[1]["device"] == "fake mic"
    assert "reopen" in events[1]["message"]
    assert events[4]["message"] in line
    end = events[-1]
    assert (end["device_losses"], end["device_reopens"]) == (2, 1)
    assert end["output_underflows"] == 0 and end["input_overflows"] == 0


@pytest.mark.usefixtures("fake_models")
def test_lost_speaker_that_stays_away_ends_the_session_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install(monkeypatch, FakeSoundDevice(scripts=[
        [Vanish(failing_opens=10**6)],  # the speaker opens first, and goes away
        [Audio(16, 0.0)],  # the microphone
    ]))  # fmt: skip
    result = CliRunner().invoke(app, ["talk", "--jsonl", "--no-log"])
    assert result.exit_code == 1, result.output
    (line,) = voiceagent_lines(result.stderr)
    assert "the output device fake speaker is gone" in line and "--output" in line
    names = [json.loads(text)["event"] for text in result.stdout.splitlines()]
    assert "device_lost" in names and "error" in names


@pytest.mark.usefixtures("fake_models")
def test_plain_display_shows_device_lines_and_the_counters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install(monkeypatch, FakeSoundDevice(scripts=[
        [Audio(16, 0.0), Vanish()], [Audio(16, 0.0, is_xrun=True), Vanish(failing_opens=10**6)],
    ]))  # fmt: skip
    result = CliRunner().invoke(app, ["talk", "--no-reply", "--no-log"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("  device: The input device fake mic stopped") for line in lines)
    assert any("is back after" in line for line in lines)
    assert lines[-1].startswith("session over: 0 turn(s), 0 ignored; input overflows 16, ")
    assert "device losses 2, reopens 1" in lines[-1]


@pytest.mark.usefixtures("fake_models")
def test_session_log_records_device_trouble(monkeypatch: pytest.MonkeyPatch, isolated_home) -> None:  # noqa: ANN001
    install(monkeypatch, FakeSoundDevice(scripts=[
        [Audio(16, 0.0), Vanish()], [Audio(16, 0.0), Vanish(failing_opens=10**6)],
    ]))  # fmt: skip
    result = CliRunner().invoke(app, ["talk", "--no-reply", "--jsonl"])
    assert result.exit_code == 1
    (log,) = isolated_home.rglob("session-*.jsonl")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r.get("event") for r in records if r["record"] == "device"] == [
        "lost", "recovered", "lost", "gave_up",
    ]  # fmt: skip
    assert records[-1]["record"] == "session_end"
    assert (records[-1]["device_losses"], records[-1]["device_reopens"]) == (2, 1)


def test_no_portaudio_and_no_devices_each_give_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from voiceagent.errors import DependencyError, DeviceError

    monkeypatch.setitem(sys.modules, "sounddevice", None)  # the import fails
    assert talk._has_input_device() is False  # talk falls back to the sample question
    with pytest.raises(DependencyError) as missing:
        talk.open_sink(None, 16000, talk.MonotonicClock())
    assert "\n" not in str(missing.value) and "Fix:" in str(missing.value)

    install(monkeypatch, FakeSoundDevice(devices=[]))
    assert talk._has_input_device() is False
    with pytest.raises(DeviceError) as none:
        talk.open_sink(None, 16000, talk.MonotonicClock())
    assert "No sound output device" in str(none.value) and "\n" not in str(none.value)
