"""Benchmark arithmetic: percentiles, word error rate, false turns, real-time factors.

Pure functions over numbers and strings; no models, no clocks. Percentiles use the
*nearest-rank* method: the p-th percentile of n sorted values is the value at rank
``ceil(p / 100 * n)`` (1-based). It always returns a value that was measured (no
interpolation between two runs), which is what a latency report should show; with few
samples p95 is simply the slowest one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class Spread:
    """p50 and p95 of one latency (milliseconds), None when nothing was measured."""

    p50: float | None
    p95: float | None
    count: int = 0

    def to_json(self) -> dict[str, float | None]:
        return {
            "p50": None if self.p50 is None else round(self.p50, 1),
            "p95": None if self.p95 is None else round(self.p95, 1),
        }


def percentile(values: Iterable[float], p: float) -> float | None:
    """Nearest-rank percentile (``0 < p <= 100``); None for no values.

    >>> percentile([15, 20, 35, 40, 50], 30)
    20
    """
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    ordered = sorted(v for v in values if v is not None and math.isfinite(v))
    if not ordered:
        return None
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def spread(values: Iterable[float | None]) -> Spread:
    """p50 and p95 of the measured values (None entries are skipped)."""
    measured = [v for v in values if v is not None and math.isfinite(v)]
    return Spread(percentile(measured, 50), percentile(measured, 95), len(measured))


@lru_cache(maxsize=1)
def _normalizer() -> Any:
    from whisper_normalizer.english import (  # type: ignore[import-untyped,unused-ignore]
        EnglishTextNormalizer,
    )

    return EnglishTextNormalizer()


def normalize_text(text: str) -> str:
    """Whisper's English normaliser: lower case, no punctuation, "Mr." -> "mister", etc."""
    return " ".join(_normalizer()(text).split())


@dataclass(frozen=True)
class WordErrors:
    """Word-level edit counts summed over utterances; ``rate`` is the corpus WER."""

    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def rate(self) -> float | None:
        if self.reference_words == 0:
            return None
        return (self.substitutions + self.deletions + self.insertions) / self.reference_words


def word_errors(references: Sequence[str], hypotheses: Sequence[str]) -> WordErrors:
    """Corpus word errors: both sides normalised, edits summed, divided by reference words.

    Pairs whose normalised reference is empty carry no words to get wrong and are skipped.
    """
    if len(references) != len(hypotheses):
        raise ValueError("references and hypotheses differ in length")
    pairs = [
        (normalize_text(r), normalize_text(h)) for r, h in zip(references, hypotheses, strict=True)
    ]
    pairs = [(r, h) for r, h in pairs if r]
    if not pairs:
        return WordErrors(0, 0, 0, 0)
    import jiwer

    out = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs])
    return WordErrors(
        substitutions=out.substitutions,
        deletions=out.deletions,
        insertions=out.insertions,
        reference_words=sum(len(r.split()) for r, _ in pairs),
    )


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float | None:
    """Corpus WER (see :func:`word_errors`); None when there are no reference words."""
    return word_errors(references, hypotheses).rate


def false_turns(turns_per_utterance: Sequence[int], expects_speech: Sequence[bool]) -> int:
    """Turns produced where nobody spoke: every turn of a noise utterance is a false turn."""
    return sum(
        turns for turns, speech in zip(turns_per_utterance, expects_speech, strict=True)
        if not speech
    )  # fmt: skip


def split_turns(turns_per_utterance: Sequence[int], expects_speech: Sequence[bool]) -> int:
    """Extra turns in speech utterances: one utterance answered as two (a pause ended it)."""
    return sum(
        max(0, turns - 1)
        for turns, speech in zip(turns_per_utterance, expects_speech, strict=True)
        if speech
    )


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, None when the denominator is not positive.

    Used for real-time factors (compute seconds / audio seconds: below 1 is faster than real
    time) and tokens per second.
    """
    if denominator <= 0:
        return None
    return numerator / denominator


def speed_up(baseline_ms: float | None, ours_ms: float | None) -> float | None:
    """How many times faster ours is (``baseline / ours``); None if either is missing."""
    if baseline_ms is None or ours_ms is None or ours_ms <= 0:
        return None
    return baseline_ms / ours_ms
