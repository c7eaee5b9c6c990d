"""Sample conversion, streaming resampling and framing into 512-sample VAD frames."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voiceagent.audio.formats import (
    FRAME_SAMPLES,
    PIPELINE_RATE_HZ,
    Framer,
    NonFiniteTally,
    StreamResampler,
    resample_once,
    to_mono_float32,
)

pytestmark = pytest.mark.unit


def test_pipeline_constants() -> None:
    assert PIPELINE_RATE_HZ == 16000
    assert FRAME_SAMPLES == 512


def test_uint8_is_centred_on_128() -> None:
    samples = to_mono_float32(np.array([0, 128, 255], dtype=np.uint8))
    assert samples.dtype == np.float32
    np.testing.assert_allclose(samples, [-1.0, 0.0, 127 / 128])


def test_int16_full_scale() -> None:
    samples = to_mono_float32(np.array([-32768, 0, 16384, 32767], dtype=np.int16))
    np.testing.assert_allclose(samples, [-1.0, 0.0, 0.5, 32767 / 32768])


def test_int32_keeps_precision() -> None:
    samples = to_mono_float32(np.array([-(2**31), 2**30, 2**31 - 1], dtype=np.int32))
    np.testing.assert_allclose(samples, [-1.0, 0.5, 1.0], atol=1e-7)


def test_float64_is_clipped_to_unit_range() -> None:
    samples = to_mono_float32(np.array([-3.0, -0.25, 0.25, 2.0], dtype=np.float64))
    assert samples.dtype == np.float32
    np.testing.assert_allclose(samples, [-1.0, -0.25, 0.25, 1.0])


def test_six_channels_are_averaged() -> None:
    block = np.zeros((4, 6), dtype=np.int16)
    block[:, 0] = 12000
    block[:, 5] = -6000
    samples = to_mono_float32(block)
    assert samples.shape == (4,)
    np.testing.assert_allclose(samples, (12000 - 6000) / 6 / 32768, rtol=1e-6)


def test_single_column_is_flattened() -> None:
    samples = to_mono_float32(np.full((10, 1), 0.5, dtype=np.float32))
    assert samples.shape == (10,)


def test_nan_and_inf_become_silence_and_are_counted() -> None:
    tally = NonFiniteTally()
    block = np.array([[np.nan, 0.5], [np.inf, -np.inf], [0.1, 0.1]], dtype=np.float32)
    samples = to_mono_float32(block, tally)
    assert np.isfinite(samples).all()
    np.testing.assert_allclose(samples, [0.25, 0.0, 0.1], rtol=1e-6)
    assert tally.count == 3
    to_mono_float32(np.array([np.nan]), tally)
    assert tally.count == 4


def test_empty_block() -> None:
    assert to_mono_float32(np.zeros((0, 2), dtype=np.int16)).shape == (0,)


def test_input_is_not_modified() -> None:
    block = np.array([np.nan, 2.0], dtype=np.float32)
    to_mono_float32(block)
    assert np.isnan(block[0]) and block[1] == 2.0


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 2)), np.array(["a", "b"])])
def test_rejects_non_audio_arrays(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        to_mono_float32(bad)


def test_resampler_preserves_a_tone() -> None:
    input_rate_hz = 44100
    t_s = np.arange(input_rate_hz) / input_rate_hz
    tone = (0.5 * np.sin(2 * np.pi * 440 * t_s)).astype(np.float32)
    resampler = StreamResampler(input_rate_hz)
    parts = [resampler.process(tone[i : i + 1000]) for i in range(0, tone.size, 1000)]
    output = np.concatenate([*parts, resampler.flush()])
    assert abs(output.size - PIPELINE_RATE_HZ) <= 2
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(output.size) / PIPELINE_RATE_HZ)
    # Away from the edges the resampled tone matches the ideal one closely.
    assert np.max(np.abs(output[500:-500] - expected[500:-500])) < 0.01


def test_resampler_same_rate_passes_through() -> None:
    resampler = StreamResampler(PIPELINE_RATE_HZ)
    chunk = np.linspace(-1, 1, 100, dtype=np.float32)
    np.testing.assert_array_equal(resampler.process(chunk), chunk)
    assert resampler.flush().size == 0


def test_resampler_rejects_use_after_flush() -> None:
    resampler = StreamResampler(8000)
    resampler.flush()
    assert resampler.flush().size == 0
    with pytest.raises(RuntimeError):
        resampler.process(np.zeros(10, dtype=np.float32))


def test_resample_once_length() -> None:
    output = resample_once(np.zeros(22050, dtype=np.float32), 22050, 48000)
    assert output.dtype == np.float32
    assert abs(output.size - 48000) <= 1


def test_framer_pads_the_last_frame() -> None:
    framer = Framer()
    frames = framer.push(np.ones(1000, dtype=np.float32))
    assert [frame.sample_index for frame in frames] == [0]
    tail = framer.flush()
    assert len(tail) == 1
    assert tail[0].sample_index == 512
    assert tail[0].valid_samples == 1000 - 512
    assert tail[0].samples[: 1000 - 512].sum() == 1000 - 512
    assert tail[0].samples[1000 - 512 :].sum() == 0
    assert tail[0].end_s == pytest.approx(1000 / PIPELINE_RATE_HZ)
    assert framer.flush() == []


def test_framer_frames_own_their_samples() -> None:
    framer = Framer()
    chunk = np.zeros(512, dtype=np.float32)
    (frame,) = framer.push(chunk)
    chunk[:] = 1.0
    assert frame.samples.sum() == 0


@settings(max_examples=60, deadline=None)
@given(
    input_rate_hz=st.integers(min_value=8000, max_value=96000),
    chunk_sizes=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=40),
)
def test_resample_and_frame_any_chunking(input_rate_hz: int, chunk_sizes: list[int]) -> None:
    total_input = sum(chunk_sizes)
    rng = np.random.default_rng(len(chunk_sizes))
    signal = rng.uniform(-0.5, 0.5, total_input).astype(np.float32)
    resampler = StreamResampler(input_rate_hz)
    framer = Framer()
    frames = []
    resampled_total = 0
    position = 0
    for size in chunk_sizes:
        block = resampler.process(signal[position : position + size])
        position += size
        resampled_total += block.size
        frames.extend(framer.push(block))
    tail = resampler.flush()
    resampled_total += tail.size
    frames.extend(framer.push(tail))
    frames.extend(framer.flush())

    expected = total_input * PIPELINE_RATE_HZ / input_rate_hz
    assert abs(resampled_total - expected) <= 3
    assert all(frame.samples.shape == (FRAME_SAMPLES,) for frame in frames)
    assert all(frame.samples.dtype == np.float32 for frame in frames)
    assert [frame.sample_index for frame in frames] == [
        position * FRAME_SAMPLES for position in range(len(frames))
    ]
    assert sum(frame.valid_samples for frame in frames) == resampled_total
    assert all(frame.valid_samples == FRAME_SAMPLES for frame in frames[:-1])
