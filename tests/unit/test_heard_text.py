"""What the user heard of a reply cut off by a barge-in (pure; no audio)."""

from __future__ import annotations

import pytest

from voiceagent.responder import SpokenChunk, heard_text
from voiceagent.turns.sentences import whole_sentences

pytestmark = pytest.mark.unit

CHUNKS = [
    SpokenChunk("Once upon a", start_sample=0, sample_count=3000),
    SpokenChunk("time, there was a cat.", start_sample=3000, sample_count=5000),
    SpokenChunk('It said "hi." Then it', start_sample=8000, sample_count=5000),
]


@pytest.mark.parametrize(
    ("heard_samples", "heard", "kept"),
    [
        (0, "", ""),
        (1000, "Once", ""),  # a word: reported as heard, not kept for the LLM
        (6000, "Once upon a time, there was", ""),
        (8000, "Once upon a time, there was a cat.", "Once upon a time, there was a cat."),
        (11000, 'Once upon a time, there was a cat. It said "hi."',
         'Once upon a time, there was a cat. It said "hi."'),
        (13000, 'Once upon a time, there was a cat. It said "hi." Then it',
         'Once upon a time, there was a cat. It said "hi."'),
    ],
)  # fmt: skip
def test_heard_words_and_the_whole_sentences_kept_for_the_llm(
    heard_samples: int, heard: str, kept: str
) -> None:
    assert heard_text(CHUNKS, heard_samples) == heard
    assert whole_sentences(heard_text(CHUNKS, heard_samples)) == kept


def test_a_decimal_point_or_an_abbreviation_is_no_sentence_end() -> None:
    assert whole_sentences("It costs 3.50 and") == ""
    assert whole_sentences("Wait! What") == "Wait!"
    assert whole_sentences("Ask Dr. Smith. Then") == "Ask Dr. Smith."
