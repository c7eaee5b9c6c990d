"""WavFileSink: the assistant's voice written to a WAV file, with where each chunk landed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voiceagent.audio.clock import FakeClock
from voiceagent.audio.sinks import AudioSink, WavFileSink, WrittenChunk
from voiceagent.errors import AudioError

pytestmark = pytest.mark.unit


def test_chunks_are_recorded_and_resampled(tmp_path: Path) -> None:
    path = tmp_path / "reply.wav"
    clock = FakeClock(start_s=5.0)
    with WavFileSink.open(path, 22050, clock=clock) as sink:
        assert isinstance(sink, AudioSink)
        assert sink.first_sample_time_s is None
        sink.write(np.full(22050, 0.5, dtype=np.float32), 22050)
        clock.advance(2.0)
        sink.write(np.full(16000, -0.5, dtype=np.float32), 16000)  # resampled to 22050
        assert sink.first_sample_time_s == 5.0
        assert sink.played_samples == pytest.approx(2 * 22050, abs=2)
        assert sink.played_s == pytest.approx(2.0, abs=1e-3)
        # Not visible under its final name until closed.
        assert not path.exists()
    assert sink.chunks[0] == WrittenChunk(0, 22050, 22050, 5.0)
    assert sink.chunks[1].start_sample == 22050
    assert sink.chunks[1].start_s == pytest.approx(1.0)
    assert sink.chunks[1].written_at_s == 7.0
    data, rate_hz = soundfile.read(path, dtype="float32")
    assert rate_hz == 22050
    assert data.size == sink.played_samples
    assert data[1000] == pytest.approx(0.5, abs=1e-3)
    assert data[22050 + 1000] == pytest.approx(-0.5, abs=1e-2)
    assert [entry.name for entry in tmp_path.iterdir()] == ["reply.wav"]


def test_pad_to_clock_inserts_idle_silence(tmp_path: Path) -> None:
    path = tmp_path / "timed.wav"
    clock = FakeClock()
    sink = WavFileSink.open(path, 16000, clock=clock, pad_to_clock=True)
    clock.advance(1.5)
    sink.write(np.full(8000, 0.5, dtype=np.float32), 16000)
    sink.close()
    sink.close()  # closing twice is harmless
    assert sink.chunks[0].start_s == pytest.approx(1.5)
    assert sink.played_samples == 8000
    data, _ = soundfile.read(path, dtype="float32")
    assert data.size == 24000 + 8000
    assert not data[:24000].any()


def test_mark_start_and_clear_restart_timing(tmp_path: Path) -> None:
    clock = FakeClock(start_s=1.0)
    with WavFileSink.open(tmp_path / "out.wav", 16000, clock=clock) as sink:
        sink.write(np.zeros(160, dtype=np.float32), 16000)
        sink.mark_start()
        assert sink.first_sample_time_s is None
        clock.advance(1.0)
        sink.write(np.zeros(160, dtype=np.float32), 16000)
        assert sink.first_sample_time_s == 2.0
        sink.clear()
        assert sink.first_sample_time_s is None
        asyncio.run(sink.drain())


def _fades_out(samples: np.ndarray, level: float) -> bool:
    """From ``level`` down to nearly nothing, never 0 (as ``fade_ramp`` fades)."""
    return (
        samples[0] == pytest.approx(level, abs=1e-3)
        and bool((np.diff(samples) < 0).all())
        and 0 < samples[-1] < 0.02
    )


def _half_a_second_into_a_reply(path: Path) -> tuple[WavFileSink, FakeClock]:
    """A timeline file with a 2 s reply written at 1 s, and the clock at 1.5 s."""
    clock = FakeClock()
    sink = WavFileSink.open(path, 16000, clock=clock, pad_to_clock=True)
    clock.advance(1.0)
    sink.write(np.full(32000, 0.5, np.float32), 16000)
    clock.advance(0.5)
    return sink, clock


def test_clear_cuts_audio_not_yet_heard_from_a_timeline_file(tmp_path: Path) -> None:
    # A barge-in 0.5 s into a 2 s reply: the file keeps what a listener heard, a 5 ms fade of
    # what came next (a cut mid-swing clicks), then silence.
    path = tmp_path / "reply.wav"
    sink, clock = _half_a_second_into_a_reply(path)
    with sink:
        sink.clear()
        assert sink.played_samples == 8000 + 80
        assert [(c.start_sample, c.sample_count) for c in sink.chunks] == [(16000, 8080)]
        clock.advance(1.0)
        sink.write(np.full(1600, 0.25, np.float32), 16000)
    audio, _ = soundfile.read(path, dtype="float32")
    assert len(audio) == 16000 + 8000 + 16000 + 1600
    assert np.isclose(audio[16000:24000], 0.5, atol=1e-3).all()
    assert _fades_out(audio[24000:24080], 0.5)
    assert not audio[24080:40000].any()


def test_hold_silences_a_timeline_file_and_resume_plays_the_rest_later(tmp_path: Path) -> None:
    # Voice over a 2 s reply 0.5 s in: the reply fades out there; it was a cough, so 0.25 s
    # later the rest follows, fading in, with what was written meanwhile; nothing is lost.
    path = tmp_path / "reply.wav"
    sink, clock = _half_a_second_into_a_reply(path)
    with sink:
        sink.hold()
        assert sink.is_held
        assert (sink.played_samples, sink.queued_samples) == (8080, 23920)
        sink.write(np.full(1600, 0.25, np.float32), 16000)  # the reply's next chunk
        assert (sink.played_samples, sink.queued_samples) == (8080, 25520)
        clock.advance(0.25)
        sink.resume()
        assert not sink.is_held
        assert (sink.played_samples, sink.queued_samples) == (33600, 0)
        assert sink.first_sample_time_s == 1.0
    audio, _ = soundfile.read(path, dtype="float32")
    assert len(audio) == 28000 + 23920 + 1600
    assert _fades_out(audio[24000:24080], 0.5)
    assert not audio[24080:28000].any()  # held until 1.75 s
    assert _fades_out(audio[28000:28080][::-1], 0.5)  # fading in
    assert np.isclose(audio[28080:51920], 0.5, atol=1e-3).all()
    assert np.isclose(audio[51920:], 0.25, atol=1e-3).all()


def test_clear_while_held_drops_what_was_held(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "reply.wav"
    with WavFileSink.open(path, 16000, clock=clock, pad_to_clock=True) as sink:
        sink.write(np.full(32000, 0.5, np.float32), 16000)
        clock.advance(0.5)
        sink.hold()
        sink.write(np.full(1600, 0.25, np.float32), 16000)
        clock.advance(0.25)
        sink.clear()  # the voice was the user's: the reply is cut where it was held
        assert not sink.is_held
        assert (sink.played_samples, sink.queued_samples) == (8080, 0)
        sink.resume()  # nothing held: nothing to play
    audio, _ = soundfile.read(path, dtype="float32")
    assert len(audio) == 8080


def test_hold_without_a_timeline_holds_nothing(tmp_path: Path) -> None:
    # As fast as possible everything written counts as played: there is nothing ahead to hold.
    with WavFileSink.open(tmp_path / "out.wav", 16000) as sink:
        sink.write(np.full(1600, 0.5, np.float32), 16000)
        sink.hold()
        sink.write(np.full(1600, 0.5, np.float32), 16000)
        assert not sink.is_held and sink.played_samples == 3200


def test_write_after_close_is_an_error(tmp_path: Path) -> None:
    sink = WavFileSink.open(tmp_path / "out.wav", 16000)
    sink.close()
    with pytest.raises(RuntimeError):
        sink.write(np.zeros(10, dtype=np.float32), 16000)


def test_missing_folder_is_an_audio_error(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="exists"):
        WavFileSink.open(tmp_path / "no" / "out.wav", 16000)
