"""The live status display of `voiceagent talk`: the pure view/render functions, and the live
display run over a scripted sequence of events on a recording console."""

from __future__ import annotations

import io
import sys
from functools import reduce

import pytest
from rich.console import Console
from typer.testing import CliRunner

from voiceagent import talk
from voiceagent.audio.recovery import DeviceCounts
from voiceagent.display import (
    LiveStatus,
    StatusProbes,
    StatusView,
    apply_event,
    level_bar,
    render_status,
)
from voiceagent.events import (
    DeviceLost,
    DeviceRecovered,
    Event,
    Listening,
    PartialTranscript,
    Reply,
    SessionEnd,
    SpeechEnd,
    SpeechStart,
    Thinking,
    TranscriptEvent,
    Turn,
)

pytestmark = pytest.mark.unit

LATENCY = {
    "eou": 212.0, "stt": 181.4, "transcript_ready": 390.0, "llm_first_token": 350.2,
    "tts_first_audio": 120.0, "voice_to_voice": 905.6,
}  # fmt: skip

CONVERSATION: list[Event] = [
    Listening(0.0, source="default microphone"),
    SpeechStart(1.0, audio_s=0.9),
    PartialTranscript(1.5, text="will we"),
    SpeechEnd(2.6, audio_s=2.4, eou_ms=212.0),
    TranscriptEvent(2.8, text="will we ever forget it", stt_ms=181.4),
    Thinking(2.8),
    Reply(3.5, text="I don't think we will."),
    Turn(4.0, index=1, user_text="will we ever forget it", reply_text="I don't think we will.",
         latency_ms=LATENCY),
]  # fmt: skip


def as_text(view: StatusView, width: int = 110) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(render_status(view))
    return console.export_text()


def replay(events: list[Event], view: StatusView | None = None) -> StatusView:
    return reduce(apply_event, events, view or StatusView())


def test_events_move_the_state_through_a_turn() -> None:
    states = [replay(CONVERSATION[: n + 1]).state for n in range(len(CONVERSATION))]
    assert states == [
        "listening", "listening", "listening", "listening", "listening", "thinking",
        "speaking", "listening",
    ]  # fmt: skip
    assert replay(CONVERSATION[:2]).is_hearing and not replay(CONVERSATION[:4]).is_hearing
    partial = replay(CONVERSATION[:3])
    assert (partial.user_text, partial.is_partial) == ("will we", True)


def test_render_shows_state_level_texts_latency_and_counters() -> None:
    view = replace_view(
        replay(CONVERSATION),
        level_dbfs=-30.0,
        counts=DeviceCounts(input_overflows=2, output_underflows=1, device_losses=1,
                            device_reopens=1),
    )  # fmt: skip
    text = as_text(view)
    assert "listening  default microphone" in text
    assert level_bar(-30.0) in text and "-30.0 dBFS" in text
    assert "you         will we ever forget it" in text
    assert "assistant   I don't think we will." in text
    assert "eou 212, stt 181, llm 1st token 350, tts 1st audio 120, voice-to-voice 906" in text
    assert "transcript_ready" not in text  # not one of the contract's latency keys
    assert "input overflows 2, output underflows 1, device losses 1, reopens 1" in text
    assert "1 turn(s), 0 ignored" in text


def test_render_while_hearing_a_partial_and_after_a_device_loss() -> None:
    view = replay([
        *CONVERSATION[:3],
        DeviceLost(1.7, "input", "usb mic", "The input device usb mic stopped unexpectedly; "
                   "trying to reopen it for up to 30 s."),
    ])  # fmt: skip
    text = as_text(view)
    assert "listening (hearing you)" in text
    assert "will we ..." in text
    assert "device      The input device usb mic stopped unexpectedly" in text
    back = apply_event(view, DeviceRecovered(3.0, "input", "usb mic", 2, 1.25))
    assert "the input device usb mic is back after 1.2 s." in as_text(back)
    assert "is back after" not in as_text(apply_event(back, CONVERSATION[-1]))  # a turn clears it


def test_the_hint_names_the_stop_key_where_keys_are_read() -> None:
    view = replay(CONVERSATION[:7])
    assert "Ctrl-C to stop" in as_text(view) and "Enter" not in as_text(view)
    keyed = replace_view(view, stop_key=True)
    assert "Enter or Space: stop the reply · Ctrl-C: quit" in as_text(keyed)
    live = LiveStatus(console=Console(file=io.StringIO()))
    live.emit(CONVERSATION[0])
    live.show_stop_key()
    assert live.view.stop_key and live.view.state == "listening"


def test_level_bar_spans_minus_60_to_0_dbfs() -> None:
    assert level_bar(None, 10) == " " * 10
    assert level_bar(-100.0, 10) == "░" * 10
    assert level_bar(-30.0, 10) == "█" * 5 + "░" * 5
    assert level_bar(0.0, 10) == level_bar(6.0, 10) == "█" * 10


def test_render_is_pure() -> None:
    view = replay(CONVERSATION)
    assert as_text(view) == as_text(view)


def test_live_display_over_a_scripted_session() -> None:
    output = io.StringIO()
    console = Console(record=True, force_terminal=True, width=110, file=output)
    display = LiveStatus(console=console)
    state = {"value": "listening"}
    display.watch(
        StatusProbes(
            state=lambda: state["value"],
            level_dbfs=lambda: -42.0,
            counts=lambda: DeviceCounts(0, 0, 1, 1),
        )
    )
    with display:
        for event in CONVERSATION:
            if isinstance(event, Reply):
                state["value"] = "speaking"  # the session's own state wins over the events
            if isinstance(event, Turn):
                state["value"] = "listening"
            display.emit(event)
        assert display.view.state == "listening" and display.view.level_dbfs == -42.0
        display.emit(SessionEnd(5.0, turns=1, device_losses=1, device_reopens=1))
    text = console.export_text()
    assert "I don't think we will." in text
    assert "voice-to-voice 906" in text
    assert "-42.0 dBFS" in text
    assert text.rstrip().splitlines()[-1].startswith("session over: 1 turn(s)")
    raw = output.getvalue()
    assert "\x1b[?25l" in raw and raw.rstrip().endswith("reopens 1")  # cursor hidden, then...
    assert raw.count("\x1b[?25h") == 1  # ...shown again when the display stopped


def test_live_display_stops_cleanly_on_an_error() -> None:
    output = io.StringIO()
    console = Console(force_terminal=True, width=80, file=output)
    display = LiveStatus(console=console)
    with pytest.raises(RuntimeError), display:
        display.emit(CONVERSATION[0])
        raise RuntimeError("boom")
    assert "\x1b[?25h" in output.getvalue()  # the cursor is back
    display.stop()  # a second stop is harmless


def test_talk_on_a_terminal_uses_the_live_display(monkeypatch: pytest.MonkeyPatch) -> None:
    import voiceagent.pipeline as pipeline
    from voiceagent.audio.recovery import ReopenPolicy
    from voiceagent.session import Models
    from voiceagent.testing.fake_sounddevice import Audio, FakeSoundDevice, Vanish
    from voiceagent.testing.fakes import FakeStt, FakeVad

    monkeypatch.setattr(pipeline, "resolve_all", lambda settings, reply: {})
    monkeypatch.setattr(
        pipeline, "load_models", lambda settings, reply, **_: Models(FakeVad(), FakeStt(["hi"]))
    )
    monkeypatch.setattr(talk, "REOPEN_POLICY", ReopenPolicy(0.001, 0.002, 0.01))
    monkeypatch.setattr(talk, "_is_terminal", lambda: True)
    monkeypatch.setitem(
        sys.modules, "sounddevice",
        FakeSoundDevice(scripts=[[Audio(16, 0.0), Vanish(failing_opens=10**6)]]),
    )  # fmt: skip
    result = CliRunner().invoke(app_for_test(), ["talk", "--no-reply", "--no-log"])
    assert result.exit_code == 1
    # Not a real terminal underneath, so rich draws the last frame once, then the closing line.
    assert "state" in result.stdout and "counters" in result.stdout
    assert "could not be reopened" in result.stdout  # the notice row
    assert "session over: 0 turn(s)" in result.stdout
    assert "voiceagent: the input device fake mic is gone" in result.stderr


def app_for_test():  # noqa: ANN201
    from voiceagent.cli import app

    return app


def replace_view(view: StatusView, **changes: object) -> StatusView:
    from dataclasses import replace

    return replace(view, **changes)  # type: ignore[arg-type]
