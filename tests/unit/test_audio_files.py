"""Reading audio files of every shape, and failing on bad ones with one clear line."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voiceagent.audio.files import (
    AudioInfo,
    iter_audio_blocks,
    probe_audio,
    read_audio,
    sniff_container,
    write_wav,
)
from voiceagent.audio.formats import PIPELINE_RATE_HZ
from voiceagent.errors import AudioError

pytestmark = pytest.mark.unit

SHARED_AUDIO = Path(__file__).resolve().parents[2].parent / "shared" / "audio"


def shared_file(relative: str) -> Path:
    path = SHARED_AUDIO / relative
    if not path.is_file():
        pytest.skip(f"sample recording {path} is not present (expected in ../shared/audio)")
    return path


def tone(rate_hz: int, duration_s: float, amplitude: float = 0.5) -> np.ndarray:
    t_s = np.arange(round(rate_hz * duration_s)) / rate_hz
    return (amplitude * np.sin(2 * np.pi * 440 * t_s)).astype(np.float32)


@pytest.fixture
def good_wav(tmp_path: Path) -> Path:
    path = tmp_path / "good.wav"
    soundfile.write(path, tone(16000, 1.0), 16000, subtype="PCM_16")
    return path


def assert_one_line_error(error: AudioError, path: Path, *fragments: str) -> None:
    text = str(error)
    assert "\n" not in text
    assert str(path) in text
    for fragment in fragments:
        assert fragment in text, text


# --- bad inputs -------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError) as caught:
        read_audio(path)
    assert_one_line_error(caught.value, path, "not found")


def test_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError) as caught:
        probe_audio(tmp_path)
    assert_one_line_error(caught.value, tmp_path, "folder")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError) as caught:
        read_audio(path)
    assert_one_line_error(caught.value, path, "empty", "Fix:")


def test_text_file_named_wav(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("This is a shopping list, not a recording.\n" * 5)
    with pytest.raises(AudioError) as caught:
        read_audio(path)
    assert_one_line_error(caught.value, path, "not audio", "text")


def test_truncated_wav_header(tmp_path: Path, good_wav: Path) -> None:
    path = tmp_path / "cut.wav"
    path.write_bytes(good_wav.read_bytes()[:20])
    with pytest.raises(AudioError) as caught:
        read_audio(path)
    assert_one_line_error(caught.value, path, "truncated or corrupt", "ffmpeg -i")


def test_wav_header_without_samples(tmp_path: Path, good_wav: Path) -> None:
    path = tmp_path / "header_only.wav"
    path.write_bytes(good_wav.read_bytes()[:44])
    with pytest.raises(AudioError) as caught:
        read_audio(path)
    assert_one_line_error(caught.value, path, "no audio", "record")


def test_zero_length_wav(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    soundfile.write(path, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError) as caught:
        probe_audio(path)
    assert_one_line_error(caught.value, path, "no audio")


def test_wav_with_truncated_data_reads_what_is_there(tmp_path: Path, good_wav: Path) -> None:
    path = tmp_path / "half.wav"
    data = good_wav.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    clip = read_audio(path)
    assert 0.4 < clip.duration_s < 0.6


def test_truncated_flac_fails_while_decoding(tmp_path: Path) -> None:
    full = tmp_path / "full.flac"
    soundfile.write(full, tone(16000, 3.0), 16000)
    path = tmp_path / "cut.flac"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(AudioError) as caught:
        read_audio(path)
    assert_one_line_error(caught.value, path, "truncated or corrupt")


def test_unsupported_container(tmp_path: Path) -> None:
    path = tmp_path / "voice.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(400))
    with pytest.raises(AudioError) as caught:
        read_audio(path)
    assert_one_line_error(caught.value, path, "cannot read", "MP4/M4A", "ffmpeg -i")


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError) as caught:
        read_audio(path)
    assert_one_line_error(caught.value, path, "cannot read")


def test_iter_audio_blocks_fails_at_call_time(tmp_path: Path) -> None:
    path = tmp_path / "empty.flac"
    path.write_bytes(b"")
    with pytest.raises(AudioError):
        iter_audio_blocks(path)


# --- unusual but valid inputs -------------------------------------------------------------------


def test_8_bit_unsigned_wav(tmp_path: Path) -> None:
    path = tmp_path / "eight_bit.wav"
    soundfile.write(path, tone(8000, 1.0), 8000, subtype="PCM_U8")
    clip = read_audio(path)
    assert clip.info.encoding == "PCM_U8"
    assert clip.info.sample_rate_hz == 8000
    assert abs(clip.samples.size - PIPELINE_RATE_HZ) <= 2
    # Centred on zero (not on 128) and at the original level.
    assert abs(float(clip.samples.mean())) < 0.01
    assert 0.45 < float(np.abs(clip.samples).max()) < 0.56


def test_96_khz_six_channel_wav(tmp_path: Path) -> None:
    path = tmp_path / "surround.wav"
    channels = np.stack([tone(96000, 2.0)] * 6, axis=1)
    soundfile.write(path, channels, 96000, subtype="PCM_24")
    clip = read_audio(path)
    assert (clip.info.sample_rate_hz, clip.info.channels) == (96000, 6)
    assert clip.info.duration_s == pytest.approx(2.0)
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert abs(clip.samples.size - 2 * PIPELINE_RATE_HZ) <= 2
    assert float(np.abs(clip.samples).max()) == pytest.approx(0.5, abs=0.02)


def test_float_wav_with_nan_and_inf(tmp_path: Path) -> None:
    path = tmp_path / "broken_float.wav"
    samples = tone(16000, 1.0)
    samples[100:110] = np.nan
    samples[200] = np.inf
    soundfile.write(path, samples, 16000, subtype="FLOAT")
    clip = read_audio(path)
    assert np.isfinite(clip.samples).all()
    assert clip.non_finite_count == 11
    assert float(np.abs(clip.samples).max()) <= 1.0


def test_wav_content_with_mp3_extension(tmp_path: Path, good_wav: Path) -> None:
    path = tmp_path / "actually_wav.mp3"
    path.write_bytes(good_wav.read_bytes())
    clip = read_audio(path)
    assert clip.info.container == "WAV"
    assert clip.duration_s == pytest.approx(1.0, abs=0.01)


def test_ogg_vorbis(tmp_path: Path) -> None:
    path = tmp_path / "voice.ogg"
    soundfile.write(path, tone(22050, 1.5), 22050, format="OGG", subtype="VORBIS")
    clip = read_audio(path)
    assert clip.info.container == "OGG"
    assert clip.duration_s == pytest.approx(1.5, abs=0.01)


def test_probe_reports_original_properties(good_wav: Path) -> None:
    info = probe_audio(good_wav)
    assert info == AudioInfo(good_wav, "WAV", "PCM_16", 16000, 1, 16000)
    assert info.duration_s == 1.0


def test_sniff_container() -> None:
    assert sniff_container(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "WAV"
    assert sniff_container(b"fLaC\x00\x00\x00\x22") == "FLAC"
    assert sniff_container(b"OggS\x00\x02") == "OGG"
    assert sniff_container(b"ID3\x04\x00") == "MP3"
    assert sniff_container(b"\xff\xfb\x90\x64") == "MP3"
    assert sniff_container(b"\x00\x00\x00\x18ftypmp42") == "MP4/M4A"
    assert sniff_container(b"hello world, plain text") == "text"
    assert sniff_container(bytes(range(256))[:64]) is None


# --- streaming --------------------------------------------------------------------------------


@pytest.fixture
def one_hour_wav(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "hour.wav"
    minute = np.zeros(16000 * 60, dtype=np.int16)
    with soundfile.SoundFile(path, "w", samplerate=16000, channels=1, subtype="PCM_16") as out:
        for _ in range(60):
            out.write(minute)
    assert path.stat().st_size > 115_000_000
    yield path
    path.unlink()  # pytest keeps recent temp folders; 115 MB each is too much to leave behind


def test_one_hour_file_is_streamed_in_bounded_blocks(one_hour_wav: Path) -> None:
    tracemalloc.start()
    try:
        total_samples = 0
        largest_block = 0
        for block in iter_audio_blocks(one_hour_wav, block_s=1.0):
            total_samples += block.size
            largest_block = max(largest_block, block.size)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total_samples == 3600 * PIPELINE_RATE_HZ
    assert largest_block <= 2 * PIPELINE_RATE_HZ
    # The whole file as float32 would be 230 MB; streaming stays around a few blocks.
    assert peak_bytes < 5_000_000


def test_blocks_concatenate_to_read_audio(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    soundfile.write(path, tone(44100, 2.3), 44100)
    streamed = np.concatenate(list(iter_audio_blocks(path, block_s=0.1)))
    np.testing.assert_allclose(streamed, read_audio(path).samples, atol=1e-6)


# --- writing ----------------------------------------------------------------------------------


def test_write_wav_round_trip_and_clipping(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    samples = np.array([0.0, 0.5, 2.0, -2.0, np.nan], dtype=np.float32)
    assert write_wav(path, samples, 22050) == path
    data, rate_hz = soundfile.read(path, dtype="float32")
    assert rate_hz == 22050
    np.testing.assert_allclose(data, [0.0, 0.5, 1.0, -1.0, 0.0], atol=1e-4)
    assert [entry.name for entry in tmp_path.iterdir()] == ["out.wav"]
    assert os.stat(path).st_mode & 0o644 == 0o644


def test_write_wav_replaces_only_when_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "reply.wav"
    write_wav(path, np.zeros(100, dtype=np.float32), 16000)
    before = path.read_bytes()

    def failing_write(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(soundfile, "write", failing_write)
    with pytest.raises(AudioError, match="disk full"):
        write_wav(path, np.ones(100, dtype=np.float32), 16000)
    assert path.read_bytes() == before
    assert [entry.name for entry in tmp_path.iterdir()] == ["reply.wav"]


def test_write_wav_into_missing_folder(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "out.wav"
    with pytest.raises(AudioError) as caught:
        write_wav(path, np.zeros(10, dtype=np.float32), 16000)
    assert_one_line_error(caught.value, path, "exists")


# --- real recordings from ../shared/audio -------------------------------------------------------


def test_real_jfk_flac_44k_stereo() -> None:
    clip = read_audio(shared_file("speech/jfk.flac"))
    assert (clip.info.sample_rate_hz, clip.info.channels) == (44100, 2)
    assert clip.sample_rate_hz == PIPELINE_RATE_HZ
    assert clip.duration_s == pytest.approx(11.0, abs=0.01)
    assert 0.05 < float(np.abs(clip.samples).max()) <= 1.0


def test_real_ogg_noise() -> None:
    clip = read_audio(shared_file("noise/glacier-bay-humpback.ogg"))
    assert clip.info.container == "OGG"
    assert clip.duration_s == pytest.approx(clip.info.duration_s, abs=0.01)
    assert float(np.abs(clip.samples).max()) > 0.01


def test_real_8_khz_turns_file() -> None:
    clip = read_audio(shared_file("turns/OSR_us_000_0034_8k.wav"))
    assert clip.info.sample_rate_hz == 8000
    assert abs(clip.samples.size - 2 * clip.info.sample_count) <= 2
    assert clip.duration_s == pytest.approx(35.55, abs=0.01)
