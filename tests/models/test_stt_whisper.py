"""WhisperStt on the real tiny.en model and real recordings."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import jiwer
import numpy as np
import pytest
from whisper_normalizer.english import EnglishTextNormalizer

from voiceagent.audio.files import read_audio
from voiceagent.backends.faster_whisper import (
    DEFAULT_WHISPER_OPTIONS,
    FallbackReason,
    WhisperStt,
)
from voiceagent.errors import ModelError
from voiceagent.models.catalog import ModelKind
from voiceagent.models.store import resolve_model
from voiceagent.transcript_filter import check_transcript

pytestmark = pytest.mark.models

RATE_HZ = 16000
normalise = EnglishTextNormalizer()
CLIPS = [
    "jfk",
    "1272-128104-0000",
    "2412-153948-0000",
    "LJ001-0001",
    "LJ001-0008",
    "cmu_arctic_us_aew_a0003",
    "sense_and_sensibility_01_austen_64kb-0930",
]


@pytest.fixture(scope="module")
def stt(model_store_dir: Path) -> Iterator[WhisperStt]:
    path = resolve_model("whisper-tiny.en", ModelKind.STT, store=model_store_dir)
    with WhisperStt.load(path, threads=2) as loaded:
        yield loaded


def speech(shared_audio: Path, name: str) -> tuple[np.ndarray, str]:
    folder = shared_audio / "speech"
    audio = next(p for p in folder.iterdir() if p.stem == name and p.suffix != ".txt")
    return read_audio(audio).samples, (folder / f"{name}.txt").read_text()


def word_error_rate(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalise(reference), normalise(hypothesis)))


def test_jfk_is_transcribed_on_the_fast_path(stt: WhisperStt, shared_audio: Path) -> None:
    audio, reference = speech(shared_audio, "jfk")
    result = stt.transcribe_detailed(audio)
    text = normalise(result.transcript.text)
    assert "ask not what your country can do for you" in text
    assert "what you can do for your country" in text
    assert word_error_rate(reference, result.transcript.text) < 0.15
    assert result.fallback is None and not result.transcript.used_full_window
    assert result.transcript.audio_s == pytest.approx(11.0, abs=0.01)
    assert result.transcript.stt_ms > 0
    assert result.transcript.no_speech_prob < 0.6
    assert result.transcript.avg_logprob > -1.0
    assert 0.5 < result.transcript.compression_ratio < 2.4
    assert check_transcript(result.transcript, voiced_share=None) is None


def test_clips_have_the_right_words(stt: WhisperStt, shared_audio: Path) -> None:
    references, hypotheses = [], []
    for name in CLIPS:
        audio, reference = speech(shared_audio, name)
        transcript = stt.transcribe(audio)
        assert word_error_rate(reference, transcript.text) < 0.3, (name, transcript.text)
        assert check_transcript(transcript, voiced_share=None) is None, (name, transcript.text)
        references.append(normalise(reference))
        hypotheses.append(normalise(transcript.text))
    assert jiwer.wer(references, hypotheses) < 0.15


def test_full_window_fallback_gives_the_same_words(stt: WhisperStt, shared_audio: Path) -> None:
    # Demanding a perfect log-probability sends every fast result to the 30 s window.
    doubtful = stt.with_options(replace(DEFAULT_WHISPER_OPTIONS, avg_logprob_below=0.0))
    audio, reference = speech(shared_audio, "LJ001-0008")
    result = doubtful.transcribe_detailed(audio)
    assert result.fallback is FallbackReason.LOW_LOGPROB
    assert result.transcript.used_full_window
    assert result.fast_attempt is not None
    assert word_error_rate(reference, result.transcript.text) < 0.15


def test_input_longer_than_30_s(stt: WhisperStt, shared_audio: Path) -> None:
    names = ["jfk", "2412-153948-0000", "LJ001-0001"]
    parts = [speech(shared_audio, name) for name in names]
    silence = np.zeros(RATE_HZ // 2, dtype=np.float32)
    audio = np.concatenate([x for samples, _ in parts for x in (samples, silence)])
    assert len(audio) / RATE_HZ > 30
    result = stt.transcribe_detailed(audio)
    assert result.fallback is FallbackReason.TOO_LONG
    assert result.transcript.used_full_window
    assert result.transcript.audio_s == pytest.approx(len(audio) / RATE_HZ)
    reference = " ".join(text for _, text in parts)
    assert word_error_rate(reference, result.transcript.text) < 0.15
    text = normalise(result.transcript.text)
    assert "fellow americans" in text and "exhibition" in text


def test_long_input_is_decoded_with_a_beam_and_the_last_windows_text(
    stt: WhisperStt, shared_audio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Over 30 s: beam 5, each window prompted with the last one's text; when a window loops
    # (a compression ratio over the bound) the audio is decoded again greedily, each window
    # alone.
    names = ["LJ001-0001", "2412-153948-0000", "LJ001-0007", "LJ001-0008", "LJ001-0009"]
    parts = [speech(shared_audio, name) for name in names]
    silence = np.zeros(RATE_HZ // 2, dtype=np.float32)
    audio = np.concatenate([x for samples, _ in parts for x in (samples, silence)])
    assert len(audio) / RATE_HZ > 40  # two windows, the second prompted with the first
    reference = " ".join(text for _, text in parts)
    calls: list[tuple[int, bool, int | None]] = []
    original = WhisperStt._transcribe_windows

    def spy(self, samples, beam_size, condition, max_new_tokens):  # noqa: ANN001, ANN202
        calls.append((beam_size, condition, max_new_tokens))
        return original(self, samples, beam_size, condition, max_new_tokens)

    monkeypatch.setattr(WhisperStt, "_transcribe_windows", spy)
    transcript = stt.transcribe(audio)
    assert calls == [(5, True, None)]
    assert word_error_rate(reference, transcript.text) < 0.1, transcript.text

    calls.clear()
    looping = stt.with_options(replace(DEFAULT_WHISPER_OPTIONS, compression_ratio_above=0.1))
    again = looping.transcribe(audio)
    assert calls == [(5, True, None), (1, False, None)]
    assert word_error_rate(reference, again.text) < 0.1, again.text

    calls.clear()
    short, _ = parts[0]
    stt.transcribe_detailed(short)
    doubtful = stt.with_options(replace(DEFAULT_WHISPER_OPTIONS, avg_logprob_below=0.0))
    doubtful.transcribe_detailed(short)
    assert [(beam, condition) for beam, condition, _ in calls] == [(1, False)]
    assert calls[0][2] is not None  # a bounded decode under 30 s


def test_input_just_under_30_s(stt: WhisperStt, shared_audio: Path) -> None:
    first, first_text = speech(shared_audio, "jfk")
    second, second_text = speech(shared_audio, "2412-153948-0000")
    audio = np.concatenate([first, second])
    audio = np.pad(audio, (0, int(29.9 * RATE_HZ) - len(audio)))
    transcript = stt.transcribe(audio)
    assert word_error_rate(f"{first_text} {second_text}", transcript.text) < 0.15


def test_empty_and_tiny_inputs(stt: WhisperStt) -> None:
    empty = stt.transcribe(np.zeros(0, dtype=np.float32))
    assert empty.text == "" and empty.audio_s == 0.0
    assert check_transcript(empty, voiced_share=None) is not None
    tiny = stt.transcribe(np.zeros(100, dtype=np.float32))
    assert check_transcript(tiny, voiced_share=None) is not None


def test_a_list_of_floats_is_accepted(stt: WhisperStt) -> None:
    transcript = stt.transcribe([0.0] * RATE_HZ)  # type: ignore[arg-type]
    assert transcript.audio_s == pytest.approx(1.0)


def test_stereo_input_is_refused(stt: WhisperStt) -> None:
    with pytest.raises(ValueError, match="mono"):
        stt.transcribe(np.zeros((RATE_HZ, 2), dtype=np.float32))


def noise_files(shared_audio: Path) -> list[Path]:
    folder = shared_audio / "noise"
    return sorted(p for p in folder.iterdir() if p.suffix in {".wav", ".ogg", ".flac"})


def test_every_noise_file_ends_with_no_transcript(stt: WhisperStt, shared_audio: Path) -> None:
    files = noise_files(shared_audio)
    assert files
    kept = {}
    for path in files:
        transcript = stt.transcribe(read_audio(path).samples)
        if check_transcript(transcript, voiced_share=None) is None:
            kept[path.name] = transcript.text
    assert kept == {}


def test_utterance_sized_noise_is_dropped_with_the_vad_share(
    stt: WhisperStt, shared_audio: Path
) -> None:
    # What the session sees: ~10 s stretches, with the VAD's share of voiced frames (near
    # zero for all of these files), so even a confident "Okay." is dropped.
    for path in noise_files(shared_audio):
        samples = read_audio(path).samples[: 10 * RATE_HZ]
        transcript = stt.transcribe(samples)
        assert check_transcript(transcript, voiced_share=0.05) is not None, path.name


# Loading a wrong model


def expect_model_error(path: Path) -> str:
    with pytest.raises(ModelError) as caught:
        WhisperStt.load(path, threads=1)
    message = str(caught.value)
    assert "\n" not in message
    assert "voiceagent models pull whisper-tiny.en" in message
    assert "voiceagent models verify" in message
    return message


@pytest.fixture
def real_model_dir(models_env: Path) -> Path:
    return resolve_model("whisper-tiny.en", ModelKind.STT)


def copy_without_weights(source: Path, target: Path) -> Path:
    target.mkdir()
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        if (source / name).is_file():
            shutil.copy(source / name, target / name)
    return target


def test_html_saved_as_model_bin(real_model_dir: Path, tmp_path: Path) -> None:
    folder = copy_without_weights(real_model_dir, tmp_path / "html-model")
    (folder / "model.bin").write_text("<!DOCTYPE html><html><body>404 Not Found</body></html>")
    message = expect_model_error(folder)
    assert str(folder / "model.bin") in message


@pytest.mark.parametrize("kept_share", [0.0, 0.5, 0.999])
def test_truncated_model_bin(real_model_dir: Path, tmp_path: Path, kept_share: float) -> None:
    folder = copy_without_weights(real_model_dir, tmp_path / "truncated")
    with (real_model_dir / "model.bin").open("rb") as whole:
        size = (real_model_dir / "model.bin").stat().st_size
        (folder / "model.bin").write_bytes(whole.read(int(size * kept_share)))
    message = expect_model_error(folder)
    assert str(folder / "model.bin") in message


def test_piper_voice_folder(models_env: Path) -> None:
    voice = resolve_model("piper-en_US-joe-medium", ModelKind.TTS)
    message = expect_model_error(voice.parent)
    assert str(voice.parent) in message
    message = expect_model_error(voice)  # the .onnx file itself
    assert str(voice) in message


def test_missing_folder(tmp_path: Path) -> None:
    message = expect_model_error(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in message


def test_closed_model_refuses_work(real_model_dir: Path) -> None:
    stt = WhisperStt.load(real_model_dir, threads=1)
    stt.close()
    stt.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        stt.transcribe(np.zeros(RATE_HZ, dtype=np.float32))


def test_unknown_compute_type(real_model_dir: Path) -> None:
    with pytest.raises(ModelError, match="compute type 'int3'"):
        WhisperStt.load(real_model_dir, threads=1, compute_type="int3")


def test_the_product_warms_whisper_up_on_the_bundled_question_on_both_paths(
    model_store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The full window's buffers are Whisper's largest: decoding it once at load keeps its heap
    # from appearing mid-conversation, at the first fallback.
    from voiceagent.config import Settings
    from voiceagent.paths import SAMPLE_QUESTION
    from voiceagent.pipeline import load_model

    calls: list[tuple[str, int]] = []
    for name in ("_decode_fast", "_decode_full"):
        original = getattr(WhisperStt, name)

        def spy(self, audio, _name=name, _original=original):
            calls.append((_name, audio.shape[0]))
            return _original(self, audio)

        monkeypatch.setattr(WhisperStt, name, spy)
    path = resolve_model("whisper-tiny.en", ModelKind.STT, store=model_store_dir)
    question = read_audio(SAMPLE_QUESTION).samples.shape[0]
    load_model(ModelKind.STT, path, Settings()).close()
    assert calls == [("_decode_fast", question), ("_decode_full", question)]

    # A broken install without the recording still loads, warmed on silence (fast path only).
    calls.clear()
    monkeypatch.setattr("voiceagent.paths.SAMPLE_QUESTION", Path("/nonexistent/question.wav"))
    load_model(ModelKind.STT, path, Settings()).close()
    assert calls == [("_decode_fast", RATE_HZ // 2)]


class EncodeSpy:
    """Stands between faster-whisper's model and CTranslate2's, noting each encoded length."""

    def __init__(self, model: object) -> None:
        self.model = model
        self.frames: list[int] = []

    def encode(self, features: object) -> object:
        self.frames.append(int(features.shape[-1]))  # type: ignore[attr-defined]
        return self.model.encode(features)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.model, name)


def test_the_fast_path_encodes_whole_seconds(
    stt: WhisperStt, shared_audio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A window for every input length made the encoder keep buffers per length: 200 calls of
    # random 10-20 s lengths grew its memory by 225 MB. On a 1 s grid it stays flat.
    audio = np.concatenate([speech(shared_audio, name)[0] for name in CLIPS[:4]])
    whisper = stt._loaded()
    spy = EncodeSpy(whisper.model)
    monkeypatch.setattr(whisper, "model", spy)
    for seconds in (3.0, 10.3, 12.77, 15.01):
        assert stt.transcribe(audio[: int(seconds * RATE_HZ)]).text
    # The utterance plus 1 s of silence, never under 10 s, rounded up to whole seconds.
    assert spy.frames == [1000, 1200, 1400, 1700]
