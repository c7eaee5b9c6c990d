"""Scripted timelines for the session's turn-taking: fakes for the models, real logic.

Audio is made of silence and loud bursts ("speech"), played through the real FileSource at
real-time pace on a fake clock, so a 10 s timeline runs in a fraction of a second.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voiceagent.audio.clock import FakeClock
from voiceagent.audio.files import write_wav
from voiceagent.audio.sinks import WavFileSink
from voiceagent.audio.sources import FileSource
from voiceagent.events import (
    CollectedEvents,
    Dropped,
    Interrupted,
    PartialTranscript,
    Reply,
    SpeechEnd,
    SpeechStart,
    TranscriptEvent,
    Turn,
)
from voiceagent.interfaces import Role, Transcript
from voiceagent.session import Duplex, Models, SessionOptions, VoiceSession
from voiceagent.session_log import SessionLog
from voiceagent.testing.fakes import FakeLlm, FakeStt, FakeTts, FakeVad, scripted_audio
from voiceagent.turns.endpointing import CUT_IN_MAX_SILENCE_MS, EndpointingConfig
from voiceagent.turns.sentences import whole_sentences

pytestmark = pytest.mark.unit

LONG_REPLY = " ".join(["This is a long answer that keeps going."] * 6)


class WeakVoiceVad(FakeVad):
    """Like FakeVad, and 0.6 for a frame of faint voice (RMS 0.05-0.2): voiced, but weak."""

    def probability(self, frame: np.ndarray) -> float:
        rms = float(np.sqrt(np.mean(np.square(frame))))
        return 1.0 if rms > 0.2 else 0.6 if rms > 0.05 else 0.0


class SettlingClock(FakeClock):
    """A FakeClock on which model calls take only the time a test gives them: before the input
    moves time on, every call already made to a model's worker finishes, so the timeline does
    not depend on how fast the machine runs the fakes' threads. On a plain FakeClock the input
    runs ahead while they work: with both cores busy, 1-4 of these tests failed in 9 of 10 runs
    (replies began late). A fake that stands for a slow model calls :meth:`model_sleep` on its
    worker thread: the clock moves to the end of that wait (no further), lets the call finish,
    and only then goes on."""

    def __init__(self) -> None:
        super().__init__()
        self.models: Models | None = None
        self._waits = threading.Condition()
        self._wake_at_s: dict[int, float] = {}  # worker thread -> fake time its wait ends

    def model_sleep(self, seconds: float) -> None:
        """On a model's worker thread: take ``seconds`` of fake time, as a slow model would."""
        if seconds <= 0:
            return
        me = threading.get_ident()
        with self._waits:
            self._wake_at_s[me] = self.now_s() + seconds
            deadline = time.monotonic() + 10.0  # a session that ended early cannot hang us
            while self.now_s() < self._wake_at_s[me] and time.monotonic() < deadline:
                self._waits.wait(0.05)
            del self._wake_at_s[me]

    def _all_waiting(self) -> bool:
        """Every busy worker is waiting in model_sleep (or none is busy)."""
        assert self.models is not None
        with self._waits:
            busy = sum(w.busy for w in self.models.workers.values())
            return busy <= len(self._wake_at_s)

    async def _settle(self) -> None:
        """Until every busy worker is waiting in model_sleep, and the loop took in what the
        others returned."""
        deadline = time.monotonic() + 5.0
        while self.models is not None and time.monotonic() < deadline:
            if self._all_waiting():
                for _ in range(3):
                    await asyncio.sleep(0)
                if self._all_waiting():
                    return
            await asyncio.sleep(0.0005)

    async def sleep_until(self, t_s: float) -> None:
        while True:
            await self._settle()
            with self._waits:
                due = min(self._wake_at_s.values(), default=None)
            if due is None or due > t_s:
                break
            self.set(due)  # a slow model's call ends first, then time goes on
            with self._waits:
                self._waits.notify_all()
            await self._wait_woken(due)
        await super().sleep_until(t_s)

    async def _wait_woken(self, due_s: float) -> None:
        """Until the waits due at ``due_s`` have left model_sleep."""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            with self._waits:
                if all(t > due_s for t in self._wake_at_s.values()):
                    return
            await asyncio.sleep(0.0005)


class KeyPressedAt:
    """The input, with a key pressed in the terminal (``session.stop_reply()``) once the audio
    reaches ``at_s``: on the event loop's thread, where ``talk`` delivers it."""

    def __init__(self, source: FileSource, at_s: float) -> None:
        self._source, self.at_s = source, at_s
        self.session: VoiceSession | None = None
        self.stopped: bool | None = None  # what stop_reply returned

    @property
    def overflow_count(self) -> int:
        return self._source.overflow_count

    async def frames(self):  # noqa: ANN201
        async for frame in self._source.frames():
            if self.stopped is None and frame.sample_index / 16000 >= self.at_s:
                assert self.session is not None
                self.stopped = self.session.stop_reply()
            yield frame


def run_session(
    tmp_path: Path,
    speech_s: list[tuple[float, float]],
    total_s: float,
    texts: list[str],
    *,
    reply: str = "Hello there. How can I help you today?",
    duplex: Duplex = Duplex.HALF,
    max_turns: int | None = None,
    input_hears_output: bool = True,
    partial_every_s: float | None = None,
    stt: FakeStt | None = None,
    stt_partial: FakeStt | None = None,
    llm: FakeLlm | None = None,
    weak_frames_at_s: tuple[float, ...] = (),
    speculate: bool = True,
    turn_log: SessionLog | None = None,
    clock: SettlingClock | None = None,
    endpointing: EndpointingConfig | None = None,
    key_at_s: float | None = None,
) -> tuple[CollectedEvents, FakeStt, FakeLlm, VoiceSession]:
    audio = scripted_audio(speech_s, total_s)
    for at_s in weak_frames_at_s:  # one 32 ms frame of fainter voice, scored 0.6 (WeakVoiceVad)
        first = int(at_s * 16000)
        audio[first : first + 512] *= 0.3
    wav = tmp_path / "input.wav"
    write_wav(wav, audio, 16000)
    clock = clock if clock is not None else SettlingClock()
    source = FileSource.open(wav, realtime=True, clock=clock, trailing_silence_ms=2000)
    key = KeyPressedAt(source, key_at_s) if key_at_s is not None else None
    stt = stt if stt is not None else FakeStt(texts)
    llm = llm if llm is not None else FakeLlm(reply)
    tts = FakeTts()
    vad = WeakVoiceVad() if weak_frames_at_s else FakeVad()
    models = Models(vad=vad, stt=stt, llm=llm, tts=tts, stt_partial=stt_partial)
    clock.models = models
    sink = WavFileSink.open(tmp_path / "reply.wav", 16000, clock=clock, pad_to_clock=True)
    events = CollectedEvents()
    session = VoiceSession(
        models, key or source, sink, events, clock,
        SessionOptions(
            duplex=duplex, max_turns=max_turns, input_hears_output=input_hears_output,
            partial_every_s=partial_every_s, speculate=speculate,
            endpointing=endpointing or EndpointingConfig(),
        ),
        system_prompt="Be brief.", history_tokens=500, turn_log=turn_log,
    )  # fmt: skip
    if key is not None:
        key.session = session
    try:
        asyncio.run(session.run())
    finally:
        sink.close()
        models.close()
    return events, stt, llm, session


def test_one_utterance_makes_one_turn_with_every_latency(tmp_path):
    events, stt, llm, _ = run_session(tmp_path, [(0.5, 2.5)], 4.0, ["What time is it?"])
    starts = events.of(SpeechStart)
    ends = events.of(SpeechEnd)
    assert len(starts) == len(ends) == 1
    assert starts[0].audio_s == pytest.approx(0.5, abs=0.1)
    assert ends[0].audio_s == pytest.approx(2.5, abs=0.1)
    turns = events.of(Turn)
    assert len(turns) == 1
    turn = turns[0]
    assert turn.user_text == "What time is it?"
    assert turn.reply_text == "Hello there. How can I help you today?"
    for key in ("eou", "stt", "llm_first_token", "tts_first_audio", "voice_to_voice"):
        assert turn.latency_ms[key] is not None, key
    # Without a turn detector the turn ends after the 600 ms silence setting.
    assert 600 <= turn.latency_ms["eou"] < 700
    assert turn.speculative is True
    assert turn.reply_started_early is True
    assert len(llm.prompts) == 1  # the speculative reply was the one spoken
    assert llm.prompts[0][-1].content == "What time is it?"
    assert events.of(Reply)[0].text == turn.reply_text


def test_a_pause_mid_phrase_does_not_end_the_turn(tmp_path):
    # 700 ms pause after "I want to" (mid-phrase), then the user goes on.
    events, stt, llm, session = run_session(
        tmp_path, [(0.5, 1.5), (2.2, 3.2)], 6.0, ["I want to", "I want to go home."]
    )
    assert len(events.of(Turn)) == 1
    assert events.of(Turn)[0].user_text == "I want to go home."
    assert len(stt.calls) == 2  # the speculative transcript of the pause was thrown away
    assert stt.calls[1] > stt.calls[0]
    # A reply was started on "I want to" during the pause and abandoned when the user went on;
    # only the answer to the whole sentence was heard and kept.
    assert [p[-1].content for p in llm.prompts] == ["I want to", "I want to go home."]
    assert len(events.of(Reply)) == 1
    assert [m.content for m in session.history.messages()][-2:] == [
        "I want to go home.", "Hello there. How can I help you today?"
    ]


def test_silence_and_a_cough_make_no_turn(tmp_path):
    events, stt, _, _ = run_session(tmp_path, [(1.0, 1.1)], 4.0, ["phantom"])
    assert events.of(SpeechStart) == []
    assert events.of(Turn) == []
    assert stt.calls == []


def test_our_own_voice_repeated_back_is_dropped_as_echo(tmp_path):
    # The reply (0.7 s of fake voice) ends near 3.3 s; the microphone opens again 0.3 s later.
    reply = "The weather is sunny and warm today."
    events, _, _, _ = run_session(
        tmp_path, [(0.5, 2.0), (3.8, 5.0)], 10.0,
        ["What is the weather?", "the weather is sunny and warm today"], reply=reply,
    )  # fmt: skip
    assert len(events.of(Turn)) == 1
    drops = events.of(Dropped)
    assert [d.reason for d in drops] == ["echo"]


@pytest.mark.parametrize(
    ("second_burst", "input_hears_output"),
    [((3.8, 5.0), False), ((9.0, 10.5), True)],
    ids=["input-cannot-hear-us", "long-after-our-voice"],
)
def test_a_user_repeating_our_reply_is_answered_when_it_cannot_be_our_echo(
    tmp_path, second_burst, input_hears_output
):
    # A file cannot hear the assistant, and a microphone hears its echo only right after it
    # spoke: then the same words are the user's own.
    reply = "The weather is sunny and warm today."
    events, _, _, _ = run_session(
        tmp_path, [(0.5, 2.0), second_burst], 14.0,
        ["What is the weather?", "the weather is sunny and warm today"], reply=reply,
        input_hears_output=input_hears_output,
    )  # fmt: skip
    assert len(events.of(Turn)) == 2
    assert events.of(Dropped) == []


def test_half_duplex_ignores_speech_while_we_speak(tmp_path):
    # The second burst starts while the long reply (~4.8 s) is still playing.
    events, stt, _, _ = run_session(
        tmp_path, [(0.5, 2.0), (3.5, 4.5)], 12.0, ["Tell me a story.", "Stop."],
        reply=LONG_REPLY,
    )  # fmt: skip
    assert len(events.of(SpeechStart)) == 1
    assert events.of(Interrupted) == []
    assert len(events.of(Turn)) == 1


def test_speech_from_an_input_that_cannot_hear_us_interrupts_even_in_half_duplex(tmp_path):
    # A file cannot hear our voice: the second burst is the user going on, not an echo, so it
    # is not ignored; it stops the long reply and is answered as a turn of its own.
    events, stt, _, _ = run_session(
        tmp_path, [(0.5, 2.0), (3.5, 4.5)], 12.0, ["Tell me a story.", "Stop."],
        reply=LONG_REPLY, input_hears_output=False,
    )  # fmt: skip
    assert len(events.of(SpeechStart)) == 2
    assert len(events.of(Interrupted)) == 1
    assert [t.user_text for t in events.of(Turn)] == ["Tell me a story.", "Stop."]


def test_full_duplex_barge_in_interrupts_and_trims_history(tmp_path):
    log = SessionLog.create(tmp_path / "sessions")
    try:
        events, _, llm, session = run_session(
            tmp_path, [(0.5, 2.0), (4.0, 5.0)], 12.0, ["Tell me a story.", "Stop please."],
            reply=LONG_REPLY, duplex=Duplex.FULL, turn_log=log,
        )  # fmt: skip
    finally:
        log.close()
    interrupted = events.of(Interrupted)
    assert len(interrupted) == 1
    # The reply was held as the voice began (two 32 ms frames), before the 250 ms that
    # confirm it as speech.
    assert interrupted[0].talked_over_ms == pytest.approx(64, abs=1)
    assert interrupted[0].silent_after_ms == pytest.approx(64 - 256, abs=1)
    heard = interrupted[0].played_text
    assert heard and len(heard.split()) < len(LONG_REPLY.split())
    assert LONG_REPLY.startswith(heard)
    # The second question is answered with the whole chunks that were heard in the history,
    # not the word or two of the chunk that was cut.
    turns = events.of(Turn)
    assert [t.user_text for t in turns] == ["Tell me a story.", "Stop please."]
    second_prompt = llm.prompts[1]
    kept = second_prompt[-2].content
    assert second_prompt[-2].role is Role.ASSISTANT
    assert heard.startswith(kept) and len(kept.split()) < len(heard.split())
    assert kept == "This is a long answer that keeps going."  # chunks of 3 and 5 words
    assert second_prompt[-1].content == "Stop please."
    # The session log says which reply was cut off and what of it the user heard.
    records = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert [(r["record"], r["turn"]) for r in records] == [
        ("turn", 1), ("interrupted", 1), ("turn", 2)
    ]  # fmt: skip
    assert records[1]["played_text"] == heard


def _voiced_samples(path: Path) -> tuple[int, np.ndarray]:
    audio, _ = soundfile.read(path, dtype="float32")
    return int(np.count_nonzero(audio)), audio


def test_a_cough_over_the_reply_holds_it_and_it_plays_on_whole(tmp_path):
    # A 96 ms blip in the middle of the long reply (it plays from ~2.7 s for 4.8 s): the reply
    # stops as the voice begins and, the blip rejected as too short for speech, plays on from
    # where it stopped; nothing is cut.
    plain, coughed = tmp_path / "plain", tmp_path / "coughed"
    plain.mkdir()
    coughed.mkdir()
    run_session(
        plain, [(0.5, 2.0)], 12.0, ["Tell me a story."], reply=LONG_REPLY, duplex=Duplex.FULL,
    )  # fmt: skip
    events, stt, _, session = run_session(
        coughed, [(0.5, 2.0), (5.5, 5.596)], 12.0, ["Tell me a story."], reply=LONG_REPLY,
        duplex=Duplex.FULL,
    )  # fmt: skip
    assert events.of(Interrupted) == []
    assert [t.reply_text for t in events.of(Turn)] == [LONG_REPLY]
    assert len(stt.calls) == 1
    voiced_plain, _ = _voiced_samples(plain / "reply.wav")
    voiced, audio = _voiced_samples(coughed / "reply.wav")
    assert voiced == voiced_plain  # all of it was played
    # Two voiced 32 ms frames (the first holds 4 ms of the cough) hold it at 5.536 s, where
    # it fades out over 5 ms; the cough's last frame ends at 5.6 s and two silent frames
    # reject it at 5.664 s, when the reply plays on, fading in.
    held = slice(int(5.541 * 16000), int(5.664 * 16000))
    assert not audio[held].any()
    assert np.abs(audio[held.start - 240 : held.start - 80]).max() > 0.2  # it played until then
    assert np.abs(audio[held.stop + 80 : held.stop + 160]).max() > 0.2  # and plays on
    assert not session.sink.is_held


def test_max_turns_ends_the_session(tmp_path):
    events, _, _, _ = run_session(
        tmp_path, [(0.5, 1.5), (6.0, 7.0)], 10.0, ["One.", "Two."], max_turns=1
    )
    assert len(events.of(Turn)) == 1


def test_transcripts_are_emitted_before_the_turn(tmp_path):
    events, _, _, _ = run_session(tmp_path, [(0.5, 2.0)], 4.0, ["Hello."])
    names = [type(e).__name__ for e in events.events]
    assert names.index("SpeechEnd") < names.index("TranscriptEvent") < names.index("Turn")
    assert isinstance(events.of(TranscriptEvent)[0].stt_ms, float)


class WordsSoFarStt(FakeStt):
    """Three words per second of audio heard, from a fixed sentence."""

    def transcribe(self, audio_16k: np.ndarray) -> Transcript:
        super().transcribe(audio_16k)
        words = self.texts[0].split()
        count = max(1, min(len(words), int(3 * len(audio_16k) / 16000)))
        return Transcript(text=" ".join(words[:count]), audio_s=len(audio_16k) / 16000, stt_ms=1.0)


def test_without_speculation_nothing_starts_before_the_end_of_the_turn(tmp_path):
    # What `bench --no-speculation` compares with: the same pauses and decisions, but the
    # transcript, the read-ahead and the reply wait for the decision. A faint last frame and
    # partials would each start work early with speculation on.
    sentence = "please tell me what the weather will be like in Paris tomorrow"
    partial = WordsSoFarStt([sentence])
    events, stt, llm, session = run_session(
        tmp_path, [(0.512, 2.048), (2.752, 4.512)], 7.0, ["please tell me about", sentence],
        partial_every_s=1.0, stt_partial=partial, weak_frames_at_s=(2.016, 4.48),
        speculate=False,
    )  # fmt: skip
    assert [t.user_text for t in events.of(Turn)] == [sentence]
    turn = events.of(Turn)[0]
    assert not turn.speculative and not turn.reply_started_early
    # The 700 ms pause's transcript and the last pause's served only the decisions; the
    # turn's transcript was made again once it was decided, from the same audio.
    assert len(stt.calls) == 3 and stt.calls[2] == pytest.approx(stt.calls[1], abs=0.04)
    assert partial.calls and len(events.of(PartialTranscript)) == len(partial.calls)
    assert [p[-1].content for p in llm.prompts] == [sentence]  # no reply during the pause
    assert all(p[-1].role is not Role.USER for p in llm.prefills)  # no read-ahead
    assert events.of(Reply)[0].text == turn.reply_text
    assert session.history.messages()[-2].content == sentence


def test_words_so_far_are_shown_and_read_ahead_by_the_llm(tmp_path):
    sentence = "please tell me what the weather will be like in Paris tomorrow"
    events, stt, llm, _ = run_session(
        tmp_path, [(0.5, 4.5)], 7.0, [sentence], partial_every_s=1.0,
        stt=WordsSoFarStt([sentence]),
    )  # fmt: skip
    partials = [e.text for e in events.of(PartialTranscript)]
    assert len(partials) >= 3  # about one per second of speech
    assert all(sentence.startswith(p) for p in partials)
    read_while_speaking = [p for p in llm.prefills if p[-1].role is Role.USER]
    assert len(read_while_speaking) >= 2
    for prompt in read_while_speaking:
        assert prompt[0].content == "Be brief."
        said = prompt[-1].content.split()
        # The words of a partial but its last, which Whisper may still change.
        assert any(p.split()[:-1] == said for p in partials), said
    turns = events.of(Turn)
    assert len(turns) == 1 and turns[0].user_text == sentence
    assert llm.prompts[-1][-1].content == sentence  # the reply reads the whole transcript


def test_without_partials_only_the_history_is_read_ahead_after_the_reply(tmp_path):
    events, stt, llm, session = run_session(tmp_path, [(0.5, 4.5)], 7.0, ["What time is it?"])
    assert events.of(PartialTranscript) == []
    assert len(stt.calls) == 1
    # Once the reply is in the history, the LLM reads the next prompt's start while it plays.
    assert [[m.content for m in p] for p in llm.prefills] == [
        ["Be brief.", "What time is it?", "Hello there. How can I help you today?"]
    ]


def test_a_second_stt_takes_the_partials_and_the_first_only_the_pauses(tmp_path):
    sentence = "please tell me what the weather will be like in Paris tomorrow"
    partial = WordsSoFarStt([sentence])
    events, stt, llm, _ = run_session(
        tmp_path, [(0.5, 4.5)], 7.0, [sentence], partial_every_s=1.0,
        stt=WordsSoFarStt([sentence]), stt_partial=partial,
    )  # fmt: skip
    assert len(partial.calls) >= 3
    assert len(stt.calls) == 1  # only the pause's transcript
    assert len(events.of(PartialTranscript)) == len(partial.calls)
    assert [t.user_text for t in events.of(Turn)] == [sentence]


def test_a_weak_last_frame_starts_the_pauses_transcript_on_the_second_stt(tmp_path):
    # Speech 0.512-2.048 s (frame-aligned). Its last frame (2.016 s) is faint: the second STT
    # copy transcribes the words up to its end at once, and the voice stops right after, so
    # that transcript is the pause's. A faint frame mid-speech (1.024 s) is followed by more
    # voice: its early transcript is only thrown away.
    partial, stt = FakeStt(["What time is it?"]), FakeStt(["What time is it?"])
    events, _, llm, _ = run_session(
        tmp_path, [(0.512, 2.048)], 5.0, [], stt=stt, stt_partial=partial,
        weak_frames_at_s=(1.024, 2.016),
    )  # fmt: skip
    assert stt.calls == []  # the first copy had nothing to do
    assert len(partial.calls) == 2
    assert partial.calls[1] - partial.calls[0] == pytest.approx(2.048 - 1.056)
    ends = events.of(SpeechEnd)
    assert len(ends) == 1 and ends[0].audio_s == pytest.approx(2.048)
    turns = events.of(Turn)
    assert [t.user_text for t in turns] == ["What time is it?"]
    assert turns[0].latency_ms["transcript_ready"] >= 0
    assert turns[0].speculative and turns[0].reply_started_early


class SlowStt(FakeStt):
    """Takes 100 ms of the session's fake time (Whisper tiny.en on a short clip here): the
    input runs on by three frames meanwhile."""

    def __init__(self, texts: list[str], clock: SettlingClock) -> None:
        super().__init__(texts)
        self.clock = clock

    def transcribe(self, audio_16k: np.ndarray) -> Transcript:
        self.clock.model_sleep(0.1)
        return super().transcribe(audio_16k)


def test_a_transcript_missing_one_weak_frame_before_the_pause_is_still_taken(tmp_path):
    # The early transcript of the first of two weak frames is still running on the next one.
    clock = SettlingClock()
    partial, stt = SlowStt(["What time is it?"], clock), FakeStt(["What time is it?"])
    events, _, _, _ = run_session(
        tmp_path, [(0.512, 2.048)], 5.0, [], stt=stt, stt_partial=partial,
        weak_frames_at_s=(1.984, 2.016), clock=clock,
    )  # fmt: skip
    assert stt.calls == []
    assert partial.calls == [pytest.approx(2.016 - 0.212)]  # speech and pre-roll to 2.016 s
    assert [t.user_text for t in events.of(Turn)] == ["What time is it?"]


@pytest.mark.parametrize("weak_frames_at_s", [(1.024,), (1.952, 1.984, 2.016)])
def test_otherwise_the_first_stt_transcribes_the_pause(tmp_path, weak_frames_at_s):
    # No weak frame before the pause, or the early transcript misses two frames of voice.
    clock = SettlingClock()
    partial, stt = SlowStt(["What time is it?"], clock), FakeStt(["What time is it?"])
    events, _, _, _ = run_session(
        tmp_path, [(0.512, 2.048)], 5.0, [], stt=stt, stt_partial=partial,
        weak_frames_at_s=weak_frames_at_s, clock=clock,
    )  # fmt: skip
    assert len(partial.calls) == 1
    assert len(stt.calls) == 1
    assert [t.user_text for t in events.of(Turn)] == ["What time is it?"]


def test_a_reply_cut_off_while_the_llm_still_writes_is_reported_as_heard(tmp_path):
    # The LLM is still writing (50 ms per word after the first two chunks) when the user talks
    # over the reply.
    clock = SettlingClock()
    slow = FakeLlm(LONG_REPLY, before_each_token=lambda i: clock.model_sleep(0.05 * (i > 12)))
    events, _, _, session = run_session(
        tmp_path, [(0.5, 2.0), (3.5, 4.5)], 12.0, ["Tell me a story.", "Stop please."],
        duplex=Duplex.FULL, llm=slow, clock=clock,
    )  # fmt: skip
    assert slow.stopped_early.is_set()  # cut while it still wrote
    interrupted = events.of(Interrupted)
    assert len(interrupted) == 1
    turns = events.of(Turn)
    assert [t.user_text for t in turns] == ["Tell me a story.", "Stop please."]
    first = turns[0]
    assert first.reply_text == interrupted[0].played_text  # what was heard, not the whole reply
    assert first.reply_text and len(first.reply_text.split()) < len(LONG_REPLY.split())
    assert first.latency_ms["voice_to_voice"] is not None
    assert first.latency_ms["llm_first_token"] is not None


FIRST_HALF = "The Middle Ages brought calligraphy to perfection."
WHOLE = "The Middle Ages brought calligraphy to perfection, and it was natural therefore."


def test_a_user_going_on_over_our_first_words_makes_one_turn_transcribed_whole(tmp_path):
    # A 900 ms pause after a sentence-like phrase: the turn ends after 600 ms and the answer
    # starts; 300 ms later the user goes on. The answer's first sentence (0.8 s) is cut
    # before it was heard whole, so the words before the pause are transcribed again with the
    # rest, and answered as one turn.
    events, stt, llm, session = run_session(
        tmp_path, [(0.5, 2.0), (2.9, 4.0)], 8.0, [FIRST_HALF, WHOLE],
        reply=LONG_REPLY, duplex=Duplex.FULL,
    )  # fmt: skip
    assert len(events.of(Interrupted)) == 1
    assert not whole_sentences(events.of(Interrupted)[0].played_text)
    assert [t.continues for t in events.of(TranscriptEvent)] == [False, True]
    assert len(stt.calls) == 2
    assert stt.calls[0] == pytest.approx(1.8, abs=0.1)  # 300 ms pre-roll, 1.5 s of speech
    assert stt.calls[1] == pytest.approx(3.8, abs=0.1)  # from the same start to the new end
    turns = events.of(Turn)
    assert [t.user_text for t in turns] == [FIRST_HALF, WHOLE]
    assert llm.prompts[-1][-1].content == WHOLE  # not the first half twice
    assert [m.content for m in session.history.messages()][1:] == [WHOLE, LONG_REPLY]


def test_a_user_going_on_before_our_first_words_makes_one_turn_transcribed_whole(tmp_path):
    # The answer's first token comes late (1 s, while the scripted audio runs on), so the
    # user goes on after the end of the turn was decided, before the first sound.
    clock = SettlingClock()
    slow = FakeLlm(before_each_token=lambda i: clock.model_sleep(1.0 * (i == 0)))
    events, stt, llm, session = run_session(
        tmp_path, [(0.5, 2.0), (2.9, 4.0)], 8.0, [FIRST_HALF, WHOLE], llm=slow, clock=clock,
    )  # fmt: skip
    assert events.of(SpeechEnd)[0].decided_audio_s < 2.9  # the turn had ended
    assert not events.of(Interrupted)
    assert [t.continues for t in events.of(TranscriptEvent)] == [False, True]
    assert stt.calls[-1] == pytest.approx(3.8, abs=0.1)
    assert [t.user_text for t in events.of(Turn)] == [WHOLE]
    assert llm.prompts[-1][-1].content == WHOLE
    assert [m.content for m in session.history.messages()][1:] == [WHOLE, slow.reply]


HANGING = "And so, my fellow Americans, ask not,"
WHOLE_QUESTION = "And so, my fellow Americans, ask not what your country can do for you."


def test_a_hanging_phrase_answered_after_the_shorter_wait_is_taken_back_if_the_user_goes_on(
    tmp_path,
):
    # Where the user can cut in, the longest wait is 750 ms: an 850 ms pause after a phrase
    # left hanging ends the turn and the answer starts; the user goes on 100 ms later. The
    # answer is held at once, cut when their speech is confirmed, and forgotten; the words
    # before the pause are transcribed again with the rest, as one turn, as if we had waited.
    events, stt, llm, session = run_session(
        tmp_path, [(0.5, 2.0), (2.85, 4.0)], 8.0, [HANGING, WHOLE_QUESTION],
        reply=LONG_REPLY, duplex=Duplex.FULL,
        endpointing=EndpointingConfig(max_silence_ms=CUT_IN_MAX_SILENCE_MS),
    )  # fmt: skip
    first_end = events.of(SpeechEnd)[0]
    assert first_end.decided_audio_s - first_end.audio_s == pytest.approx(0.75, abs=0.04)
    interrupted = events.of(Interrupted)
    assert len(interrupted) == 1
    assert not whole_sentences(interrupted[0].played_text)
    assert interrupted[0].talked_over_ms <= 100  # held on the voice's second frame
    assert [t.continues for t in events.of(TranscriptEvent)] == [False, True]
    assert stt.calls[-1] == pytest.approx(3.8, abs=0.1)  # from the first words to the last
    assert [t.user_text for t in events.of(Turn)][-1] == WHOLE_QUESTION
    assert llm.prompts[-1][-1].content == WHOLE_QUESTION
    assert [m.content for m in session.history.messages()][1:] == [WHOLE_QUESTION, LONG_REPLY]


def test_a_user_going_on_after_a_long_pause_is_joined_as_text_only(tmp_path):
    # 2.1 s after the voice stopped is longer than the longest wait (1.5 s): a pause that long
    # would have ended the turn anyway. The answer's 3.1 s first sentence is cut before it was
    # heard whole, so it is forgotten and the words join the question as text, but the new
    # speech is transcribed alone.
    reply = "This is a long answer that keeps going" + " and going" * 12 + "."
    events, stt, llm, _ = run_session(
        tmp_path, [(0.5, 2.0), (4.1, 5.0)], 9.0, [FIRST_HALF, "Stop."],
        reply=reply, duplex=Duplex.FULL,
    )  # fmt: skip
    assert len(events.of(Interrupted)) == 1
    assert [t.continues for t in events.of(TranscriptEvent)] == [False, False]
    assert stt.calls[-1] < 1.5
    assert llm.prompts[-1][-1].content == f"{FIRST_HALF} Stop."


def test_input_ending_during_a_pause_still_answers_and_never_hangs(tmp_path):
    # The file ends 300 ms after the voice stops: the end of turn has not been decided, a
    # speculative reply is waiting for it. The session must answer and finish.
    audio = scripted_audio([(0.5, 2.0)], 2.3)
    wav = tmp_path / "input.wav"
    write_wav(wav, audio, 16000)
    clock = FakeClock()
    source = FileSource.open(wav, realtime=True, clock=clock, trailing_silence_ms=0)
    llm = FakeLlm()
    models = Models(vad=FakeVad(), stt=FakeStt(["What time is it?"]), llm=llm, tts=FakeTts())
    sink = WavFileSink.open(tmp_path / "reply.wav", 16000, clock=clock, pad_to_clock=True)
    events = CollectedEvents()
    session = VoiceSession(
        models, source, sink, events, clock, SessionOptions(input_hears_output=False),
        system_prompt="Be brief.", history_tokens=500,
    )  # fmt: skip

    async def run() -> None:
        await asyncio.wait_for(session.run(), 10)

    try:
        asyncio.run(run())
    finally:
        sink.close()
        models.close()
    turns = events.of(Turn)
    assert [t.user_text for t in turns] == ["What time is it?"]
    assert turns[0].reply_text == "Hello there. How can I help you today?"
    assert turns[0].latency_ms["voice_to_voice"] is not None


def test_a_user_who_never_stops_is_cut_within_whispers_30_s_window(tmp_path):
    # Over 30 s of audio Whisper takes its full-window path: 1.2-1.8 s instead of ~0.5 s.
    events, stt, _, _ = run_session(tmp_path, [(1.0, 40.0)], 42.0, ["On and on.", "And on."])
    ends = events.of(SpeechEnd)
    assert len(ends) == 2
    cut = ends[0].decided_audio_s - 1.0  # the first turn's speech, up to the cut
    assert 29.0 <= cut <= 29.6, cut
    whole = [seconds for seconds in stt.calls if seconds > 25.0]
    assert whole and max(whole) <= 30.0, stt.calls  # with the pre-roll, still in one window


@pytest.mark.parametrize("duplex", [Duplex.HALF, Duplex.FULL])
def test_a_key_pressed_while_we_speak_stops_the_reply_and_we_listen_again(tmp_path, duplex):
    # The 4.8 s answer starts at ~2.6 s; at 4.0 s the user presses a key. In half duplex the
    # microphone is not heard while we speak, so their next question (5.0-6.0 s), asked while
    # the answer would still be playing, is only heard because the key stopped it.
    events, _, llm, session = run_session(
        tmp_path, [(0.5, 2.0), (5.0, 6.0)], 9.0, ["Tell me a story.", "What time is it?"],
        reply=LONG_REPLY, duplex=duplex, key_at_s=4.0,
    )  # fmt: skip
    interrupted = events.of(Interrupted)
    assert len(interrupted) == 1 and interrupted[0].by == "key"
    assert interrupted[0].talked_over_ms == 0.0
    assert 0 <= interrupted[0].silent_after_ms <= 40  # a file sink has no output latency
    heard = interrupted[0].played_text
    assert heard.startswith("This is a long answer that keeps going.")
    assert len(heard.split()) < len(LONG_REPLY.split())
    turns = events.of(Turn)
    assert [t.user_text for t in turns] == ["Tell me a story.", "What time is it?"]
    assert turns[0].reply_text == LONG_REPLY  # written whole; heard in part (the event above)
    assert llm.prompts[-1][-2].content == whole_sentences(heard)  # the history keeps what was heard
    audio, rate = soundfile.read(tmp_path / "reply.wav", dtype="float32")
    assert np.abs(audio[int(3.9 * rate) : int(4.0 * rate)]).max() > 0.1  # speaking, then
    assert np.abs(audio[int(4.05 * rate) : int(6.0 * rate)]).max() < 0.01  # silent after the key
    assert session.result.interruptions == 1


@pytest.mark.parametrize("key_at_s", [1.0, 2.3])
def test_a_key_pressed_while_nothing_is_said_changes_nothing(tmp_path, key_at_s):
    # While the user speaks, and in their pause while a reply is made ahead (from 2.0 s; the
    # turn ends at 2.6 s).
    events, _, _, session = run_session(
        tmp_path, [(0.5, 2.0)], 6.0, ["What time is it?"], key_at_s=key_at_s,
    )  # fmt: skip
    assert not events.of(Interrupted)
    turns = events.of(Turn)
    assert [t.user_text for t in turns] == ["What time is it?"]
    assert turns[0].reply_started_early
    assert [m.content for m in session.history.messages()][1:] == [
        "What time is it?", "Hello there. How can I help you today?",
    ]  # fmt: skip
