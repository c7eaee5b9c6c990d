"""Hallucination guards: whether a transcript is real user speech or something to drop.

Whisper invents text for silence, noise and music: "Thank you.", "[Music]", a phrase looped
over and over. This module decides, from the transcript and its decoder scores (plus the share
of voiced frames the VAD saw, when the caller has it), whether the session should drop the
turn. Pure logic: no models, no heavy imports.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from voiceagent.interfaces import Transcript


class DropReason(StrEnum):
    """Why a transcript was dropped (the ``reason`` of a ``dropped`` event)."""

    EMPTY = "empty"
    """No words at all: empty, whitespace, punctuation or symbols only."""
    NO_SPEECH = "no_speech"
    """Whisper's own silence rule: likely no speech and a low-confidence decode."""
    LOW_CONFIDENCE = "low_confidence"
    """The decoder was unsure of nearly every token, whatever it thought of the audio."""
    LOW_VOICED_SHARE = "low_voiced_share"
    """Too few frames of the utterance were voice according to the VAD."""
    PHANTOM_PHRASE = "phantom_phrase"
    """The whole transcript is a phrase Whisper emits for silence or music."""
    FILLER_ONLY = "filler_only"
    """Only sounds without words ("Mmm.", "Oh", "Whoa! Whoa!"): noise, breath or humming."""
    REPETITION = "repetition"
    """One short phrase repeated many times, the shape of a decoder loop."""


@dataclass(frozen=True)
class FilterOptions:
    """Thresholds of :func:`check_transcript`.

    Attributes:
        no_speech_prob_above: Drop when ``no_speech_prob`` is above this ...
        avg_logprob_below: ... and ``avg_logprob`` is below this (Whisper's defaults).
        avg_logprob_floor: Drop when ``avg_logprob`` is below this, whatever
            ``no_speech_prob`` says (real speech measured above -0.5 on tiny.en; decodes of
            kitchen noise below -1.7).
        min_voiced_share: Drop when the VAD says less than this share of frames was voice.
        min_phrase_repeats: A phrase of two or more words repeated back to back this many
            times, covering at least half the words, is a loop.
        min_word_repeats: Any phrase (a single word included) repeated back to back this
            many times is a loop, wherever it is.
        max_phrase_words: Longest phrase considered by the repetition check.
    """

    no_speech_prob_above: float = 0.6
    avg_logprob_below: float = -1.0
    avg_logprob_floor: float = -1.5
    min_voiced_share: float = 0.2
    min_phrase_repeats: int = 3
    min_word_repeats: int = 5
    max_phrase_words: int = 8


DEFAULT_FILTER_OPTIONS = FilterOptions()

# Normalised (lower case, no punctuation) whole-transcript phrases that Whisper produces for
# silence, noise and music: its training data is full of subtitle credits and video outros.
PHANTOM_PHRASES: frozenset[str] = frozenset(
    {
        "you",
        "thank you",
        "thank you very much",
        "thank you so much",
        "thanks",
        "thanks for watching",
        "thank you for watching",
        "thank you so much for watching",
        "thank you for watching and see you next time",
        "thanks for watching and see you next time",
        "thanks for listening",
        "thank you for listening",
        "please subscribe",
        "please subscribe to my channel",
        "please like and subscribe",
        "like and subscribe",
        "subscribe to my channel",
        "dont forget to subscribe",
        "see you next time",
        "see you in the next video",
        "bye",
        "bye bye",
        # Bare words that only Whisper says; "[Music]"-style annotations are caught apart.
        "blank audio",
    }
)

# Phantoms people also really say to an assistant: kept when the audio was clearly speech.
CONVERSATIONAL_PHANTOMS: frozenset[str] = frozenset(
    {"thank you", "thank you very much", "thank you so much", "thanks", "bye", "bye bye"}
)

# Whole transcripts starting like this are credits, not speech.
PHANTOM_PREFIXES: tuple[str, ...] = (
    "subtitles by",
    "subtitled by",
    "captions by",
    "captioning by",
    "closed captioning by",
    "transcribed by",
    "transcription by",
    "translated by",
    "amaraorg",
    "www",
)

# Sounds rather than words: hums, hesitations, exclamations, la-la singing. Not here:
# "mm-hmm" and "uh-huh" (they mean yes) and "huh?" (it means "say again").
_FILLER = re.compile(
    r"(?:h*m+|h+m+|u+h+|u+m+|a+h+|o+h*|o+o+h*|w+h*o+a+h*|w+o+o*[ph]*|e+r+m*|e+h+|"
    r"(?:la)+|l+a+)"
)
_WORD_OR_HYPHENATED = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")
# An annotation in brackets, e.g. "[Music]", "(upbeat music)", "*sighs*", "♪ la la ♪".
_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|♪[^♪]*♪|♫[^♫]*♫")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def words_of(text: str) -> list[str]:
    """Lower-case words of ``text`` with punctuation removed ("Don't!" -> ["don't"])."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def _normalised(text: str) -> str:
    """Lower case, no punctuation or apostrophes, single spaces: "Don't go." -> "dont go"."""
    return " ".join(word.replace("'", "") for word in words_of(text))


def is_phantom_phrase(text: str) -> bool:
    """Whether the whole of ``text`` is something Whisper says to silence or music.

    Every sentence must be such a phrase ("Thank you. Thank you." counts), and text that is
    only bracketed annotations ("[Music]", "(upbeat music)", "♪ ... ♪") counts too. A phrase
    inside real speech ("I said thank you to her") never does.
    """
    if not text.strip():
        return False
    if not words_of(_ANNOTATION.sub(" ", text)):
        return True  # only annotations or symbols
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if words_of(s)]
    return all(_is_phantom_sentence(sentence) for sentence in sentences)


def _is_phantom_sentence(sentence: str) -> bool:
    normalised = _normalised(sentence)
    if normalised in PHANTOM_PHRASES:
        return True
    squashed = normalised.replace(" ", "")
    return any(
        normalised.startswith(prefix) or squashed.startswith(prefix) for prefix in PHANTOM_PREFIXES
    )


def is_filler_only(text: str) -> bool:
    """Whether ``text`` has words and every one is a sound, not a word ("Mmm. Oh", "Whoa!")."""
    tokens = _WORD_OR_HYPHENATED.findall(text.lower())
    return bool(tokens) and all(_FILLER.fullmatch(token) for token in tokens)


@dataclass(frozen=True)
class TandemRepeat:
    """The longest run of one phrase repeated back to back inside a list of words."""

    phrase_words: int
    repeats: int
    start: int

    @property
    def covered_words(self) -> int:
        return self.phrase_words * self.repeats


def longest_tandem_repeat(words: Sequence[str], max_phrase_words: int = 8) -> TandemRepeat:
    """Find the phrase (1 to ``max_phrase_words`` words) repeated back to back most often.

    Ties go to the run that covers more words. ``repeats`` is 1 when nothing repeats.
    """
    best = TandemRepeat(phrase_words=1, repeats=1, start=0)
    count = len(words)
    for size in range(1, min(max_phrase_words, count // 2) + 1):
        for start in range(count - 2 * size + 1):
            repeats = 1
            while (
                start + (repeats + 1) * size <= count
                and words[start + repeats * size : start + (repeats + 1) * size]
                == words[start : start + size]
            ):
                repeats += 1
            candidate = TandemRepeat(size, repeats, start)
            if (repeats, candidate.covered_words) > (best.repeats, best.covered_words):
                best = candidate
    return best


def is_repetition_loop(text: str, options: FilterOptions = DEFAULT_FILTER_OPTIONS) -> bool:
    """Whether ``text`` is mostly one short phrase said over and over.

    "Thank you thank you thank you" and "the the the the the" are loops; "no, no, no" and
    "ask not what your country can do for you, ask what you can do for your country" are not.
    """
    words = words_of(text)
    repeat = longest_tandem_repeat(words, options.max_phrase_words)
    if repeat.repeats >= options.min_word_repeats:
        return True
    return (
        repeat.phrase_words >= 2
        and repeat.repeats >= options.min_phrase_repeats
        and 2 * repeat.covered_words >= len(words)
    )


def is_mostly_punctuation(text: str) -> bool:
    """Whether ``text`` is mostly tokens without a letter or digit ("game of the . . . . .").

    Whisper pads noise with runs of dots like this; speech has a stray dash at most.
    """
    tokens = text.split()
    marks = sum(1 for token in tokens if not any(c.isalnum() for c in token))
    return marks >= 5 and 2 * marks >= len(tokens)


def has_repeated_ngram(text: str, words_per_ngram: int = 4) -> bool:
    """Whether any run of ``words_per_ngram`` words occurs twice in ``text``.

    A cheap sign that a decoder started over ("... modern, in being comparatively modern").
    Real speech trips it too now and then, so it is a reason to double-check, not to drop.
    """
    words = words_of(text)
    seen: set[tuple[str, ...]] = set()
    for start in range(len(words) - words_per_ngram + 1):
        ngram = tuple(words[start : start + words_per_ngram])
        if ngram in seen:
            return True
        seen.add(ngram)
    return False


def _is_said_clearly(transcript: Transcript, voiced_share: float | None) -> bool:
    """A "Thank you." that the VAD heard as steady voice and Whisper decoded with confidence
    is the user thanking us, not Whisper filling silence."""
    return (
        _normalised(transcript.text) in CONVERSATIONAL_PHANTOMS
        and voiced_share is not None
        and voiced_share >= 0.6
        and transcript.no_speech_prob < 0.2
        and transcript.avg_logprob > -0.6
    )


def check_transcript(
    transcript: Transcript,
    voiced_share: float | None = None,
    options: FilterOptions = DEFAULT_FILTER_OPTIONS,
) -> DropReason | None:
    """Decide whether to drop a transcript, and why.

    Args:
        transcript: What speech-to-text made of the utterance.
        voiced_share: Share (0-1) of the utterance's frames the VAD judged to be voice, or
            None when the caller has no VAD verdict.
        options: Thresholds.

    Returns:
        The reason to drop it, or None to keep it.
    """
    if not words_of(transcript.text):
        return DropReason.EMPTY
    if (
        transcript.no_speech_prob > options.no_speech_prob_above
        and transcript.avg_logprob < options.avg_logprob_below
    ):
        return DropReason.NO_SPEECH
    if transcript.avg_logprob < options.avg_logprob_floor:
        return DropReason.LOW_CONFIDENCE
    if voiced_share is not None and voiced_share < options.min_voiced_share:
        return DropReason.LOW_VOICED_SHARE
    if is_phantom_phrase(transcript.text) and not _is_said_clearly(transcript, voiced_share):
        return DropReason.PHANTOM_PHRASE
    if is_filler_only(transcript.text):
        return DropReason.FILLER_ONLY
    if is_repetition_loop(transcript.text, options) or is_mostly_punctuation(transcript.text):
        return DropReason.REPETITION
    return None
