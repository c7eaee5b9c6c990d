"""The Piper voice with the real default voice (en_US-joe-medium)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from voiceagent.backends.piper import PiperTts
from voiceagent.errors import ModelError
from voiceagent.models.catalog import ModelKind
from voiceagent.models.store import resolve_model

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def voice_path(model_store_dir: Path) -> Path:
    return resolve_model("piper-en_US-joe-medium", ModelKind.TTS, store=model_store_dir)


@pytest.fixture(scope="module")
def tts(voice_path: Path) -> Iterator[PiperTts]:
    voice = PiperTts.load(voice_path, threads=1)
    yield voice
    voice.close()


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def test_sample_rate_comes_from_the_voice_config(tts: PiperTts, voice_path: Path) -> None:
    config = json.loads(voice_path.with_name(voice_path.name + ".json").read_text())
    assert tts.sample_rate_hz == config["audio"]["sample_rate"] == 22050


def test_session_uses_the_requested_threads(tts: PiperTts) -> None:
    assert tts.threads == 1


def test_short_sentence_is_plausible_speech(tts: PiperTts) -> None:
    chunks = list(tts.synthesize("Hello there."))
    assert chunks
    for chunk in chunks:
        assert chunk.dtype == np.float32
        assert chunk.ndim == 1
        assert np.all(np.abs(chunk) <= 1.0)
    audio = np.concatenate(chunks)
    duration_s = audio.size / tts.sample_rate_hz
    assert 0.3 <= duration_s <= 3.0
    assert rms(audio) > 0.01


def test_longer_text_gives_longer_audio_one_chunk_per_sentence(tts: PiperTts) -> None:
    short = np.concatenate(list(tts.synthesize("Hello there.")))
    chunks = list(tts.synthesize("Hello there. The capital of France is Paris. Goodbye!"))
    assert len(chunks) == 3
    assert sum(c.size for c in chunks) > 2 * short.size
    assert all(rms(c) > 0.01 for c in chunks)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_yields_nothing(tts: PiperTts, text: str) -> None:
    assert list(tts.synthesize(text)) == []


def test_closed_voice_refuses_to_speak(voice_path: Path) -> None:
    voice = PiperTts.load(voice_path, threads=1, warm_up=False)
    voice.close()
    with pytest.raises(RuntimeError, match="closed"):
        list(voice.synthesize("Hello."))


# -- broken voices -----------------------------------------------------------------------------


def _copy_voice(voice_path: Path, target: Path, *, with_config: bool = True) -> Path:
    shutil.copyfile(voice_path, target)
    if with_config:
        shutil.copyfile(voice_path.with_name(voice_path.name + ".json"), f"{target}.json")
    return target


def _load_error(path: Path) -> str:
    """The error's text with the path taken out (tmp paths contain the test's name)."""
    with pytest.raises(ModelError) as info:
        PiperTts.load(path)
    return str(info.value).replace(str(path.parent), "<dir>")


def test_missing_config(voice_path: Path, tmp_path: Path) -> None:
    voice = _copy_voice(voice_path, tmp_path / "voice.onnx", with_config=False)
    assert "voice.onnx.json is missing" in _load_error(voice)


def test_missing_voice_file(tmp_path: Path) -> None:
    assert "does not exist" in _load_error(tmp_path / "nothing.onnx")


def test_gguf_passed_as_a_voice(model_store_dir: Path, tmp_path: Path) -> None:
    llm = resolve_model("smollm2-135m-instruct", ModelKind.LLM, store=model_store_dir)
    assert "GGUF language model" in _load_error(llm)


def test_truncated_onnx(voice_path: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.onnx"
    with voice_path.open("rb") as src:
        cut.write_bytes(src.read(voice_path.stat().st_size // 2))
    shutil.copyfile(voice_path.with_name(voice_path.name + ".json"), f"{cut}.json")
    assert "not a valid ONNX model" in _load_error(cut)


def test_random_bytes(voice_path: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    shutil.copyfile(voice_path.with_name(voice_path.name + ".json"), f"{junk}.json")
    assert "not a valid ONNX model" in _load_error(junk)


def test_html_page_saved_as_a_voice(voice_path: Path, tmp_path: Path) -> None:
    page = tmp_path / "page.onnx"
    page.write_text("<!DOCTYPE html><html>404</html>")
    assert "HTML page" in _load_error(page)


def test_other_onnx_model_is_not_a_voice(model_store_dir: Path, tmp_path: Path) -> None:
    vad = resolve_model("silero-vad", ModelKind.VAD, store=model_store_dir)
    fake = tmp_path / "vad.onnx"
    shutil.copyfile(vad, fake)
    shutil.copyfile(next(model_store_dir.glob("piper-*/*.onnx.json")), f"{fake}.json")
    assert "not a Piper voice" in _load_error(fake)


@pytest.mark.parametrize(
    ("config_text", "message"),
    [("{not json", "cannot read the voice config"), ('{"audio": {}}', "not a Piper voice config")],
)
def test_bad_config(voice_path: Path, tmp_path: Path, config_text: str, message: str) -> None:
    voice = _copy_voice(voice_path, tmp_path / "voice.onnx", with_config=False)
    Path(f"{voice}.json").write_text(config_text)
    assert message in _load_error(voice)
