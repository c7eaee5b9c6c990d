"""A sound device disappearing mid-session: a message, a reopen with backoff, counters, and a
clean one-line exit when it does not come back. Faults are injected through a fake
``sounddevice`` module (voiceagent.testing.fake_sounddevice); time is a FakeClock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import stat
import sys
import threading

import numpy as np
import pytest

from voiceagent.audio.clock import FakeClock
from voiceagent.audio.formats import FRAME_SAMPLES, AudioFrame
from voiceagent.audio.recovery import (
    DeviceCounts,
    DeviceNotice,
    NoticeKind,
    ReopenPolicy,
)
from voiceagent.audio.sources import MicrophoneSource
from voiceagent.audio.speaker import SpeakerSink
from voiceagent.errors import DeviceError
from voiceagent.events import (
    CollectedEvents,
    DeviceLost,
    DeviceRecovered,
    ErrorEvent,
    SessionEnd,
)
from voiceagent.session_log import SessionLog
from voiceagent.talk import TalkEvents, device_counts
from voiceagent.testing.fake_sounddevice import (
    Audio,
    CallbackStatus,
    FakeSoundDevice,
    Vanish,
)

pytestmark = pytest.mark.unit

BLOCK_FRAMES = 320  # the fake mic runs at 16 kHz: 20 ms blocks
FRAMES_PER_16_BLOCKS = 16 * BLOCK_FRAMES // FRAME_SAMPLES  # 10
TINY = ReopenPolicy(first_delay_s=0.001, max_delay_s=0.002, give_up_after_s=0.01)


def install(monkeypatch: pytest.MonkeyPatch, fake: FakeSoundDevice) -> FakeSoundDevice:
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    return fake


def capture(source: MicrophoneSource, frame_count: int) -> list[AudioFrame]:
    async def run() -> list[AudioFrame]:
        frames: list[AudioFrame] = []
        async with contextlib.aclosing(source.frames()) as stream:
            async for frame in stream:
                frames.append(frame)
                if len(frames) >= frame_count:
                    break
        return frames

    return asyncio.run(run())


def test_backoff_doubles_to_the_cap_within_the_time_limit() -> None:
    delays = list(ReopenPolicy().delays_s())
    assert delays[:5] == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert set(delays[4:]) == {4.0}
    assert sum(delays) <= 30.0 < sum(delays) + 4.0


# --- the microphone -----------------------------------------------------------------------


def test_microphone_reopens_after_the_device_vanishes(monkeypatch: pytest.MonkeyPatch) -> None:
    # The device vanishes after 10 frames; the first reopen fails to open, the second to start.
    fake = install(monkeypatch, FakeSoundDevice(scripts=[
        [Audio(16, 0.1), Vanish(failing_opens=1, failing_starts=1)],
        [Audio(16, 0.2)],
    ]))  # fmt: skip
    clock = FakeClock()
    notices: list[DeviceNotice] = []
    source = MicrophoneSource(
        clock=clock, reopen=ReopenPolicy(), on_notice=notices.append, stall_timeout_s=None
    )
    gap_frames = 55  # 0.25 + 0.5 + 1.0 s of backoff = 1.75 s of silence, in whole frames
    frames = capture(source, 2 * FRAMES_PER_16_BLOCKS + gap_frames)

    assert [n.kind for n in notices] == [NoticeKind.LOST, NoticeKind.RECOVERED]
    lost, recovered = notices
    assert "fake mic" in lost.message and "reopen" in lost.message and "\n" not in lost.message
    assert recovered.attempts == 3 and recovered.gap_s == pytest.approx(1.75)
    assert clock.sleep_requests_s == pytest.approx([0.25, 0.75, 1.75])
    assert fake.rescans == 3  # before every attempt
    # The audio clock runs on without a jump: old audio, the gap as silence, new audio.
    assert [f.sample_index for f in frames] == [n * FRAME_SAMPLES for n in range(len(frames))]
    levels = [round(float(f.samples.max()), 3) for f in frames]
    assert levels == [0.1] * 10 + [0.0] * gap_frames + [0.2] * 10
    assert (source.device_loss_count, source.device_reopen_count) == (1, 1)
    assert fake.active_streams("input") == []  # everything closed at the end
    assert source.level_dbfs == pytest.approx(20 * np.log10(0.2), abs=0.01)


def test_microphone_gives_up_with_one_line_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeSoundDevice(scripts=[[Audio(16), Vanish(failing_opens=10**6)]]))
    clock = FakeClock()
    notices: list[DeviceNotice] = []
    policy = ReopenPolicy()
    source = MicrophoneSource(
        clock=clock, reopen=policy, on_notice=notices.append, stall_timeout_s=None
    )
    with pytest.raises(DeviceError) as caught:
        capture(source, 1000)
    message = str(caught.value)
    assert "fake mic" in message and "could not be reopened" in message and "Fix:" in message
    assert "\n" not in message
    assert [n.kind for n in notices] == [NoticeKind.LOST, NoticeKind.GAVE_UP]
    assert notices[-1].error is caught.value
    delays = list(policy.delays_s())
    assert notices[-1].attempts == len(delays)
    waits = np.diff([0.0, *clock.sleep_requests_s])
    assert list(waits) == pytest.approx(delays)
    assert (source.device_loss_count, source.device_reopen_count) == (1, 0)


def test_microphone_that_stops_calling_back_counts_as_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first stream delivers 10 frames, then nothing at all, without saying so.
    install(monkeypatch, FakeSoundDevice(scripts=[[Audio(16)], [Audio(16)]]))
    notices: list[DeviceNotice] = []
    source = MicrophoneSource(
        clock=FakeClock(), reopen=ReopenPolicy(), on_notice=notices.append, stall_timeout_s=5.0
    )
    frames = capture(source, 2 * FRAMES_PER_16_BLOCKS + 8)  # 0.25 s gap = 8 frames
    assert [n.kind for n in notices] == [NoticeKind.LOST, NoticeKind.RECOVERED]
    assert "no audio for 5 s" in notices[0].message
    assert [f.sample_index for f in frames] == [n * FRAME_SAMPLES for n in range(len(frames))]


def test_microphone_without_a_policy_fails_at_the_first_loss(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install(monkeypatch, FakeSoundDevice(scripts=[[Audio(16), Vanish()]]))
    source = MicrophoneSource(clock=FakeClock(), stall_timeout_s=None)
    with pytest.raises(DeviceError, match="fake mic stopped unexpectedly"):
        capture(source, 1000)


def test_microphone_counts_device_overflows_across_reopens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install(monkeypatch, FakeSoundDevice(scripts=[
        [Audio(16), Audio(2, is_xrun=True), Vanish()],
        [Audio(1, is_xrun=True), Audio(16)],
    ]))  # fmt: skip
    source = MicrophoneSource(clock=FakeClock(), reopen=TINY, stall_timeout_s=None)
    capture(source, 2 * FRAMES_PER_16_BLOCKS)
    assert source.input_overflow_count == 3
    assert source.overflow_count == 3  # no frame was dropped by our own queue
    assert device_counts(source, None) == DeviceCounts(3, 0, 1, 1)


# --- the speaker --------------------------------------------------------------------------


class Notices:
    """Collects notices from the speaker's reopen thread; ``settled`` once it is done."""

    def __init__(self) -> None:
        self.items: list[DeviceNotice] = []
        self.settled = threading.Event()

    def __call__(self, notice: DeviceNotice) -> None:
        self.items.append(notice)
        if notice.kind is not NoticeKind.LOST:
            self.settled.set()

    @property
    def kinds(self) -> list[NoticeKind]:
        return [n.kind for n in self.items]


def test_speaker_reopens_after_the_device_vanishes(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, FakeSoundDevice())
    notices = Notices()
    sink = SpeakerSink.open(None, clock=FakeClock(), reopen=TINY, on_notice=notices)
    try:
        sink.write(np.full(1000, 0.5, np.float32), 16000)
        first = fake.streams[0]
        fake.failing_opens = 2  # the first attempt fails (mono, then stereo)
        first.vanish()
        assert notices.settled.wait(10)
        assert notices.kinds == [NoticeKind.LOST, NoticeKind.RECOVERED]
        assert "fake speaker" in notices.items[0].message
        assert notices.items[1].attempts == 2
        assert first.is_closed
        assert sink.queued_samples == 0  # the lost reply's audio is dropped, not played late
        (second,) = fake.active_streams("output")
        sink.write(np.full(320, 0.5, np.float32), 16000)
        second.run_callback(status=CallbackStatus(output_underflow=True))
        assert second.played[0] == pytest.approx(0.5)
        assert (sink.device_loss_count, sink.device_reopen_count, sink.underflow_count) == (
            1, 1, 1,
        )  # fmt: skip
        assert fake.rescans == 2
    finally:
        sink.close()
    assert fake.active_streams("output") == []


def test_speaker_gives_up_and_then_refuses_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, FakeSoundDevice())
    notices = Notices()
    sink = SpeakerSink.open(None, clock=FakeClock(), reopen=TINY, on_notice=notices)
    try:
        fake.failing_opens = 10**6
        fake.streams[0].vanish()
        assert notices.settled.wait(10)
        assert notices.kinds == [NoticeKind.LOST, NoticeKind.GAVE_UP]
        gave_up = notices.items[-1]
        assert gave_up.attempts == len(list(TINY.delays_s()))
        assert gave_up.error is not None and "Fix:" in str(gave_up.error)
        with pytest.raises(DeviceError, match="could not be reopened"):
            sink.write(np.zeros(100, np.float32), 16000)
        asyncio.run(sink.drain())  # nothing queued: returns
    finally:
        sink.close()


def test_speaker_without_a_policy_fails_at_the_first_loss(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = install(monkeypatch, FakeSoundDevice())
    with SpeakerSink.open(None, clock=FakeClock()) as sink:
        sink.write(np.zeros(1000, np.float32), 16000)
        fake.streams[0].vanish()
        with pytest.raises(DeviceError, match="stopped unexpectedly"):
            sink.write(np.zeros(100, np.float32), 16000)
        assert sink.device_loss_count == 1


def test_a_speaker_that_stops_taking_audio_counts_as_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PortAudio may go quiet without reporting it: waiting for the reply to play must not hang.
    fake = install(monkeypatch, FakeSoundDevice())
    with SpeakerSink.open(None, clock=FakeClock()) as sink:
        sink.stall_timeout_s = 0.05
        sink.write(np.zeros(160, np.float32), 16000)  # 10 ms that the device never takes
        assert fake.streams
        with pytest.raises(DeviceError, match="stopped playing"):
            asyncio.run(asyncio.wait_for(sink.drain(), 10.0))  # without the watchdog: hangs
        assert sink.device_loss_count == 1


def test_closing_the_speaker_stops_a_reopen_in_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, FakeSoundDevice())
    notices = Notices()
    slow = ReopenPolicy(first_delay_s=60.0, max_delay_s=60.0, give_up_after_s=600.0)
    sink = SpeakerSink.open(None, clock=FakeClock(), reopen=slow, on_notice=notices)
    fake.streams[0].vanish()
    sink.close()  # returns at once: the reopen thread is waiting out its first delay
    assert notices.kinds == [NoticeKind.LOST]
    assert sink._recovery is not None and not sink._recovery.is_alive()


def test_a_rescan_pauses_and_resumes_the_other_open_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PortAudio closes every stream when it re-initialises: the speaker must step aside while
    # the microphone's recovery rescans, and come back with its queued audio.
    fake = install(monkeypatch, FakeSoundDevice(scripts=[
        [],  # the speaker
        [Audio(16), Vanish()],  # the microphone, lost
        [],  # the speaker again, after the rescan
        [Audio(16)],  # the microphone, reopened
    ]))  # fmt: skip
    sink = SpeakerSink.open(None, clock=FakeClock(), reopen=TINY)
    try:
        sink.write(np.full(1000, 0.5, np.float32), 16000)
        source = MicrophoneSource(clock=FakeClock(), reopen=TINY, stall_timeout_s=None)
        capture(source, 2 * FRAMES_PER_16_BLOCKS + 1)
        assert fake.rescans == 1
        assert fake.live_at_rescan == []
        assert len(fake.active_streams("output")) == 1 and fake.streams[2].kind == "output"
        assert sink.queued_samples == 1000
        assert sink.device_loss_count == 0
    finally:
        sink.close()


# --- the talk command's side --------------------------------------------------------------


def test_talk_events_turn_notices_into_events_and_log_records(tmp_path) -> None:  # noqa: ANN001
    clock = FakeClock(start_s=100.0)
    collected = CollectedEvents()
    events = TalkEvents(collected, clock)
    log = SessionLog.create(tmp_path / "logs")
    failures: list[DeviceError] = []
    events.configure("default microphone", None, lambda: DeviceCounts(3, 2, 2, 1), log)
    clock.advance(1.5)
    events.notice(DeviceNotice(NoticeKind.LOST, "input", "usb mic", "usb mic stopped; reopening"))
    events.notice(DeviceNotice(NoticeKind.RECOVERED, "input", "usb mic", "back", 2, 0.75))
    error = DeviceError("the output device hdmi is gone.", fix="reconnect it.")
    events.notice(DeviceNotice(NoticeKind.GAVE_UP, "output", "hdmi", str(error), 10, 28.0, error))
    events.emit(SessionEnd(9.0, turns=1, input_overflows=3))
    log.write_summary(1, events.counts())
    log.close()

    lost, recovered, gave_up, end = collected.events
    assert isinstance(lost, DeviceLost) and lost.t_s == pytest.approx(1.5)
    assert lost.to_json() == {
        "event": "device_lost", "t_s": 1.5, "direction": "input", "device": "usb mic",
        "message": "usb mic stopped; reopening",
    }  # fmt: skip
    assert isinstance(recovered, DeviceRecovered) and recovered.attempts == 2
    assert isinstance(gave_up, ErrorEvent) and "Fix: reconnect it." in gave_up.message
    assert isinstance(end, SessionEnd)
    assert (end.input_overflows, end.output_underflows, end.device_losses, end.device_reopens) == (
        3, 2, 2, 1,
    )  # fmt: skip

    # Bound to a session later, the speaker's giving up still ends it.
    async def bind_and_wait() -> None:
        done = asyncio.get_running_loop().create_future()

        def failed(error: DeviceError) -> None:
            failures.append(error)
            done.set_result(None)

        events.bind(asyncio.get_running_loop(), failed)
        await done

    asyncio.run(bind_and_wait())
    assert failures == [error]

    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    records = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert [r["record"] for r in records] == ["device", "device", "device", "session_end"]
    assert [r["event"] for r in records[:3]] == ["lost", "recovered", "gave_up"]
    assert records[-1] == {
        "time": records[-1]["time"], "record": "session_end", "turns": 1,
        "input_overflows": 3, "output_underflows": 2, "device_losses": 2, "device_reopens": 1,
    }  # fmt: skip


def test_talk_events_deliver_notices_from_other_threads_on_the_loop() -> None:
    threads: list[int] = []

    class Recording(CollectedEvents):
        def emit(self, event) -> None:  # noqa: ANN001
            threads.append(threading.get_ident())
            super().emit(event)

    collected = Recording()
    events = TalkEvents(collected, FakeClock())

    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        events.bind(loop, lambda error: None)
        notice = DeviceNotice(NoticeKind.LOST, "output", "speaker", "gone")
        await asyncio.to_thread(events.notice, notice)
        await asyncio.sleep(0)
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    assert threads == [loop_thread]
    assert isinstance(collected.events[0], DeviceLost)
