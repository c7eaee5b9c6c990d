"""The per-utterance runner on fake models and a fake clock: the bookkeeping, not the speed."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from voiceagent.audio.clock import FakeClock
from voiceagent.audio.files import write_wav
from voiceagent.bench.corpus import Utterance
from voiceagent.bench.pool import SessionModels, TimedLlm, TimedTts
from voiceagent.bench.runner import find_speech, run_utterance
from voiceagent.config import Settings
from voiceagent.session import Models
from voiceagent.testing.fakes import FakeLlm, FakeStt, FakeTts, FakeVad, scripted_audio

pytestmark = pytest.mark.unit


def test_offline_speech_span_is_frame_exact():
    audio = scripted_audio([(0.5, 1.5)], 2.0)
    span = find_speech(FakeVad(), audio)
    assert span is not None
    assert span.start_s == pytest.approx(15 * 512 / 16000)  # the frame holding 0.5 s
    assert span.end_s == pytest.approx(47 * 512 / 16000)  # the end of the frame holding 1.5 s
    assert find_speech(FakeVad(), np.zeros(16000, np.float32)) is None


def test_speech_to_the_last_sample_ends_at_the_clip_end():
    audio = scripted_audio([(0.2, 1.01)], 1.01)
    span = find_speech(FakeVad(), audio)
    assert span is not None and span.end_s == pytest.approx(len(audio) / 16000)


def test_a_blip_apart_from_the_speech_is_not_speech():
    # 64 ms of noise 320 ms after the speech (applause at the end of jfk.flac) is left out;
    # 300 ms of voice after a pause is a word, and counts.
    blip = scripted_audio([(0.5, 1.5), (1.82, 1.88)], 2.5)
    span = find_speech(FakeVad(), blip)
    assert span is not None and span.end_s == pytest.approx(47 * 512 / 16000)
    word = scripted_audio([(0.5, 1.5), (1.82, 2.12)], 2.5)
    span = find_speech(FakeVad(), word)
    assert span is not None and span.end_s > 2.1
    # Short gaps inside speech do not split it: the short stretch after one still counts.
    gap = scripted_audio([(0.5, 1.5), (1.6, 1.7)], 2.5)
    span = find_speech(FakeVad(), gap)
    assert span is not None and span.end_s > 1.69
    assert find_speech(FakeVad(), scripted_audio([(0.5, 0.6)], 1.0)) is None


def _models(texts: list[str], reply: str) -> SessionModels:
    llm, tts = TimedLlm(FakeLlm(reply)), TimedTts(FakeTts())
    return SessionModels(Models(vad=FakeVad(), stt=FakeStt(texts), llm=llm, tts=tts), llm, tts)


def _run(tmp_path, audio, session_models, realtime=True, reference="what time is it"):
    wav = tmp_path / "u.wav"
    write_wav(wav, audio, 16000)
    speech = find_speech(FakeVad(), audio)
    utterance = Utterance(wav, "u", "c", reference)
    # A clock that starts at 0 would sit inside the half-duplex echo guard (our "voice" is
    # taken to play until 0.3 s), so the fake clock starts where a real one would be: later.
    try:
        return asyncio.run(
            run_utterance(
                session_models,
                utterance,
                len(audio) / 16000,
                speech,
                Settings(threads=1),
                realtime=realtime,
                clock=FakeClock(start_s=1000.0),
                scratch_dir=tmp_path,
            )  # fmt: skip
        )
    finally:
        session_models.models.close()


def test_one_utterance_gives_one_turn_measured_from_the_true_end(tmp_path):
    audio = scripted_audio([(0.5, 1.5)], 2.0)
    result = _run(tmp_path, audio, _models(["What time is it?"], "It is noon. Bye now."))
    assert result.turns == 1 and result.error is None
    assert result.hypothesis == "What time is it?"
    assert result.reply == "It is noon. Bye now."
    assert result.speech_end_s == pytest.approx(1.504)
    lat = result.latency_ms
    assert set(lat) >= {"eou", "stt", "llm_first_token", "tts_first_audio", "voice_to_voice"}
    # The fake VAD stops where the offline pass ends, so both clocks agree here.
    assert lat["voice_to_voice"] == pytest.approx(lat["voice_to_voice_session"], abs=0.2)
    assert lat["eou_true"] == pytest.approx(lat["eou"], abs=0.2)
    assert lat["voice_to_voice"] >= lat["eou_true"] >= 0
    assert result.llm_tokens == 5  # FakeLlm streams one delta per word
    assert result.tts_audio_s == pytest.approx(0.5)  # FakeTts: 100 ms per word
    assert result.stt_audio_s > 1.0
    assert not list(tmp_path.glob("voiceagent-bench-*")), "scratch folder left behind"


def test_as_fast_as_possible_keeps_the_words_and_drops_the_latencies(tmp_path):
    audio = scripted_audio([(0.5, 1.5)], 2.0)
    result = _run(tmp_path, audio, _models(["What time is it?"], "Noon."), realtime=False)
    assert result.turns == 1 and result.hypothesis == "What time is it?"
    assert result.latency_ms == {}


def test_silence_gives_no_turn(tmp_path):
    audio = np.zeros(32000, np.float32)
    result = _run(tmp_path, audio, _models(["ghost"], "Hi."), reference=None)
    assert result.turns == 0 and result.hypothesis == "" and result.speech_end_s is None
    assert not result.expects_speech


def test_a_transcript_that_says_the_last_one_again_replaces_it(tmp_path):
    # The user goes on 300 ms after the answer began (900 ms after their voice stopped): the
    # words before the pause are transcribed again with the rest, and counted once.
    audio = scripted_audio([(0.5, 2.0), (2.9, 4.0)], 5.0)
    first, whole = "It was natural.", "It was natural therefore to go on."
    reply = "This is a long answer that keeps going and going."
    result = _run(tmp_path, audio, _models([first, whole], reply), reference=whole)
    assert result.hypothesis == whole
    assert result.turns == 2  # the answer that was cut off was a turn taken too soon
