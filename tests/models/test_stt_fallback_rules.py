"""When WhisperStt distrusts its fast path (pure rules; no model is loaded)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from voiceagent.backends.faster_whisper import (
    DEFAULT_WHISPER_OPTIONS,
    DecodeScores,
    FallbackReason,
    capitalize_first_word,
    compression_ratio,
    fallback_reason,
)

pytestmark = pytest.mark.unit

GOOD = DecodeScores(
    text="And so my fellow Americans, ask not what your country can do for you.",
    avg_logprob=-0.2,
    no_speech_prob=0.05,
    compression_ratio=1.3,
)


def scores(**changes: object) -> DecodeScores:
    values = {**GOOD.__dict__, **changes}
    return DecodeScores(**values)  # type: ignore[arg-type]


def test_a_confident_clean_result_stands() -> None:
    assert fallback_reason(GOOD) is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"hit_token_limit": True}, FallbackReason.TOKEN_LIMIT),
        ({"compression_ratio": 2.6}, FallbackReason.COMPRESSION_RATIO),
        (
            {"text": "in being comparatively modern, in being comparatively modern, in"},
            FallbackReason.REPEATED_PHRASE,
        ),
        ({"avg_logprob": -1.2}, FallbackReason.LOW_LOGPROB),
    ],
)
def test_signs_of_a_loop_or_doubt_fall_back(changes: dict, reason: FallbackReason) -> None:
    assert fallback_reason(scores(**changes)) is reason


def test_silence_by_whispers_rule_does_not_fall_back() -> None:
    # No speech and a low log-probability: the transcript filter drops it, no need to retry.
    silent = scores(text="Ooh!", no_speech_prob=0.87, avg_logprob=-1.33)
    assert fallback_reason(silent) is None
    assert fallback_reason(scores(no_speech_prob=0.87, avg_logprob=-0.5)) is None


def test_thresholds_come_from_options() -> None:
    lenient = DEFAULT_WHISPER_OPTIONS.__class__(compression_ratio_above=3.0)
    assert fallback_reason(scores(compression_ratio=2.6), lenient) is None


def test_compression_ratio_of_a_loop_is_high() -> None:
    assert compression_ratio("") == 1.0
    assert compression_ratio("book, " * 40) > 2.4
    assert compression_ratio(GOOD.text) < 2.4


def test_importing_the_backend_loads_no_heavy_library() -> None:
    code = (
        "import sys, voiceagent.backends.faster_whisper, voiceagent.transcript_filter; "
        "heavy = {'faster_whisper', 'ctranslate2', 'tokenizers', 'torch', 'onnxruntime'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("printing, in the only sense", "Printing, in the only sense"),
        ("Printing, in the only sense", "Printing, in the only sense"),
        (" printing", " Printing"),
        ("iPhone battery", "iPhone battery"),
        ("42 apples", "42 apples"),
        ("", ""),
        ("   ", "   "),
    ],
)
def test_a_transcript_always_starts_with_a_capital(text: str, expected: str) -> None:
    # So the words read ahead by the LLM stay a prefix of the final transcript's prompt.
    assert capitalize_first_word(text) == expected
