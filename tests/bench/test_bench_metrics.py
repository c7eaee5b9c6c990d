"""Benchmark arithmetic on hand-made numbers with known answers."""

from __future__ import annotations

import pytest

from voiceagent.bench import metrics
from voiceagent.bench.report import stage_parts
from voiceagent.bench.results import Mode, RunConfig, RunReport
from voiceagent.bench.runner import UtteranceResult

pytestmark = pytest.mark.unit


# --- percentiles ----------------------------------------------------------------------------


def test_nearest_rank_percentiles_of_a_textbook_list():
    values = [15, 20, 35, 40, 50]
    assert metrics.percentile(values, 5) == 15
    assert metrics.percentile(values, 30) == 20
    assert metrics.percentile(values, 40) == 20
    assert metrics.percentile(values, 50) == 35
    assert metrics.percentile(values, 95) == 50
    assert metrics.percentile(values, 100) == 50


def test_percentile_order_does_not_matter_and_picks_a_measured_value():
    assert metrics.percentile([400, 100, 300, 200], 50) == 200  # rank ceil(2.0) = 2
    assert metrics.percentile([400, 100, 300, 200], 95) == 400


def test_percentile_of_twenty_values():
    values = list(range(1, 21))  # 1..20
    assert metrics.percentile(values, 50) == 10
    assert metrics.percentile(values, 95) == 19  # rank ceil(19.0) = 19


def test_percentile_edge_cases():
    assert metrics.percentile([], 50) is None
    assert metrics.percentile([7.5], 50) == 7.5
    assert metrics.percentile([7.5], 95) == 7.5
    with pytest.raises(ValueError):
        metrics.percentile([1.0], 0)
    with pytest.raises(ValueError):
        metrics.percentile([1.0], 101)


def test_spread_skips_unmeasured_values():
    spread = metrics.spread([None, 300.0, None, 100.0, 200.0])
    assert (spread.p50, spread.p95, spread.count) == (200.0, 300.0, 3)
    assert metrics.spread([None, None]) == metrics.Spread(None, None, 0)
    assert metrics.spread([float("nan"), 5.0]).p50 == 5.0


# --- word error rate ------------------------------------------------------------------------


def test_one_wrong_word_in_two_is_half():
    assert metrics.word_error_rate(["hello world"], ["hello word"]) == 0.5


def test_case_and_punctuation_are_normalised_away():
    assert metrics.word_error_rate(["Hello, World!"], ["hello world"]) == 0.0
    assert metrics.word_error_rate(["Will we ever forget it."], ["will we ever forget it?"]) == 0.0
    # Whisper's normaliser expands contractions and titles on both sides.
    assert metrics.word_error_rate(["I'm Mr. Smith"], ["I am mister smith"]) == 0.0


def test_corpus_wer_sums_errors_over_reference_words():
    errors = metrics.word_errors(["a b c d", "e f"], ["a b x d", ""])
    assert (errors.substitutions, errors.deletions, errors.insertions) == (1, 2, 0)
    assert errors.reference_words == 6
    assert errors.rate == pytest.approx(3 / 6)


def test_insertions_can_push_wer_above_one():
    assert metrics.word_error_rate(["yes"], ["yes yes yes"]) == 2.0


def test_empty_references_are_skipped_and_none_means_no_words():
    assert metrics.word_error_rate(["", "hello world"], ["noise", "hello world"]) == 0.0
    assert metrics.word_error_rate([], []) is None
    assert metrics.word_error_rate([""], ["anything"]) is None
    with pytest.raises(ValueError):
        metrics.word_error_rate(["a"], [])


# --- turns and ratios -----------------------------------------------------------------------


def test_every_turn_on_noise_is_false_and_speech_turns_are_not():
    turns = [1, 2, 0, 3]
    speech = [True, False, False, True]
    assert metrics.false_turns(turns, speech) == 2
    assert metrics.split_turns(turns, speech) == 2  # the 3-turn utterance was split twice


def test_ratios_and_speed_up():
    assert metrics.ratio(0.5, 2.0) == 0.25
    assert metrics.ratio(1.0, 0.0) is None
    assert metrics.speed_up(2000.0, 800.0) == 2.5
    assert metrics.speed_up(None, 800.0) is None
    assert metrics.speed_up(2000.0, 0.0) is None


# --- a run summarised from hand-made utterances ---------------------------------------------


def _utterance(name: str, reference: str | None, hypothesis: str, turns: int, **extra):
    result = UtteranceResult("c", name, audio_s=2.0, reference=reference, speech_end_s=1.8)
    result.hypothesis, result.turns = hypothesis, turns
    for key, value in extra.items():
        setattr(result, key, value)
    return result


def _timeline(eou_true, eou, ready, llm, tts, v2v, session):
    return {
        "eou": eou, "eou_true": eou_true, "stt": ready - eou + 100, "transcript_ready": ready,
        "llm_first_token": llm, "tts_first_audio": tts, "voice_to_voice": v2v,
        "voice_to_voice_session": session,
    }  # fmt: skip


def hand_made_run() -> RunReport:
    run = RunReport(RunConfig("s", "l", "v", Mode.STREAMING))
    run.add(_utterance(
        "a", "hello world", "hello word", 1, stt_ms=200.0, stt_audio_s=2.0, llm_tokens=20,
        llm_s=0.5, tts_compute_s=0.3, tts_audio_s=3.0,
        latency_ms=_timeline(600, 590, 650, 100, 150, 1000, 990),
    ))  # fmt: skip
    run.add(_utterance(
        "b", "good morning", "good morning", 1, stt_ms=100.0, stt_audio_s=2.0, llm_tokens=10,
        llm_s=0.5, tts_compute_s=0.1, tts_audio_s=1.0,
        latency_ms=_timeline(500, 500, 500, 80, 120, 800, 800),
    ))  # fmt: skip
    run.add(_utterance(
        "c", "the quick brown fox", "the quick brown fox", 2, stt_ms=100.0, stt_audio_s=4.0,
        latency_ms=_timeline(700, 680, 900, 200, 250, 1500, 1480),
    ))  # fmt: skip
    run.add(_utterance("noise", None, "uh", 1, latency_ms={}))
    return run


def test_run_metrics_from_a_hand_made_timeline():
    run = hand_made_run()
    assert run.turns == 5
    assert run.false_turns == 1
    assert run.split_turns == 1
    assert run.missed == 0
    assert run.wer == pytest.approx(1 / 8)  # one substitution in 2 + 2 + 4 reference words
    assert run.stt_rtf == pytest.approx(0.4 / 8.0)
    assert run.llm_tokens_per_s == pytest.approx(30 / 1.0)
    assert run.tts_rtf == pytest.approx(0.4 / 4.0)
    v2v = run.spread("voice_to_voice")
    assert (v2v.p50, v2v.p95, v2v.count) == (1000, 1500, 3)
    assert run.spread("voice_to_voice_session").p50 == 990
    assert run.spread("eou").p50 == 590
    assert run.spread("eou").p50 <= run.spread("eou").p95


def test_latencies_of_a_fast_run_are_not_measured():
    run = hand_made_run()
    run.latency_measured = False
    assert run.spread("voice_to_voice") == metrics.Spread(None, None, 0)
    assert run.to_json()["latency_ms"]["voice_to_voice"] == {"p50": None, "p95": None}


def test_stage_parts_stack_up_to_voice_to_voice():
    run = RunReport(RunConfig("s", "l", "v", Mode.STREAMING))
    run.add(_utterance("a", "x", "x", 1, latency_ms=_timeline(600, 590, 650, 100, 150, 1000, 990)))
    parts = stage_parts(run)
    assert parts["eou_true"] == 600
    assert parts["stt_after_decision"] == 60  # transcript_ready - eou
    assert parts["llm_first_token"] == 100
    assert parts["tts_first_audio"] == 150
    assert parts["other"] == 1000 - (600 + 60 + 100 + 150)


def _filled(first_sample_at: float) -> UtteranceResult:
    from types import SimpleNamespace

    from voiceagent.bench.runner import SpeechSpan, _fill
    from voiceagent.events import Turn

    turn = Turn(5.0, index=1, user_text="hello there", reply_text="Hi.",
                latency_ms={"eou": 300.0, "voice_to_voice": 500.0})  # fmt: skip
    recorder = SimpleNamespace(events=[], turns=[(turn, 100.0 + 4.3, first_sample_at)])
    result = UtteranceResult("c", "a", audio_s=5.0, reference="hello there", speech_end_s=4.0)
    _fill(result, recorder, 100.0, SpeechSpan(0.5, 4.0), realtime=True)  # type: ignore[arg-type]
    return result


def test_voice_to_voice_starts_at_the_true_end_of_speech():
    result = _filled(first_sample_at=104.6)
    assert result.latency_ms["voice_to_voice"] == pytest.approx(600)
    assert result.latency_ms["eou_true"] == pytest.approx(300)
    assert result.talked_over is False


def test_a_reply_that_began_before_the_speech_ended_has_no_voice_to_voice():
    # The last reply started at 3.5 s, the user spoke until 4.0 s: the end went unanswered.
    result = _filled(first_sample_at=103.5)
    assert result.latency_ms["voice_to_voice"] is None
    assert result.talked_over is True
    run = RunReport(RunConfig("s", "l", "v", Mode.STREAMING))
    run.add(result)
    assert run.talked_over == 1
    assert run.to_json()["talked_over"] == 1
    assert run.spread("voice_to_voice").count == 0


def test_an_utterance_that_interrupts_a_reply_stays_open_until_its_own_outcome():
    from voiceagent.audio.clock import FakeClock
    from voiceagent.bench.runner import _TurnRecorder
    from voiceagent.events import Interrupted, SpeechStart, Turn

    recorder = _TurnRecorder(FakeClock(), None)
    recorder.emit(SpeechStart(0.5, audio_s=0.5))
    recorder.emit(Turn(2.0, index=1, user_text="Tell me a story.", reply_text="Once"))
    assert recorder.settled
    # The user talks over the reply: their speech opens an utterance, then the cut-off
    # turn is reported, then the interruption.
    recorder.emit(SpeechStart(3.0, audio_s=3.0))
    recorder.emit(Turn(3.0, index=2, user_text="Tell me a story.", reply_text="Once"))
    recorder.emit(Interrupted(3.0, played_text="Once", silent_after_ms=1.0))
    assert not recorder.settled
    recorder.emit(Turn(5.0, index=3, user_text="Stop.", reply_text="OK."))
    assert recorder.settled
