"""The product end to end with the real default models on real recordings, through files."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

pytestmark = pytest.mark.models

LATENCY_KEYS = ("eou", "stt", "llm_first_token", "tts_first_audio", "voice_to_voice")


def voiceagent(*args: str, env: dict[str, str], timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "voiceagent", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=timeout_s,
    )  # fmt: skip


@pytest.fixture
def env(models_env: Path, isolated_home: Path) -> dict[str, str]:
    return {**os.environ, "VOICEAGENT_MODELS": str(models_env), "VOICEAGENT_HOME": str(isolated_home)}


def events_of(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_talk_answers_a_recorded_question_into_a_wav(env, shared_audio, tmp_path):
    reply = tmp_path / "reply.wav"
    question = shared_audio / "speech" / "cmu_arctic_us_axb_a0005.wav"  # "Will we ever forget it."
    done = voiceagent("talk", "--input", str(question), "--output", str(reply), "--jsonl", env=env)
    assert done.returncode == 0, done.stderr
    events = events_of(done.stdout)
    names = [e["event"] for e in events]
    for name in ("listening", "speech_start", "speech_end", "transcript", "reply", "turn"):
        assert name in names, names
    assert all("t_s" in e for e in events)
    turn = next(e for e in events if e["event"] == "turn")
    assert "forget" in turn["user_text"].lower()
    assert turn["reply_text"].strip()
    for key in LATENCY_KEYS:
        assert turn["latency_ms"][key] is not None and turn["latency_ms"][key] >= 0, key
    assert turn["latency_ms"]["voice_to_voice"] >= turn["latency_ms"]["eou"]
    start = next(e for e in events if e["event"] == "speech_start")
    end = next(e for e in events if e["event"] == "speech_end")
    assert 0.0 <= start["audio_s"] < end["audio_s"] <= 2.0
    audio, rate = soundfile.read(reply, dtype="float32")
    assert rate == 22050
    assert float(np.sqrt(np.mean(audio**2))) > 0.01  # a real voice, not silence
    # The session log has the turn, readable only by the user.
    logs = list((Path(env["VOICEAGENT_HOME"]) / "sessions").glob("*.jsonl"))
    assert len(logs) == 1
    assert oct(logs[0].stat().st_mode & 0o777) == "0o600"
    record = json.loads(logs[0].read_text().splitlines()[0])
    assert record["user_text"] == turn["user_text"]


def test_listen_only_prints_each_utterance(env, shared_audio):
    path = shared_audio / "turns" / "sentencesWithSilences.wav"
    done = voiceagent("talk", "--input", str(path), "--no-reply", "--jsonl", "--fast", env=env)
    assert done.returncode == 0, done.stderr
    events = events_of(done.stdout)
    transcripts = [e["text"] for e in events if e["event"] == "transcript"]
    assert len(transcripts) >= 2
    assert not [e for e in events if e["event"] == "reply"]


@pytest.mark.parametrize(
    ("flags", "wait_s"),
    [
        ((), 0.75),  # a file cannot hear us: an answer that started too early is taken back
        (("--eou-max-silence-ms", "1500"), 1.5),  # the half-duplex longest wait
        (("--no-reply",), 1.5),  # only listening: a turn ended too early would stay ended
    ],
)
def test_a_sentence_left_hanging_in_a_file_waits_the_longest_wait(
    env, shared_audio, tmp_path, flags, wait_s
):
    """The recording stops mid-sentence ("as an example of fine typography,"): the turn ends
    after the longest wait, 750 ms from a file by default; the user can ask for another."""
    path = shared_audio / "speech" / "LJ001-0006.wav"
    output = ("--output", str(tmp_path / "reply.wav"))
    done = voiceagent("talk", "--input", str(path), *output, "--jsonl", *flags, env=env)
    assert done.returncode == 0, done.stderr
    ends = [e for e in events_of(done.stdout) if e["event"] == "speech_end"]
    assert len(ends) == 1
    waited_s = ends[0]["decided_audio_s"] - ends[0]["audio_s"]
    assert wait_s <= waited_s <= wait_s + 0.05, waited_s


def test_a_reader_going_on_after_a_turn_ended_too_soon_is_one_turn_transcribed_whole(
    env, shared_audio, tmp_path
):
    # LJ001-0016 with its pause after "perfection," stretched from 0.35 s to 1 s: the turn
    # ends there (the words end a sentence) and the reader goes on. The words before the
    # pause must be transcribed again with the rest, not the second half alone.
    audio, rate = soundfile.read(shared_audio / "speech" / "LJ001-0016.wav", dtype="float32")
    cut = int(3.0 * rate)  # inside the pause (2.88-3.23 s)
    stretched = np.concatenate([audio[:cut], np.zeros(int(0.65 * rate), np.float32), audio[cut:]])
    source = tmp_path / "paused.wav"
    soundfile.write(source, stretched, rate)
    done = voiceagent(
        "talk", "--input", str(source), "--output", str(tmp_path / "reply.wav"), "--jsonl",
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = events_of(done.stdout)
    transcripts = [e for e in events if e["event"] == "transcript"]
    assert [t["continues"] for t in transcripts] == [False, True], transcripts
    first, whole = (t["text"].lower() for t in transcripts)
    assert "middle ages" in first and "natural" not in first
    assert "middle ages" in whole and "natural" in whole
    assert transcripts[1]["audio_s"] > transcripts[0]["audio_s"] + 2.0
    turns = [e for e in events if e["event"] == "turn"]
    assert turns[-1]["user_text"] == transcripts[1]["text"]


@pytest.mark.parametrize(
    "name",
    ["doing_the_dishes.wav", "near_silence.wav", "Kevin_MacLeod_-_Vibe_Ace.ogg",
     "glacier-bay-humpback.ogg", "manolo_camp-morning_coffee.wav"],
)  # fmt: skip
def test_noise_and_music_make_no_turn_and_no_transcript(env, shared_audio, name):
    done = voiceagent(
        "talk", "--input", str(shared_audio / "noise" / name), "--no-reply", "--jsonl", "--fast",
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = events_of(done.stdout)
    assert [e for e in events if e["event"] in ("transcript", "turn")] == []
    transcribed = voiceagent("transcribe", str(shared_audio / "noise" / name), "--json", env=env)
    assert transcribed.returncode == 0, transcribed.stderr
    row = json.loads(transcribed.stdout)
    assert row["text"] == "" and row["dropped"], row  # dropped, and said so


def test_transcribe_keeps_the_speech_of_a_long_file_and_drops_its_music(env, shared_audio, tmp_path):
    # Over 30 s a file is cut at pauses and each chunk judged alone: 25 s of music, then
    # two recordings of speech. The music gives no words; the speech is all there.
    from voiceagent.audio.files import read_audio, write_wav

    music = read_audio(shared_audio / "noise" / "Kevin_MacLeod_-_Vibe_Ace.ogg").samples
    names = ["jfk", "LJ001-0001"]
    speech = [
        read_audio(next((shared_audio / "speech").glob(f"{name}.*[!t]"))).samples
        for name in names
    ]
    pause = np.zeros(16000, dtype=np.float32)
    mixed = tmp_path / "music_then_talk.wav"
    write_wav(mixed, np.concatenate([music[: 25 * 16000], pause, speech[0], pause, speech[1]]), 16000)
    done = voiceagent("transcribe", str(mixed), "--json", env=env)
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert row["dropped"] is None and row["audio_s"] > 30, row
    text = row["text"].lower()
    assert text.startswith("and so my fellow americans"), text  # nothing from the music
    assert "what you can do for your country" in text and "printing" in text, text


def test_transcribe_json_fields(env, shared_audio):
    path = shared_audio / "speech" / "jfk.flac"
    done = voiceagent("transcribe", str(path), "--json", env=env)
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert set(row) >= {"file", "text", "audio_s", "stt_ms"}
    assert "ask not what your country can do for you" in row["text"].lower()
    assert 10.5 < row["audio_s"] < 11.5
    assert row["stt_ms"] > 0


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"hello, this is not audio\n", "not audio")],
)
def test_bad_audio_is_one_line_and_exit_1(env, tmp_path, content, message):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    for command in (("transcribe", str(bad)), ("talk", "--input", str(bad), "--no-log")):
        done = voiceagent(*command, env=env)
        assert done.returncode == 1, done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "bad.wav" in lines[0], done.stderr
        assert "Traceback" not in done.stderr


def test_missing_model_names_the_fix(env, tmp_path):
    env = {**env, "VOICEAGENT_MODELS": str(tmp_path / "empty-store")}
    done = voiceagent("talk", "--input", "x.wav", env=env)
    assert done.returncode == 1
    assert "voiceagent models pull" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_say_writes_speech(env, tmp_path):
    out = tmp_path / "say.wav"
    done = voiceagent("say", "It is 3:45 pm and 21 °C.", "--output", str(out), env=env)
    assert done.returncode == 0, done.stderr
    audio, rate = soundfile.read(out, dtype="float32")
    assert len(audio) / rate > 1.0
    assert float(np.sqrt(np.mean(audio**2))) > 0.01


def test_chat_replies_to_typed_lines(env):
    done = subprocess.run(
        [sys.executable, "-m", "voiceagent", "chat"], input="What is the capital of France?\n",
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_listen_only_shows_partial_text_while_the_user_speaks(env, shared_audio):
    path = shared_audio / "speech" / "jfk.flac"
    done = voiceagent("talk", "--input", str(path), "--no-reply", "--jsonl", "--no-log", env=env)
    assert done.returncode == 0, done.stderr
    events = events_of(done.stdout)
    partials = [e for e in events if e["event"] == "partial_transcript"]
    assert len(partials) >= 3
    final = [e["text"].lower() for e in events if e["event"] == "transcript"][-1]
    assert "ask not" in final
    # Each partial comes before the final transcript of its utterance.
    last_partial = max(i for i, e in enumerate(events) if e["event"] == "partial_transcript")
    last_final = max(i for i, e in enumerate(events) if e["event"] == "transcript")
    assert last_partial < last_final


def test_without_an_input_device_talk_replays_the_sample_question(env, tmp_path):
    env = {k: v for k, v in env.items() if not k.startswith("PULSE_")}
    listed = voiceagent("devices", "--json", env=env)
    if any(d["max_input_channels"] > 0 for d in json.loads(listed.stdout or "[]")):
        pytest.skip("this machine has an input device")
    done = subprocess.run(
        [sys.executable, "-m", "voiceagent", "talk", "--jsonl", "--no-log"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=300,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    notice = [line for line in done.stderr.splitlines() if line.startswith("voiceagent:")]
    assert len(notice) == 1 and "no input device" in notice[0]
    replies = list(tmp_path.glob("voiceagent-reply-*.wav"))
    assert len(replies) == 1 and str(replies[0].name) in notice[0]
    turn = next(e for e in events_of(done.stdout) if e["event"] == "turn")
    assert "forget" in turn["user_text"].lower()
    audio, _ = soundfile.read(replies[0], dtype="float32")
    assert float(np.sqrt(np.mean(audio**2))) > 0.01


def test_enter_on_the_terminal_stops_the_reply(env, shared_audio, tmp_path):
    # Standard input is a terminal (a pseudo-terminal here): Enter pressed a second after the
    # answer began stops it, in half duplex too, where a voice over it would not be heard.
    reply = tmp_path / "reply.wav"
    question = shared_audio / "speech" / "LJ001-0002.wav"  # answered in ~10 s of speech
    master, terminal = pty.openpty()
    talk = subprocess.Popen(
        [sys.executable, "-m", "voiceagent", "talk", "--input", str(question),
         "--output", str(reply), "--jsonl", "--duplex", "half"],
        stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    os.close(terminal)
    events = []
    try:
        assert talk.stdout is not None
        for line in talk.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "thinking":
                time.sleep(1.0)
                os.write(master, b"\n")
        talk.wait(timeout=120)
    finally:
        talk.kill()
        os.close(master)
    assert talk.returncode == 0, talk.stderr.read() if talk.stderr else ""
    interrupted = [e for e in events if e["event"] == "interrupted"]
    assert len(interrupted) == 1 and interrupted[0]["by"] == "key", events
    assert interrupted[0]["talked_over_ms"] == 0.0
    turn = next(e for e in events if e["event"] == "turn")
    heard = interrupted[0]["played_text"]
    # The turn has the reply as written, or, cut while the LLM still wrote, as heard.
    assert heard and turn["reply_text"].startswith(heard)
    audio, rate = soundfile.read(reply, dtype="float32")
    assert float(np.abs(audio).max()) > 0.1  # it spoke, then
    assert len(audio) / rate <= interrupted[0]["t_s"] + 0.2  # nothing after the key
