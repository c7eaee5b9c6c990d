"""End-of-utterance policy on scripted timelines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voiceagent.config import Settings, load_settings
from voiceagent.errors import UsageError
from voiceagent.turns.endpointing import (
    EndpointAction,
    EndpointingConfig,
    EndpointingPolicy,
    TranscriptEnding,
    TurnDetectorHint,
    classify_transcript_ending,
)

pytestmark = pytest.mark.unit

policy = EndpointingPolicy()


@pytest.mark.parametrize(
    ("transcript", "ending"),
    [
        (None, TranscriptEnding.UNKNOWN),
        ("", TranscriptEnding.UNKNOWN),
        ("   ", TranscriptEnding.UNKNOWN),
        ("What time is it?", TranscriptEnding.COMPLETE),
        ("Turn on the lights.", TranscriptEnding.COMPLETE),
        ("Stop!", TranscriptEnding.COMPLETE),
        ('He said "yes."', TranscriptEnding.COMPLETE),
        ("I'd like to order a pizza and", TranscriptEnding.INCOMPLETE),
        ("Put it on the", TranscriptEnding.INCOMPLETE),
        ("I want to", TranscriptEnding.INCOMPLETE),
        ("a cup of", TranscriptEnding.INCOMPLETE),
        ("So, um", TranscriptEnding.INCOMPLETE),
        ("Uh", TranscriptEnding.INCOMPLETE),
        ("because", TranscriptEnding.INCOMPLETE),
        ("First,", TranscriptEnding.INCOMPLETE),
        ("Well...", TranscriptEnding.INCOMPLETE),
        ("Well…", TranscriptEnding.INCOMPLETE),
        ("Call Mr.", TranscriptEnding.INCOMPLETE),
        ("some fruit, e.g.", TranscriptEnding.INCOMPLETE),
        ("I live in the U.S.", TranscriptEnding.UNKNOWN),
        ("apples, pears, etc.", TranscriptEnding.UNKNOWN),
        ("what time is it", TranscriptEnding.UNKNOWN),
        ("hello there", TranscriptEnding.UNKNOWN),
        ("\x1f", TranscriptEnding.UNKNOWN),  # white space outside the closers (found by hypothesis)
        ("\u2028 \x1c", TranscriptEnding.UNKNOWN),
    ],
)
def test_transcript_ending(transcript: str | None, ending: TranscriptEnding) -> None:
    assert classify_transcript_ending(transcript) is ending


@pytest.mark.parametrize(
    ("transcript", "expected_ms"),
    [
        (None, 600),
        # Punctuation alone never shortens the wait: Whisper puts full stops after fragments.
        ("What's the weather like today?", 600),
        ("Author of the danger.", 600),
        ("Tell me about the", 1500),
        ("Ask Dr.", 1500),
        ("hello there", 600),
    ],
)
def test_required_silence_adapts_to_the_transcript(
    transcript: str | None, expected_ms: float
) -> None:
    assert policy.required_silence_ms(transcript) == expected_ms


def test_turn_detector_hint_shifts_the_wait_within_the_bounds() -> None:
    assert policy.required_silence_ms("Sure", TurnDetectorHint(0.95)) == 250
    assert policy.required_silence_ms("Sure", TurnDetectorHint(0.99)) == 250
    assert policy.required_silence_ms("Sure", TurnDetectorHint(0.05)) == 1500
    # Between Smart Turn's own threshold and "sure", the wait shortens with its confidence.
    assert policy.required_silence_ms("Sure", TurnDetectorHint(0.5)) == 600
    assert policy.required_silence_ms("Sure", TurnDetectorHint(0.725)) == pytest.approx(425)
    assert policy.required_silence_ms("Sure", TurnDetectorHint(0.86)) == pytest.approx(320)
    assert policy.required_silence_ms("Sure", TurnDetectorHint(0.49)) == 600
    assert policy.required_silence_ms("Sure", TurnDetectorHint(0.26)) == 600
    # Before the transcript exists the detector can lengthen the wait but not shorten it.
    assert policy.required_silence_ms(None, TurnDetectorHint(0.95)) == 600
    assert policy.required_silence_ms(None, TurnDetectorHint(0.05)) == 1500
    # Only the detector shortens the wait, and not when the words trail off. Words that trail
    # off lengthen it; the detector's "not done" lengthens it unless the words end a sentence.
    assert policy.required_silence_ms("Thanks.", TurnDetectorHint(0.99)) == 250
    assert policy.required_silence_ms("Thanks.", TurnDetectorHint(0.01)) == 600
    assert policy.required_silence_ms("Thanks", TurnDetectorHint(0.01)) == 1500
    assert policy.required_silence_ms("and the", TurnDetectorHint(0.99)) == 600
    assert policy.required_silence_ms("and the", TurnDetectorHint(0.01)) == 1500


def test_a_hint_for_an_earlier_pause_is_ignored() -> None:
    stale = TurnDetectorHint(0.99, audio_end_s=2.0)
    assert policy.required_silence_ms("Sure", stale, voice_stopped_s=3.5) == 600
    fresh = TurnDetectorHint(0.99, audio_end_s=3.6)
    assert policy.required_silence_ms("Sure", fresh, voice_stopped_s=3.5) == 250


def test_hint_probability_must_be_a_probability() -> None:
    with pytest.raises(ValueError):
        TurnDetectorHint(1.5)
    with pytest.raises(ValueError):
        TurnDetectorHint(float("nan"))


def test_user_speaks_half_to_two_and_a_half_seconds_and_the_turn_ends_600_ms_later() -> None:
    voice_stopped_s = 2.5
    decisions = []
    for step in range(0, 101):
        now_s = voice_stopped_s + step * 0.01
        decision = policy.decide(voice_stopped_s, now_s, 2.0, None, turn_start_s=0.5)
        decisions.append((round(now_s, 2), decision))
    first_end = next(now for now, decision in decisions if decision.is_final)
    assert first_end == pytest.approx(3.1)
    waiting = [decision for now, decision in decisions if now < 3.1]
    assert all(decision.action is EndpointAction.WAIT for decision in waiting)
    assert waiting[0].wait_remaining_ms == pytest.approx(600)
    assert waiting[-1].wait_remaining_ms == pytest.approx(10)
    assert decisions[-1][1].action is EndpointAction.END
    assert decisions[-1][1].silence_so_far_ms == pytest.approx(1000)


def test_complete_sentence_ends_sooner_and_trailing_and_waits_longer() -> None:
    done = TurnDetectorHint(0.95, audio_end_s=2.5)
    complete = policy.decide(2.5, 2.8, 2.0, "What time is it?", turn_start_s=0.5, hint=done)
    assert complete.action is EndpointAction.END
    assert complete.ending is TranscriptEnding.COMPLETE
    no_hint = policy.decide(2.5, 2.8, 2.0, "What time is it?", turn_start_s=0.5)
    assert no_hint.action is EndpointAction.WAIT
    trailing = policy.decide(2.5, 3.5, 2.0, "I'd like a pizza and", turn_start_s=0.5)
    assert trailing.action is EndpointAction.WAIT
    assert trailing.required_silence_ms == 1500
    assert trailing.wait_remaining_ms == pytest.approx(500)
    assert policy.decide(2.5, 4.0, 2.0, "I'd like a pizza and", 0.5).action is EndpointAction.END


def test_pause_then_resume_restarts_the_wait() -> None:
    # Speech 0.5-1.5 s, a 400 ms pause, speech 1.9-3.0 s: the pause does not end the turn.
    assert policy.decide(1.5, 1.9, 1.0, None, turn_start_s=0.5).action is EndpointAction.WAIT
    assert policy.decide(None, 2.5, 1.6, None, turn_start_s=0.5).action is EndpointAction.WAIT
    assert policy.decide(3.0, 3.5, 2.1, None, turn_start_s=0.5).action is EndpointAction.WAIT
    assert policy.decide(3.0, 3.6, 2.1, None, turn_start_s=0.5).action is EndpointAction.END


def test_too_little_speech_is_dropped_once_the_silence_has_passed() -> None:
    assert policy.decide(1.2, 1.5, 0.2, None, turn_start_s=1.0).action is EndpointAction.WAIT
    decision = policy.decide(1.2, 1.9, 0.2, None, turn_start_s=1.0)
    assert decision.action is EndpointAction.TOO_SHORT
    assert decision.is_final


def test_max_turn_cuts_a_user_who_never_stops() -> None:
    capped = EndpointingPolicy(EndpointingConfig(max_turn_s=30.0))
    speaking = capped.decide(None, 29.9, 29.0, None, turn_start_s=0.0)
    assert speaking.action is EndpointAction.WAIT
    assert speaking.silence_so_far_ms == 0
    assert capped.decide(None, 30.0, 29.5, None, 0.0).action is EndpointAction.MAX_TURN
    # A wait is never promised beyond the maximum turn length.
    near_limit = capped.decide(29.8, 29.9, 29.0, None, turn_start_s=0.0)
    assert near_limit.action is EndpointAction.WAIT
    assert near_limit.wait_remaining_ms == pytest.approx(100)


def test_voice_stop_in_the_future_counts_as_no_silence() -> None:
    decision = policy.decide(5.0, 4.99, 2.0, None, turn_start_s=3.0)
    assert decision.action is EndpointAction.WAIT
    assert decision.silence_so_far_ms == 0


def test_eou_silence_flag_widens_the_bounds() -> None:
    config = EndpointingConfig().with_silence_ms(2000)
    assert (config.min_silence_ms, config.silence_ms, config.max_silence_ms) == (250, 2000, 2000)
    config = EndpointingConfig().with_silence_ms(100)
    assert (config.min_silence_ms, config.silence_ms, config.max_silence_ms) == (100, 100, 1500)
    assert EndpointingPolicy(config).required_silence_ms(None) == 100


@pytest.mark.parametrize(
    ("silence_ms", "max_silence_ms", "cut_in", "bounds"),
    [
        (600, None, False, (600, 1500)),  # the defaults: half duplex from a microphone
        (600, None, True, (600, 750)),  # the defaults where the user can cut in
        (600, 800, False, (600, 800)),  # a user who wants hanging sentences answered sooner
        (600, 3000, True, (600, 3000)),  # a set wait holds where the user can cut in too
        (1000, 800, False, (1000, 1000)),  # never shorter than the usual silence
        (1000, None, True, (1000, 1000)),
        (2000, 1500, False, (2000, 2000)),  # --eou-silence-ms alone still widens the longest wait
        (2000, None, False, (2000, 2000)),
    ],
)
def test_settings_give_the_longest_wait(silence_ms, max_silence_ms, cut_in, bounds) -> None:
    settings = Settings(eou_silence_ms=silence_ms, eou_max_silence_ms=max_silence_ms)
    config = settings.endpointing(takes_back_early_answers=cut_in)
    assert (config.silence_ms, config.max_silence_ms) == bounds
    hanging = EndpointingPolicy(config).required_silence_ms("as an example of fine typography,")
    assert hanging == bounds[1]
    assert config.same_turn_ms == 1500  # an answer cut early joins what the user says next


def test_the_longest_wait_comes_from_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("VOICEAGENT_HOME", str(tmp_path))
    assert load_settings().endpointing(takes_back_early_answers=False).max_silence_ms == 1500
    monkeypatch.setenv("VOICEAGENT_EOU_MAX_SILENCE_MS", "760")
    for cut_in in (False, True):
        assert load_settings().endpointing(takes_back_early_answers=cut_in).max_silence_ms == 760
    monkeypatch.setenv("VOICEAGENT_EOU_MAX_SILENCE_MS", "soon")
    with pytest.raises(UsageError, match="eou_max_silence_ms='soon' is not a valid int"):
        load_settings()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"silence_ms": 2000},
        {"min_silence_ms": 700},
        {"silence_ms": -1, "min_silence_ms": -1},
        {"max_turn_s": 0},
        {"hint_done_probability": 0.2, "hint_not_done_probability": 0.3},
        {"hint_done_probability": 0.9, "hint_sure_probability": 0.8},
    ],
)
def test_bad_config_is_a_usage_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        EndpointingConfig(**kwargs)


transcripts = st.one_of(
    st.none(),
    st.text(max_size=60),
    st.sampled_from(["Thanks.", "and the", "Hmm,", "Mr.", "what time is it", "Really?"]),
)
hints = st.one_of(st.none(), st.builds(TurnDetectorHint, st.floats(min_value=0.0, max_value=1.0)))


@settings(max_examples=400, deadline=None)
@given(
    voice_stopped_s=st.floats(min_value=0.0, max_value=100.0),
    pause_s=st.floats(min_value=0.0, max_value=5.0),
    speech_s=st.floats(min_value=0.0, max_value=30.0),
)
def test_without_transcript_or_hint_a_pause_shorter_than_silence_ms_never_ends_the_turn(
    voice_stopped_s: float, pause_s: float, speech_s: float
) -> None:
    now_s = voice_stopped_s + pause_s
    decision = policy.decide(voice_stopped_s, now_s, speech_s, None, turn_start_s=voice_stopped_s)
    if decision.action in (EndpointAction.END, EndpointAction.TOO_SHORT):
        assert (now_s - voice_stopped_s) * 1000 >= policy.config.silence_ms - 1e-6
    else:
        assert decision.action is EndpointAction.WAIT
        assert decision.silence_so_far_ms < policy.config.silence_ms


@settings(max_examples=400, deadline=None)
@given(
    voice_stopped_s=st.floats(min_value=0.0, max_value=100.0),
    pause_s=st.floats(min_value=0.0, max_value=5.0),
    transcript=transcripts,
    hint=hints,
)
def test_nothing_waits_past_max_silence_and_nothing_ends_before_min_silence(
    voice_stopped_s: float, pause_s: float, transcript: str | None, hint: TurnDetectorHint | None
) -> None:
    config = policy.config
    required = policy.required_silence_ms(transcript, hint)
    assert config.min_silence_ms <= required <= config.max_silence_ms
    now_s = voice_stopped_s + pause_s
    decision = policy.decide(voice_stopped_s, now_s, 1.0, transcript, voice_stopped_s, hint)
    silence_ms = (now_s - voice_stopped_s) * 1000
    if silence_ms >= config.max_silence_ms:
        assert decision.is_final
    if decision.is_final:
        assert silence_ms >= config.min_silence_ms - 1e-6
    else:
        assert 0 < decision.wait_remaining_ms <= config.max_silence_ms
