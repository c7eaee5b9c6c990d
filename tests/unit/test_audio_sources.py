"""FileSource: a file played into the pipeline as frames, paced by an injected clock."""

from __future__ import annotations

import asyncio
import contextlib
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voiceagent.audio.clock import FakeClock
from voiceagent.audio.formats import FRAME_SAMPLES, PIPELINE_RATE_HZ, AudioFrame
from voiceagent.audio.sources import FileSource
from voiceagent.errors import AudioError

pytestmark = pytest.mark.unit

SHARED_AUDIO = Path(__file__).resolve().parents[2].parent / "shared" / "audio"


def collect(source: FileSource, limit: int | None = None) -> list[AudioFrame]:
    async def run() -> list[AudioFrame]:
        frames: list[AudioFrame] = []
        async with contextlib.aclosing(source.frames()) as stream:
            async for frame in stream:
                frames.append(frame)
                if limit is not None and len(frames) >= limit:
                    break
        return frames

    return asyncio.run(run())


@pytest.fixture
def one_second_wav(tmp_path: Path) -> Path:
    path = tmp_path / "one_second.wav"
    soundfile.write(path, np.full(16000, 0.25, dtype=np.float32), 16000, subtype="FLOAT")
    return path


def test_fast_mode_frames_with_trailing_silence(one_second_wav: Path) -> None:
    clock = FakeClock()
    source = FileSource.open(one_second_wav, realtime=False, clock=clock, trailing_silence_ms=300)
    frames = collect(source)
    total_samples = 16000 + 300 * 16
    assert len(frames) == math.ceil(total_samples / FRAME_SAMPLES)
    assert [frame.sample_index for frame in frames] == [
        index * FRAME_SAMPLES for index in range(len(frames))
    ]
    assert all(frame.samples.shape == (FRAME_SAMPLES,) for frame in frames)
    assert frames[-1].valid_samples == total_samples - (len(frames) - 1) * FRAME_SAMPLES
    audio = np.concatenate([frame.samples for frame in frames])
    np.testing.assert_allclose(audio[:16000], 0.25)
    assert not audio[16000:].any()
    assert clock.sleep_requests_s == []


def test_realtime_pacing_asks_for_each_frame_end(one_second_wav: Path) -> None:
    clock = FakeClock(start_s=100.0)
    source = FileSource.open(one_second_wav, realtime=True, clock=clock, trailing_silence_ms=100)
    frames = collect(source)
    expected = [100.0 + (frame.sample_index + FRAME_SAMPLES) / PIPELINE_RATE_HZ for frame in frames]
    assert clock.sleep_requests_s == pytest.approx(expected)
    assert source.start_time_s == 100.0
    # The last frame is released once the whole file plus its silence has "played".
    assert clock.now_s() >= 100.0 + (16000 + 1600) / PIPELINE_RATE_HZ


class SignallingClock(FakeClock):
    """A manual fake clock that tells the test each time someone asks to sleep."""

    def __init__(self) -> None:
        super().__init__(auto_advance=False)
        self.asked = asyncio.Event()

    async def sleep_until(self, t_s: float) -> None:
        self.asked.set()
        await super().sleep_until(t_s)

    async def wait_for_requests(self, count: int) -> None:
        while len(self.sleep_requests_s) < count:
            self.asked.clear()
            await self.asked.wait()


def test_realtime_pacing_with_a_manual_clock(one_second_wav: Path) -> None:
    received: list[AudioFrame] = []

    async def scenario() -> None:
        clock = SignallingClock()
        source = FileSource.open(one_second_wav, realtime=True, clock=clock)

        async def consume() -> None:
            async with contextlib.aclosing(source.frames()) as stream:
                async for frame in stream:
                    received.append(frame)

        task = asyncio.create_task(consume())
        await clock.wait_for_requests(1)
        assert received == []  # the first frame is not released before its time
        clock.set(0.1)  # 0.1 s = 1600 samples: three whole frames have "arrived"
        await clock.wait_for_requests(4)  # the fourth frame waits for 0.128 s
        assert [frame.sample_index for frame in received] == [0, 512, 1024]
        clock.set(10.0)
        await task

    asyncio.run(scenario())
    assert len(received) == math.ceil(16000 / FRAME_SAMPLES)


def test_resamples_other_rates(tmp_path: Path) -> None:
    path = tmp_path / "stereo_48k.wav"
    soundfile.write(path, np.zeros((48000 * 2, 2), dtype=np.float32), 48000)
    frames = collect(FileSource.open(path, realtime=False))
    real_samples = sum(frame.valid_samples for frame in frames)
    assert abs(real_samples - 2 * PIPELINE_RATE_HZ) <= 2


def test_stops_early_without_leaking(one_second_wav: Path) -> None:
    frames = collect(FileSource.open(one_second_wav, realtime=False), limit=2)
    assert len(frames) == 2


def test_open_rejects_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        FileSource.open(path)
    with pytest.raises(ValueError):
        FileSource(path, trailing_silence_ms=-1)


def test_nan_samples_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "nan.wav"
    samples = np.zeros(1000, dtype=np.float32)
    samples[:5] = np.nan
    soundfile.write(path, samples, 16000, subtype="FLOAT")
    source = FileSource.open(path, realtime=False)
    frames = collect(source)
    assert source.non_finite_count == 5
    assert all(np.isfinite(frame.samples).all() for frame in frames)


def test_real_jfk_file_as_frames() -> None:
    path = SHARED_AUDIO / "speech" / "jfk.flac"
    if not path.is_file():
        pytest.skip(f"sample recording {path} is not present (expected in ../shared/audio)")
    frames = collect(FileSource.open(path, realtime=False, trailing_silence_ms=500))
    real_samples = sum(frame.valid_samples for frame in frames)
    assert real_samples == pytest.approx(11.5 * PIPELINE_RATE_HZ, abs=3)
