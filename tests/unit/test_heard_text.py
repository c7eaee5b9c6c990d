"""What the user heard of a reply cut off by a barge-in (pure; no audio)."""

from __future__ import annotations

import pytest

from voiceagent.responder import SpokenChunk, heard_text

pytestmark = pytest.mark.unit

CHUNKS = [
    SpokenChunk("In being comparatively", start_sample=0, sample_count=3000),
    SpokenChunk("modern, it is a classic tale.", start_sample=3000, sample_count=6000),
]


@pytest.mark.parametrize(
    ("heard_samples", "report", "history"),
    [
        (0, "", ""),
        (1000, "In", ""),  # a word of the first chunk: reported, not kept for the LLM
        (3000, "In being comparatively", "In being comparatively"),
        (6000, "In being comparatively modern, it is", "In being comparatively"),
        (9000, "In being comparatively modern, it is a classic tale.",
         "In being comparatively modern, it is a classic tale."),
    ],
)  # fmt: skip
def test_heard_words_and_the_whole_chunks_kept_for_the_llm(
    heard_samples: int, report: str, history: str
) -> None:
    assert heard_text(CHUNKS, heard_samples) == report
    assert heard_text(CHUNKS, heard_samples, whole_chunks_only=True) == history
