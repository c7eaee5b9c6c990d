"""The hallucination guards that decide whether a transcript is dropped."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voiceagent.interfaces import Transcript
from voiceagent.transcript_filter import (
    DropReason,
    FilterOptions,
    check_transcript,
    has_repeated_ngram,
    is_filler_only,
    is_phantom_phrase,
    is_repetition_loop,
    longest_tandem_repeat,
    words_of,
)

pytestmark = pytest.mark.unit


def transcript(text: str, *, no_speech_prob: float = 0.05, avg_logprob: float = -0.2) -> Transcript:
    return Transcript(
        text=text,
        audio_s=2.0,
        stt_ms=50.0,
        no_speech_prob=no_speech_prob,
        avg_logprob=avg_logprob,
    )


@pytest.mark.parametrize(
    "text",
    [
        "What's the weather like in Paris tomorrow?",
        "Ask not what your country can do for you, ask what you can do for your country.",
        "Thank you, that was helpful.",
        "I said thank you to her.",
        "No, no, no.",
        "Okay.",
        "Mm-hmm.",
        "Uh-huh.",
        "Huh?",
        "Play some music.",
        "Hmm, what time is it?",
    ],
)
def test_real_speech_is_kept(text: str) -> None:
    assert check_transcript(transcript(text), voiced_share=0.9) is None


@pytest.mark.parametrize("text", ["", "   ", "\n\t", ".", "...", "?!", " - ", "♪", "♪♪ ♪"])
def test_empty_or_punctuation_only_is_dropped(text: str) -> None:
    assert check_transcript(transcript(text)) is DropReason.EMPTY


@pytest.mark.parametrize(
    "text",
    [
        "Thank you.",
        "thank you",
        "THANK YOU!",
        "Thank you. Thank you.",
        "Thanks for watching!",
        "Thank you for watching.",
        "Please subscribe.",
        "Please like and subscribe!",
        "you",
        "You.",
        "Bye.",
        "Bye-bye.",
        "[Music]",
        "(music)",
        "(upbeat music)",
        "[BLANK_AUDIO]",
        "*sighs*",
        "♪ La la la ♪",
        "Subtitles by the Amara.org community",
        "Subtitles by Steve.",
        "Transcribed by ESO, translated by —",
    ],
)
def test_whole_transcript_phantom_phrases_are_dropped(text: str) -> None:
    # Patchy voice (noise the VAD half-believed): every phantom phrase goes.
    assert check_transcript(transcript(text), voiced_share=0.4) is DropReason.PHANTOM_PHRASE


@pytest.mark.parametrize(
    "text",
    [
        "Thank you. What's the weather?",
        "Bye the way, where is my phone?",
        "You should call mom.",
        "Subtitles are on, please turn them off.",
        "[Music] Turn it down please.",
    ],
)
def test_phantom_phrase_inside_real_speech_is_kept(text: str) -> None:
    assert not is_phantom_phrase(text)
    assert check_transcript(transcript(text), voiced_share=0.9) is None


def test_whispers_silence_rule_needs_both_scores() -> None:
    text = "I'm going to put the knife on the side."
    assert (
        check_transcript(transcript(text, no_speech_prob=0.88, avg_logprob=-1.2))
        is DropReason.NO_SPEECH
    )
    # Either score alone is not enough (a confident decode of quiet speech is kept).
    assert check_transcript(transcript(text, no_speech_prob=0.88, avg_logprob=-0.4)) is None
    assert check_transcript(transcript(text, no_speech_prob=0.3, avg_logprob=-1.2)) is None


def test_very_low_confidence_is_dropped_whatever_no_speech_says() -> None:
    text = "I'm going to go ahead and see what I can do."
    assert (
        check_transcript(transcript(text, no_speech_prob=0.5, avg_logprob=-1.8))
        is DropReason.LOW_CONFIDENCE
    )


def test_low_voiced_share_is_dropped_only_when_given() -> None:
    text = "Okay."
    assert check_transcript(transcript(text), voiced_share=0.05) is DropReason.LOW_VOICED_SHARE
    assert check_transcript(transcript(text), voiced_share=0.2) is None
    assert check_transcript(transcript(text), voiced_share=None) is None


def test_thresholds_come_from_options() -> None:
    strict = FilterOptions(min_voiced_share=0.5)
    assert check_transcript(transcript("Okay."), 0.4, strict) is DropReason.LOW_VOICED_SHARE


@pytest.mark.parametrize(
    "text", ["Mmm. Mmm. Mmm. Mmm. Oh", "Mmmmmm... Mmmmmm...", "Whoa! Whoa! Whoa!", "Ooh!", "Um, uh"]
)
def test_sounds_without_words_are_dropped(text: str) -> None:
    assert is_filler_only(text)
    assert check_transcript(transcript(text), voiced_share=0.9) is DropReason.FILLER_ONLY


@pytest.mark.parametrize("text", ["Mm-hmm.", "Uh-huh.", "Huh?", "Oh no", "Um, what time is it?"])
def test_affirmatives_and_words_are_not_filler(text: str) -> None:
    assert not is_filler_only(text)


@pytest.mark.parametrize(
    "text",
    [
        "I'm going to the store. I'm going to the store. I'm going to the store.",
        "the the the the the",
        "Book, book, book, book, book, book.",
        "so so so so so so so so",
        "Hello there, hello there, hello there",
    ],
)
def test_one_phrase_over_and_over_is_dropped(text: str) -> None:
    assert is_repetition_loop(text)
    assert check_transcript(transcript(text), voiced_share=0.9) is DropReason.REPETITION


@pytest.mark.parametrize(
    "text",
    [
        "No, no, no.",
        "Very very good.",
        "Ask not what your country can do for you, ask what you can do for your country.",
        "It is what it is.",
        "I think, I think we should go now before it gets dark outside tonight.",
    ],
)
def test_ordinary_repetition_is_not_a_loop(text: str) -> None:
    assert not is_repetition_loop(text)


def test_longest_tandem_repeat_finds_the_run() -> None:
    words = "please say it again say it again say it again now".split()
    repeat = longest_tandem_repeat(words)
    assert (repeat.phrase_words, repeat.repeats, repeat.start) == (3, 3, 1)
    assert longest_tandem_repeat([]).repeats == 1
    assert longest_tandem_repeat(["one"]).repeats == 1


def test_repeated_ngram_spots_a_decoder_restart() -> None:
    assert has_repeated_ngram("in being comparatively modern, in being comparatively modern, in")
    assert not has_repeated_ngram("ask not what your country can do for you ask what you can do")
    assert not has_repeated_ngram("short")


def test_words_ignore_case_punctuation_and_curly_apostrophes() -> None:
    assert words_of("Don\u2019t STOP, now!") == ["don't", "stop", "now"]


@given(st.text())
def test_any_text_gets_a_verdict_without_error(text: str) -> None:
    verdict = check_transcript(transcript(text), voiced_share=0.5)
    assert verdict is None or isinstance(verdict, DropReason)
    if not text.strip():
        assert verdict is DropReason.EMPTY


@given(st.sampled_from(["Thank you.", "Bye.", "[Music]"]), st.sampled_from(["", " ", "\n"]))
def test_phantoms_survive_surrounding_whitespace(phrase: str, pad: str) -> None:
    assert is_phantom_phrase(pad + phrase + pad)


def test_a_clearly_spoken_thank_you_is_kept_but_a_phantom_one_is_not() -> None:
    clear = Transcript("Thank you.", audio_s=0.8, stt_ms=1.0, no_speech_prob=0.02, avg_logprob=-0.2)
    assert check_transcript(clear, voiced_share=0.9) is None
    assert check_transcript(clear, voiced_share=None) is DropReason.PHANTOM_PHRASE
    assert check_transcript(clear, voiced_share=0.3) is DropReason.PHANTOM_PHRASE
    unsure = Transcript("Thank you.", audio_s=0.8, stt_ms=1.0, no_speech_prob=0.4, avg_logprob=-0.2)
    assert check_transcript(unsure, voiced_share=0.9) is DropReason.PHANTOM_PHRASE
    credits = Transcript("Thanks for watching!", 1.0, 1.0, no_speech_prob=0.0, avg_logprob=-0.1)
    assert check_transcript(credits, voiced_share=1.0) is DropReason.PHANTOM_PHRASE


def test_dot_runs_whisper_pads_noise_with_are_dropped() -> None:
    garbage = Transcript("game of the . . . . . . . . . .", 10.0, 1.0, 0.3, -0.5)
    assert check_transcript(garbage, voiced_share=0.5) is DropReason.REPETITION
    speech = Transcript("Well - I think so - yes.", 2.0, 1.0, 0.01, -0.2)
    assert check_transcript(speech, voiced_share=0.9) is None
