"""Device choice, PortAudio import errors, and the capture/playback callbacks without hardware."""

from __future__ import annotations

import asyncio
import importlib.abc
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from voiceagent.audio import devices
from voiceagent.audio.clock import FakeClock
from voiceagent.audio.devices import DeviceInfo, MicrophoneStream, SpeakerSink, find_device
from voiceagent.audio.formats import FRAME_SAMPLES, AudioFrame
from voiceagent.audio.sinks import AudioSink
from voiceagent.errors import DependencyError, DeviceError

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]

FAKE_DEVICES = [
    DeviceInfo(0, "HDA Intel PCH: ALC257 Analog (hw:0,0)", "ALSA", 2, 2, 44100),
    DeviceInfo(1, "HDA Intel PCH: HDMI 0 (hw:0,3)", "ALSA", 0, 8, 44100),
    DeviceInfo(2, "USB Headset: Audio (hw:1,0)", "ALSA", 1, 2, 48000),
    DeviceInfo(3, "pulse", "ALSA", 32, 32, 44100),
    DeviceInfo(4, "default", "ALSA", 32, 32, 44100, True, True),
    DeviceInfo(5, "pulse (echo cancelled)", "ALSA", 1, 1, 48000),
]


@pytest.fixture
def fake_device_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "list_devices", lambda: list(FAKE_DEVICES))


@pytest.mark.usefixtures("fake_device_list")
class TestFindDevice:
    def test_default_devices(self) -> None:
        assert find_device(None, "input").index == 4
        assert find_device(None, "output").index == 4

    def test_by_index_as_int_or_text(self) -> None:
        assert find_device(2, "input").name.startswith("USB Headset")
        assert find_device(" 3 ", "output").name == "pulse"

    def test_by_case_insensitive_substring(self) -> None:
        assert find_device("usb", "input").index == 2
        assert find_device("HDMI", "output").index == 1

    def test_exact_name_beats_substring(self) -> None:
        assert find_device("PULSE", "input").index == 3
        assert find_device("echo", "input").index == 5
        with pytest.raises(DeviceError, match="matches several"):
            find_device("puls", "input")

    def test_ambiguous_name_lists_matches(self) -> None:
        with pytest.raises(DeviceError) as caught:
            find_device("hda", "output")
        message = str(caught.value)
        assert "matches several" in message and "0: HDA" in message and "1: HDA" in message
        assert "--output 0" in message

    def test_unknown_name_lists_choices(self) -> None:
        with pytest.raises(DeviceError) as caught:
            find_device("bluetooth", "input")
        message = str(caught.value)
        assert "bluetooth" in message and "2: USB Headset" in message
        assert "HDMI" not in message  # output-only devices are not offered as inputs
        assert "\n" not in message

    def test_index_without_the_right_channels(self) -> None:
        with pytest.raises(DeviceError, match="no input channels"):
            find_device(1, "input")

    def test_unknown_index(self) -> None:
        with pytest.raises(DeviceError, match="no sound device 9"):
            find_device(9, "output")


def test_no_default_falls_back_to_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "list_devices", lambda: FAKE_DEVICES[:3])
    assert find_device(None, "input").index == 0


def test_no_devices_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "list_devices", lambda: [])
    with pytest.raises(DeviceError, match="No sound input device") as caught:
        find_device(None, "input")
    assert "--input FILE" in str(caught.value)


class _RaisingFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object, target: object = None) -> None:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return None


def test_missing_portaudio_is_a_dependency_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_RaisingFinder(), *sys.meta_path])
    with pytest.raises(DependencyError) as caught:
        devices.list_devices()
    assert "sudo apt-get install libportaudio2" in str(caught.value)


def test_missing_sounddevice_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(DependencyError, match="pip install sounddevice"):
        devices.import_sounddevice()


def test_importing_the_audio_package_does_not_load_portaudio() -> None:
    code = (
        "import sys, voiceagent, voiceagent.audio.sources, voiceagent.audio.sinks, "
        "voiceagent.audio.files, voiceagent.audio.devices, voiceagent.audio.speaker, "
        "voiceagent.audio.recovery, voiceagent.display, voiceagent.talk\n"
        "print(sorted(m for m in ('sounddevice', 'soundfile', 'soxr', 'rich') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@dataclass
class FakeStatus:
    input_overflow: bool = False
    output_underflow: bool = False


def test_microphone_callback_resamples_to_frames_and_counts_overflow() -> None:
    frames: list[AudioFrame] = []
    device = DeviceInfo(7, "fake mic", "ALSA", 2, 0, 48000)
    stream = MicrophoneStream(device, frames.append)
    block = np.full((960, 2), 0.5, dtype=np.float32)  # 20 ms of stereo at 48 kHz
    for index in range(50):  # one second
        stream._callback(block, 960, None, FakeStatus(input_overflow=index == 3))
    assert stream.input_overflow_count == 1
    # One second at 16 kHz is 31.25 frames, minus the resampler's delay.
    assert 29 <= len(frames) <= 31
    assert [frame.sample_index for frame in frames] == [
        index * FRAME_SAMPLES for index in range(len(frames))
    ]
    assert frames[-1].samples == pytest.approx(0.5, abs=1e-3)


def test_microphone_callback_reports_consumer_errors() -> None:
    errors: list[BaseException] = []

    def broken_consumer(frame: AudioFrame) -> None:
        raise RuntimeError("consumer broke")

    device = DeviceInfo(7, "fake mic", "ALSA", 1, 0, 16000)
    stream = MicrophoneStream(device, broken_consumer, errors.append)
    sounddevice = devices.import_sounddevice()
    with pytest.raises(sounddevice.CallbackAbort):
        stream._callback(np.zeros((512, 1), dtype=np.float32), 512, None, FakeStatus())
    assert isinstance(errors[0], RuntimeError)


def test_speaker_callback_plays_queue_then_silence() -> None:
    clock = FakeClock(start_s=3.0)
    sink = SpeakerSink(DeviceInfo(5, "fake speaker", "ALSA", 0, 2, 16000), clock=clock)
    assert isinstance(sink, AudioSink)
    sink.write(np.full(300, 0.25, dtype=np.float32), 16000)
    assert sink.first_sample_time_s is None
    out = np.ones((256, 2), dtype=np.float32)
    sink._callback(out, 256, None, FakeStatus())
    assert sink.first_sample_time_s == 3.0
    assert out == pytest.approx(0.25)
    clock.advance(1.0)
    sink._callback(out, 256, None, FakeStatus())
    assert out[:44] == pytest.approx(0.25)
    assert not out[44:].any()
    assert sink.played_samples == 300
    assert sink.first_sample_time_s == 3.0


def test_speaker_clear_drops_queued_audio_at_once() -> None:
    sink = SpeakerSink(DeviceInfo(5, "fake speaker", "ALSA", 0, 1, 48000), clock=FakeClock())
    sink.write(np.full(24000, 0.5, dtype=np.float32), 24000)  # resampled to 48 kHz
    assert sink.queued_samples == pytest.approx(48000, abs=2)
    out = np.zeros((480, 1), dtype=np.float32)
    sink._callback(out, 480, None, FakeStatus())
    sink.clear()
    assert sink.queued_samples == 0
    assert sink.first_sample_time_s is None
    sink._callback(out, 480, None, FakeStatus())
    # The next 5 ms fade out instead of stopping mid-swing (a click), then silence.
    fade = out[:240, 0]
    assert fade[0] == pytest.approx(0.5) and (np.diff(fade) < 0).all() and fade[-1] < 0.01
    assert not out[240:].any()
    assert sink.played_samples == 480 + 240
    assert sink.first_sample_time_s is None  # the fade starts no new reply's timing
    sink._callback(out, 480, None, FakeStatus())
    assert not out.any()


def test_speaker_hold_plays_silence_and_resume_goes_on_where_it_stopped() -> None:
    sink = SpeakerSink(DeviceInfo(5, "fake speaker", "ALSA", 0, 1, 16000), clock=FakeClock())
    sink.write(np.arange(1, 1001, dtype=np.float32) / 1000, 16000)
    out = np.zeros((256, 1), dtype=np.float32)
    sink._callback(out, 256, None, FakeStatus())
    sink.hold()
    assert sink.is_held
    sink.write(np.full(100, -0.5, dtype=np.float32), 16000)  # kept while held
    sink._callback(out, 256, None, FakeStatus())
    # 5 ms (80 samples) fade out, then silence.
    assert out[0, 0] == pytest.approx(0.257) and out[79, 0] < 0.01
    assert not out[80:].any()
    sink._callback(out, 256, None, FakeStatus())
    assert not out.any()
    assert (sink.played_samples, sink.queued_samples) == (336, 764)
    sink.resume()
    sink._callback(out, 256, None, FakeStatus())
    # On from the sample after the fade, fading in over 80 samples.
    assert out[0, 0] == pytest.approx(0.337 / 80, rel=1e-3)
    assert out[40, 0] == pytest.approx(0.377 * 41 / 80, rel=1e-3)
    assert out[80:, 0] == pytest.approx(np.arange(417, 593) / 1000)
    sink.hold()
    sink.clear()  # a held reply the user talked over is dropped, and the hold with it
    assert not sink.is_held and sink.queued_samples == 0
    sink._callback(out, 256, None, FakeStatus())
    assert out[:80].any() and not out[80:].any()  # it fades out what came next once more
    assert sink.played_samples == 336 + 256 + 80


def test_speaker_drain_waits_for_the_callback() -> None:
    sink = SpeakerSink(DeviceInfo(5, "fake speaker", "ALSA", 0, 1, 16000), clock=FakeClock())
    sink._stream = object()  # pretend started; the test drives the callback itself

    async def scenario() -> None:
        sink.write(np.zeros(1000, dtype=np.float32), 16000)
        drained = asyncio.create_task(sink.drain())
        await asyncio.sleep(0)
        assert not drained.done()
        out = np.zeros((1024, 1), dtype=np.float32)
        sink._callback(out, 1024, None, FakeStatus())
        await asyncio.wait_for(drained, timeout=5)

    asyncio.run(scenario())
