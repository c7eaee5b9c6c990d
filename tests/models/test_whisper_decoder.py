"""The torch Whisper decoder and its drafts, on the real tiny.en model and real recordings."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import jiwer
import numpy as np
import pytest
from whisper_normalizer.english import EnglishTextNormalizer

from voiceagent.audio.files import read_audio
from voiceagent.backends import whisper_decoder
from voiceagent.backends.faster_whisper import DEFAULT_WHISPER_OPTIONS, WhisperStt
from voiceagent.backends.whisper_decoder import (
    UnsupportedModel,
    WhisperDecoder,
    read_ctranslate2_variables,
)
from voiceagent.models.catalog import ModelKind
from voiceagent.models.store import resolve_model

pytestmark = pytest.mark.models

RATE_HZ = 16000
normalise = EnglishTextNormalizer()
CLIPS = [
    "jfk",
    "1272-128104-0000",
    "LJ001-0001",
    "LJ001-0008",
    "LJ001-0011",
    "cmu_arctic_us_aew_a0003",
    "sense_and_sensibility_01_austen_64kb-0930",
]


@pytest.fixture(scope="module")
def model_dir(model_store_dir: Path) -> Path:
    return resolve_model("whisper-tiny.en", ModelKind.STT, store=model_store_dir)


@pytest.fixture(scope="module")
def stt(model_dir: Path) -> Iterator[WhisperStt]:
    with WhisperStt.load(model_dir, threads=1) as loaded:
        assert loaded._decoder is not None, "the torch decoder did not load"
        yield loaded


def speech(shared_audio: Path, name: str) -> tuple[np.ndarray, str]:
    folder = shared_audio / "speech"
    audio = next(p for p in folder.iterdir() if p.stem == name and p.suffix != ".txt")
    return read_audio(audio).samples, (folder / f"{name}.txt").read_text()


def encoded(stt: WhisperStt, audio: np.ndarray) -> np.ndarray:
    """The fast path's encoder output for ``audio``, caught on its way to the decoder."""
    caught: list[np.ndarray] = []
    decoder = stt._decoder
    assert decoder is not None
    original = decoder.decode

    def spy(encoder_output: np.ndarray, *args: object, **kwargs: object) -> object:
        caught.append(np.array(encoder_output))
        return original(encoder_output, *args, **kwargs)  # type: ignore[arg-type]

    decoder.decode = spy  # type: ignore[method-assign]
    try:
        stt.transcribe(audio)
    finally:
        del decoder.decode
    return caught[0]


def decode(stt: WhisperStt, memory: np.ndarray, max_new: int, draft: list[int]) -> whisper_decoder.DecoderOutput:
    return stt._decode_tokens(memory, max_new, draft)


def test_the_words_so_far_are_a_draft_that_is_checked_not_stepped(
    stt: WhisperStt, shared_audio: Path
) -> None:
    audio, reference = speech(shared_audio, "LJ001-0001")
    stt._drafts.clear()  # type: ignore[union-attr]
    undrafted = stt.transcribe_detailed(audio)
    assert undrafted.fast_attempt is not None and undrafted.fast_attempt.drafted_tokens == 0

    stt._drafts.clear()  # type: ignore[union-attr]
    stt.transcribe(audio[: -RATE_HZ])  # a partial transcript, one second before the end
    drafted = stt.transcribe_detailed(audio)
    assert drafted.fast_attempt is not None
    assert drafted.fast_attempt.drafted_tokens >= 15  # of ~30: the words of that partial
    assert drafted.fallback is None
    assert jiwer.wer(normalise(reference), normalise(drafted.transcript.text)) < 0.1
    assert normalise(drafted.transcript.text) == normalise(undrafted.transcript.text)


def test_a_wrong_draft_changes_nothing(stt: WhisperStt, shared_audio: Path) -> None:
    audio, _ = speech(shared_audio, "jfk")
    memory = encoded(stt, audio)
    plain = decode(stt, memory, 60, [])
    other = stt._tokenizer.encode(" The quick brown fox jumps over the lazy dog again and again.")
    drafted = decode(stt, memory, 60, other)
    assert drafted.tokens == plain.tokens
    assert drafted.drafted == 0
    assert drafted.sum_logprob == pytest.approx(plain.sum_logprob, abs=1e-4)
    assert "country" in stt._tokenizer.decode(plain.tokens)


def test_a_draft_never_overruns_the_token_bound(stt: WhisperStt, shared_audio: Path) -> None:
    audio, _ = speech(shared_audio, "jfk")
    memory = encoded(stt, audio)
    plain = decode(stt, memory, 60, [])
    for bound in (1, 5, len(plain.tokens) - 1):
        out = decode(stt, memory, bound, plain.tokens)
        assert len(out.tokens) == bound
        assert out.tokens == plain.tokens[:bound]


def test_the_drafted_decoder_is_as_accurate_as_ctranslate2s(
    stt: WhisperStt, shared_audio: Path
) -> None:
    ctranslate2 = stt.with_options(replace(DEFAULT_WHISPER_OPTIONS, torch_decoder=False))
    assert ctranslate2._decoder is None
    references, ours, theirs = [], [], []
    for name in CLIPS:
        audio, reference = speech(shared_audio, name)
        stt.transcribe(audio[: -RATE_HZ // 2])  # the draft: all but the last half second
        references.append(normalise(reference))
        ours.append(normalise(stt.transcribe(audio).text))
        theirs.append(normalise(ctranslate2.transcribe(audio).text))
    ours_wer, theirs_wer = jiwer.wer(references, ours), jiwer.wer(references, theirs)
    assert ours_wer <= theirs_wer + 0.01, (ours_wer, theirs_wer)


def test_no_speech_probability_flags_silence(stt: WhisperStt, shared_audio: Path) -> None:
    quiet = np.zeros(3 * RATE_HZ, dtype=np.float32)
    speech_audio, _ = speech(shared_audio, "jfk")
    assert decode(stt, encoded(stt, quiet), 20, []).no_speech_prob > 0.5
    assert decode(stt, encoded(stt, speech_audio), 20, []).no_speech_prob < 0.2


def own_copy(model_dir: Path, target: Path) -> Path:
    """The model under another path (the module's fixture holds the shared decoder of the
    store's path)."""
    target.mkdir()
    for source in model_dir.iterdir():
        if source.is_file():
            try:
                os.link(source, target / source.name)
            except OSError:
                shutil.copy2(source, target / source.name)
    return target


def test_copies_share_one_decoder_until_the_last_is_closed(model_dir: Path, tmp_path: Path) -> None:
    folder = own_copy(model_dir, tmp_path / "tiny")
    first = WhisperStt.load(folder, threads=1)
    second = WhisperStt.load(folder, threads=1)
    try:
        assert first._decoder is not None and first._decoder is second._decoder
        assert first._drafts is second._drafts
        view = first.with_options(replace(DEFAULT_WHISPER_OPTIONS, repeated_ngram_words=5))
        assert view._decoder is first._decoder
        view.close()  # a view closes the model, but only its loader releases the decoder
        assert folder.resolve() in whisper_decoder._shared
    finally:
        first.close()
        assert folder.resolve() in whisper_decoder._shared
        second.close()
    assert folder.resolve() not in whisper_decoder._shared


def test_a_model_the_decoder_cannot_read_is_decoded_by_ctranslate2(
    model_dir: Path, shared_audio: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model_dir = own_copy(model_dir, tmp_path / "tiny")
    def refuse(cls: type, folder: Path, threads: int) -> WhisperDecoder:
        raise UnsupportedModel("a layout it does not know")

    monkeypatch.setattr(WhisperDecoder, "load", classmethod(refuse))
    with WhisperStt.load(model_dir, threads=1) as loaded:
        assert loaded._decoder is None
        audio, reference = speech(shared_audio, "jfk")
        text = loaded.transcribe(audio).text
    assert jiwer.wer(normalise(reference), normalise(text)) < 0.1
    assert model_dir.resolve() not in whisper_decoder._shared


@pytest.mark.parametrize(
    "content",
    [b"", b"<!DOCTYPE html><html>404</html>", (9).to_bytes(4, "little") + b"\0" * 64],
    ids=["empty", "html", "unknown-format"],
)
def test_unreadable_model_bin(tmp_path: Path, content: bytes) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(content)
    with pytest.raises(UnsupportedModel):
        read_ctranslate2_variables(target, "decoder/")


def test_a_truncated_model_bin_is_unreadable(model_dir: Path, tmp_path: Path) -> None:
    data = (model_dir / "model.bin").read_bytes()
    target = tmp_path / "model.bin"
    target.write_bytes(data[: len(data) // 3])
    with pytest.raises(UnsupportedModel):
        read_ctranslate2_variables(target, "decoder/")
