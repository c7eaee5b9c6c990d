"""VAD hysteresis state machine, driven by scripted per-frame probability sequences."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voiceagent.errors import UsageError
from voiceagent.turns.vad_state import (
    FRAME_SAMPLES,
    BlipRejected,
    SilenceStarted,
    SpeechResumed,
    SpeechStarted,
    VadConfig,
    VadState,
    VadStateMachine,
)

pytestmark = pytest.mark.unit

FRAME_MS = 32
SPEECH = 0.9
QUIET = 0.05


def script(*segments: tuple[int, float]) -> list[float]:
    """Per-frame probabilities from (frames, probability) segments."""
    return [probability for frames, probability in segments for _ in range(frames)]


def run(
    probabilities: list[float], machine: VadStateMachine | None = None
) -> tuple[VadStateMachine, list[tuple[int, object]]]:
    """Feeds every frame; returns the machine and (frame index, event) pairs."""
    machine = machine if machine is not None else VadStateMachine()
    events = []
    for index, probability in enumerate(probabilities):
        for event in machine.update(probability, (index + 1) * FRAME_SAMPLES):
            events.append((index, event))
    return machine, events


def test_silence_only_emits_nothing() -> None:
    machine, events = run(script((100, QUIET)))
    assert events == []
    assert machine.state is VadState.SILENCE
    assert not machine.is_speech
    assert machine.stats() is None


def test_speech_from_half_a_second_to_two_and_a_half() -> None:
    # 16 frames (0.512 s) of silence, 63 frames (~2 s) of speech, 1 s of silence.
    machine, events = run(script((16, QUIET), (63, SPEECH), (31, QUIET)))
    kinds = [type(event) for _, event in events]
    assert kinds == [SpeechStarted, SilenceStarted]

    started = events[0][1]
    assert isinstance(started, SpeechStarted)
    assert started.start_sample == 16 * FRAME_SAMPLES  # looked back to the first voiced frame
    assert started.audio_start_sample == 16 * FRAME_SAMPLES - 4800  # 300 ms of pre-roll
    # Confirmed once 250 ms (4000 samples) of voice were heard: end of frame 23.
    assert started.detected_sample == 24 * FRAME_SAMPLES
    assert events[0][0] == 23

    stopped = events[1][1]
    assert isinstance(stopped, SilenceStarted)
    assert stopped.silence_start_sample == (16 + 63) * FRAME_SAMPLES
    assert stopped.detected_sample == (16 + 63 + 1) * FRAME_SAMPLES  # one silent frame

    assert machine.state is VadState.PAUSE
    assert not machine.is_speech
    stats = machine.stats()
    assert stats is not None
    assert stats.speech_samples == 63 * FRAME_SAMPLES
    assert stats.voiced_frames == 63
    assert stats.total_frames == 63  # the trailing silence does not dilute the share
    assert stats.voiced_share == 1.0


def test_is_speech_follows_the_voice() -> None:
    machine = VadStateMachine()
    seen = []
    for index, probability in enumerate(script((5, QUIET), (20, SPEECH), (10, QUIET))):
        machine.update(probability, (index + 1) * FRAME_SAMPLES)
        seen.append(machine.is_speech)
    assert seen[:12] == [False] * 12  # still a candidate before 250 ms of voice
    assert seen[13:25] == [True] * 12
    assert seen[-1] is False


def test_pause_of_400_ms_then_resume_is_one_utterance() -> None:
    machine, events = run(script((10, QUIET), (30, SPEECH), (12, QUIET), (25, SPEECH), (20, QUIET)))
    kinds = [type(event) for _, event in events]
    assert kinds == [SpeechStarted, SilenceStarted, SpeechResumed, SilenceStarted]

    resumed = events[2][1]
    assert isinstance(resumed, SpeechResumed)
    assert resumed.resume_sample == (10 + 30 + 12) * FRAME_SAMPLES
    assert resumed.pause_samples == 12 * FRAME_SAMPLES
    # Resuming needs two voiced frames, not the 250 ms a fresh start needs.
    assert resumed.detected_sample == (10 + 30 + 12 + 2) * FRAME_SAMPLES

    stats = machine.stats()
    assert stats is not None
    assert stats.start_sample == 10 * FRAME_SAMPLES
    assert stats.speech_samples == (30 + 25) * FRAME_SAMPLES
    assert stats.voiced_frames == 55
    assert stats.total_frames == 30 + 12 + 25


def test_cough_of_100_ms_does_not_start_speech() -> None:
    machine, events = run(script((10, QUIET), (3, 0.95), (20, QUIET)))
    assert [type(event) for _, event in events] == [BlipRejected]
    blip = events[0][1]
    assert isinstance(blip, BlipRejected)
    assert blip.start_sample == 10 * FRAME_SAMPLES
    assert blip.end_sample == 13 * FRAME_SAMPLES
    assert machine.state is VadState.SILENCE
    assert not machine.is_speech


def test_single_frame_click_is_not_even_a_candidate() -> None:
    machine, events = run(script((10, QUIET), (1, 0.99), (10, QUIET)))
    assert events == []
    assert machine.state is VadState.SILENCE


def test_two_coughs_then_real_speech_starts_at_the_speech() -> None:
    probabilities = script(
        (5, QUIET), (3, SPEECH), (10, QUIET), (2, SPEECH), (10, QUIET), (20, SPEECH), (20, QUIET)
    )
    _, events = run(probabilities)
    kinds = [type(event) for _, event in events]
    assert kinds == [BlipRejected, BlipRejected, SpeechStarted, SilenceStarted]
    started = events[2][1]
    assert isinstance(started, SpeechStarted)
    assert started.start_sample == (5 + 3 + 10 + 2 + 10) * FRAME_SAMPLES


def test_probabilities_between_the_thresholds_keep_the_current_state() -> None:
    # Speech that wavers to 0.4 (below start, above end) is still speech...
    machine, events = run(script((5, QUIET), (15, SPEECH), (20, 0.4), (5, SPEECH)))
    assert [type(event) for _, event in events] == [SpeechStarted]
    assert machine.is_speech
    # ...and in a pause, 0.4 does not resume it.
    machine, events = run(script((5, QUIET), (15, SPEECH), (5, QUIET), (20, 0.4)))
    assert [type(event) for _, event in events] == [SpeechStarted, SilenceStarted]
    assert machine.state is VadState.PAUSE


def test_a_dip_shorter_than_pause_frames_is_not_a_pause() -> None:
    config = VadConfig(pause_frames=2)
    dip = script((5, QUIET), (15, SPEECH), (1, QUIET), (15, SPEECH))
    _, events = run(dip, VadStateMachine(config))
    assert [type(event) for _, event in events] == [SpeechStarted]


def test_by_default_one_silent_frame_reports_the_pause_and_two_voiced_frames_resume() -> None:
    _, events = run(script((5, QUIET), (15, SPEECH), (1, QUIET), (15, SPEECH)))
    assert [type(event) for _, event in events] == [SpeechStarted, SilenceStarted, SpeechResumed]
    stopped = events[1][1]
    assert stopped.detected_sample - stopped.silence_start_sample == 512  # one frame


def test_a_candidate_needs_speech_end_frames_of_silence_to_be_a_blip() -> None:
    # One quiet frame inside the first syllables does not throw the start away.
    _, events = run(script((5, QUIET), (3, SPEECH), (1, QUIET), (12, SPEECH)))
    assert [type(event) for _, event in events] == [SpeechStarted]


def test_voiced_share_counts_voiced_frames_only() -> None:
    # Patchy noise that opens with two voiced frames, then only every other frame is voiced
    # while the rest hover above the end threshold.
    machine, _ = run(script((5, QUIET), (2, 0.9)) + [0.4, 0.9] * 19 + script((4, QUIET)))
    stats = machine.stats()
    assert stats is not None
    assert stats.voiced_frames == 21
    assert stats.total_frames == 40  # the four silent frames at the end are not counted
    assert stats.voiced_share == pytest.approx(21 / 40)
    assert machine.voiced_frames == 21
    assert machine.total_frames == 40


def test_speech_at_time_zero_clamps_the_pre_roll() -> None:
    _, events = run(script((20, SPEECH)))
    started = events[0][1]
    assert isinstance(started, SpeechStarted)
    assert started.start_sample == 0
    assert started.audio_start_sample == 0


def test_reset_ends_the_utterance_and_needs_fresh_confirmation() -> None:
    machine, _ = run(script((5, QUIET), (20, SPEECH)))
    assert machine.is_speech
    machine.reset()
    assert machine.state is VadState.SILENCE
    assert machine.voiced_frames == 0
    # One more voiced frame after the reset is not enough to open a new candidate.
    assert machine.update(SPEECH, 26 * FRAME_SAMPLES) == []
    assert machine.state is VadState.SILENCE
    assert machine.update(SPEECH, 27 * FRAME_SAMPLES) == []
    assert machine.state is VadState.CANDIDATE


def test_custom_config_changes_the_timing() -> None:
    config = VadConfig(min_speech_ms=0, speech_start_frames=1, speech_end_frames=1, pre_roll_ms=0)
    machine, events = run(script((3, QUIET), (1, SPEECH), (1, QUIET)), VadStateMachine(config))
    assert [type(event) for _, event in events] == [SpeechStarted, SilenceStarted]
    assert events[0][0] == 3
    assert machine.config is config


def test_frames_must_move_forward() -> None:
    machine = VadStateMachine()
    machine.update(QUIET, 1024)
    with pytest.raises(ValueError, match="move forward"):
        machine.update(QUIET, 1024)
    with pytest.raises(ValueError):
        machine.update(QUIET, 512)


def test_nan_probability_reads_as_silence() -> None:
    machine, events = run(script((5, QUIET), (20, SPEECH)) + [math.nan] * 3)
    assert [type(event) for _, event in events] == [SpeechStarted, SilenceStarted]
    assert not machine.is_speech


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start_threshold": 0.3, "end_threshold": 0.5},
        {"start_threshold": 1.5},
        {"min_speech_ms": -1},
        {"speech_start_frames": 0},
        {"frame_samples": 0},
    ],
)
def test_bad_config_is_a_usage_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        VadConfig(**kwargs)


def test_frame_duration_and_conversions() -> None:
    config = VadConfig()
    assert config.frame_ms == 32.0
    assert config.ms_to_samples(250) == 4000
    assert config.samples_to_s(8000) == 0.5


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=400))
def test_events_always_follow_the_grammar(probabilities: list[float]) -> None:
    machine = VadStateMachine()
    min_speech_samples = machine.config.ms_to_samples(machine.config.min_speech_ms)
    in_utterance = False
    is_speaking = False
    for index, probability in enumerate(probabilities):
        frame_end = (index + 1) * FRAME_SAMPLES
        for event in machine.update(probability, frame_end):
            assert event.detected_sample == frame_end
            if isinstance(event, SpeechStarted):
                assert not in_utterance
                assert frame_end - event.start_sample >= min_speech_samples
                assert 0 <= event.audio_start_sample <= event.start_sample
                in_utterance = is_speaking = True
            elif isinstance(event, BlipRejected):
                assert not in_utterance
                assert event.start_sample < event.end_sample <= frame_end
            elif isinstance(event, SilenceStarted):
                assert in_utterance and is_speaking
                assert event.silence_start_sample < frame_end
                is_speaking = False
            else:
                assert isinstance(event, SpeechResumed)
                assert in_utterance and not is_speaking
                assert event.pause_samples > 0
                is_speaking = True
        assert machine.is_speech == is_speaking
        stats = machine.stats()
        if stats is not None:
            assert 0 <= stats.voiced_frames <= stats.total_frames
            assert 0.0 <= stats.voiced_share <= 1.0
