"""Real capture and playback through a PulseAudio server with null sinks (see conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import soundfile

from voiceagent.audio.devices import SpeakerSink, find_device, list_devices
from voiceagent.audio.files import read_audio
from voiceagent.audio.formats import FRAME_SAMPLES, AudioFrame
from voiceagent.audio.sources import MicrophoneSource

if TYPE_CHECKING:  # only for annotations: conftest is not importable as a module
    from .conftest import PulseServer

pytestmark = [pytest.mark.audio, pytest.mark.usefixtures("pulse_server")]

SHARED_AUDIO = Path(__file__).resolve().parents[2].parent / "shared" / "audio"

# PortAudio's ALSA->PulseAudio path (with null sinks) stalls for one to two seconds after a
# stream starts; the microphone test lets this much input pass before playing anything.
STREAM_WARM_UP_S = 2.0


async def wait_until_running(sink: SpeakerSink, timeout_s: float = 10.0) -> None:
    """Wait until the device consumes samples at real-time pace (its start-up stall is over)."""
    window_s = 0.3
    loop = asyncio.get_running_loop()
    deadline_s = loop.time() + timeout_s
    while loop.time() < deadline_s:
        before = sink.device_samples
        await asyncio.sleep(window_s)
        if sink.device_samples - before >= 0.8 * window_s * sink.output_rate_hz:
            return
    pytest.fail(f"the output device did not start playing within {timeout_s} s")


def speech_file() -> Path:
    path = SHARED_AUDIO / "speech" / "LJ001-0002.wav"
    if not path.is_file():
        pytest.skip(f"sample recording {path} is not present (expected in ../shared/audio)")
    return path


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def loud_windows(recording: np.ndarray, rate_hz: int, threshold: float = 0.1) -> np.ndarray:
    """The 10 ms windows of ``recording`` whose RMS exceeds ``threshold``, shape (n, window)."""
    window = rate_hz // 100
    usable = recording[: recording.size // window * window].reshape(-1, window)
    return usable[np.sqrt(np.mean(usable**2, axis=1)) > threshold]


def test_list_devices_sees_default_input_and_output() -> None:
    devices = list_devices()
    assert any(device.is_default_input for device in devices), devices
    assert any(device.is_default_output for device in devices), devices
    assert find_device(None, "input").supports("input")
    assert find_device(None, "output").supports("output")
    assert find_device("pulse", "input").name == "pulse"


def test_microphone_captures_what_is_played_into_the_mic_sink(pulse_server: PulseServer) -> None:
    speech = speech_file()
    speech_s = read_audio(speech).duration_s

    async def capture() -> tuple[list[AudioFrame], MicrophoneSource]:
        source = MicrophoneSource()  # the default input: mic.monitor
        frames: list[AudioFrame] = []
        player: asyncio.subprocess.Process | None = None
        async with contextlib.aclosing(source.frames()) as stream:
            async for frame in stream:
                frames.append(frame)
                if player is None and frame.start_s >= STREAM_WARM_UP_S:
                    player = await asyncio.create_subprocess_exec(
                        "paplay", "--device=mic", str(speech), env=pulse_server.env
                    )
                    played_from_s = frame.start_s
                if player is not None and frame.start_s > played_from_s + speech_s + 1.0:
                    break
        assert player is not None
        assert await player.wait() == 0
        return frames, source

    frames, source = asyncio.run(asyncio.wait_for(capture(), timeout=30))
    assert source.device_name is not None
    assert all(frame.samples.shape == (FRAME_SAMPLES,) for frame in frames)
    assert all(frame.samples.dtype == np.float32 for frame in frames)
    assert [frame.sample_index for frame in frames] == [
        index * FRAME_SAMPLES for index in range(len(frames))
    ]
    before = np.concatenate([f.samples for f in frames if f.start_s < STREAM_WARM_UP_S - 0.5])
    after = np.concatenate([f.samples for f in frames if f.start_s >= STREAM_WARM_UP_S])
    assert rms(before) < 1e-4  # nothing plays into the null sink before paplay
    assert rms(after) > 0.01


def test_speaker_output_arrives_on_the_speaker_monitor(
    pulse_server: PulseServer, tmp_path: Path
) -> None:
    recording = tmp_path / "speaker.wav"
    tone_s = 1.0
    t_s = np.arange(round(22050 * tone_s)) / 22050
    tone = (0.5 * np.sin(2 * np.pi * 440 * t_s)).astype(np.float32)

    async def play() -> SpeakerSink:
        sink = await asyncio.to_thread(SpeakerSink.open)
        try:
            await wait_until_running(sink)
            sink.mark_start()
            sink.write(tone, 22050)  # resampled to the device's rate
            await asyncio.wait_for(sink.drain(), timeout=10)
            await asyncio.sleep(0.5)  # the device buffer and the monitor lag a little
        finally:
            sink.close()
        return sink

    recorder = subprocess.Popen(
        [
            "parecord",
            "--device=speaker.monitor",
            "--rate=16000",
            "--channels=1",
            "--file-format=wav",
            str(recording),
        ],
        env=pulse_server.env,
    )
    try:
        sink = asyncio.run(play())
    finally:
        recorder.send_signal(signal.SIGINT)  # lets parecord finish the WAV header
        recorder.wait(timeout=10)

    assert sink.first_sample_time_s is not None
    assert sink.played_s == pytest.approx(tone_s, abs=0.01)
    recorded, rate_hz = soundfile.read(recording, dtype="float32")
    assert rate_hz == 16000
    # Measured as loud time, not first-to-last loud sample: a stall of the sound server in the
    # middle of playback delays the rest but must not fail the test.
    loud = loud_windows(recorded, rate_hz)
    assert loud.shape[0] / 100 == pytest.approx(tone_s, abs=0.1)
    samples = loud.reshape(-1)
    peak_hz = np.argmax(np.abs(np.fft.rfft(samples))) * rate_hz / samples.size
    assert peak_hz == pytest.approx(440, abs=10)


def test_speaker_clear_silences_output_at_once() -> None:
    async def play_then_clear() -> tuple[float, float]:
        sink = await asyncio.to_thread(SpeakerSink.open)
        try:
            await wait_until_running(sink)
            sink.write(np.full(sink.output_rate_hz * 5, 0.3, dtype=np.float32), sink.output_rate_hz)
            await asyncio.sleep(0.5)
            sink.clear()
            played_at_clear_s = sink.played_s
            await asyncio.sleep(0.5)
            return played_at_clear_s, sink.played_s
        finally:
            sink.close()

    played_at_clear_s, played_later_s = asyncio.run(play_then_clear())
    assert 0.0 < played_at_clear_s < 1.5
    # After clear() nothing more of the cleared audio reaches the device.
    assert played_later_s == pytest.approx(played_at_clear_s, abs=0.05)
