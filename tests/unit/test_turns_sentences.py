"""Cutting streamed LLM text into speakable chunks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voiceagent.errors import UsageError
from voiceagent.turns.sentences import ChunkerConfig, SpeakableChunker

pytestmark = pytest.mark.unit


def chunk_stream(deltas: list[str], chunker: SpeakableChunker | None = None) -> list[str]:
    chunker = chunker if chunker is not None else SpeakableChunker()
    chunks = []
    for delta in deltas:
        chunks.extend(chunker.feed(delta))
    return chunks + chunker.flush()


def by_characters(text: str) -> list[str]:
    return chunk_stream(list(text))


def test_first_two_chunks_are_clauses_then_whole_sentences() -> None:
    text = "Sure thing, here you go, my friend. The capital of France is Paris, of course. Bye!"
    assert by_characters(text) == [
        "Sure thing,",
        "here you go,",
        "my friend.",
        "The capital of France is Paris, of course.",
        "Bye!",
    ]


def test_a_clause_needs_two_words() -> None:
    assert by_characters("Well, I think, that works. Next one, I say.") == [
        "Well, I think,",
        "that works.",
        "Next one, I say.",
    ]


def test_a_short_first_sentence_is_its_own_chunk() -> None:
    assert by_characters("Hi. How are you today? Fine.") == ["Hi.", "How are you today?", "Fine."]


@pytest.mark.parametrize("boundary", [";", ":", " -", " —", "—"])
def test_other_clause_boundaries_end_the_first_chunk(boundary: str) -> None:
    chunks = by_characters(f"It's simple{boundary} it depends. Really.")
    assert chunks[0] == f"It's simple{boundary}"
    assert len(chunks) == 3


def test_first_chunk_is_capped_at_three_words_and_the_second_at_twelve() -> None:
    # Piper's time to first audio grows with the text: a short first chunk starts the voice
    # early, and a short second one is ready before the first has finished playing.
    words = " ".join(f"word{index}" for index in range(30))
    chunks = by_characters(words + ".")
    assert chunks[0].split() == [f"word{index}" for index in range(3)]
    assert chunks[1].split() == [f"word{index}" for index in range(3, 15)]
    assert chunks[2].split() == [f"word{index}" for index in range(15, 29)] + ["word29."]


def test_a_run_on_later_sentence_is_cut_at_its_last_clause_before_forty_words() -> None:
    run_on = (
        " ".join(f"w{index}" for index in range(30))
        + ", "
        + " ".join(f"x{index}" for index in range(30))
    )
    chunks = by_characters("Okay. Sure. " + run_on + ".")
    assert chunks[:2] == ["Okay.", "Sure."]
    assert chunks[2].endswith("w29,")
    assert chunks[3].startswith("x0")
    assert all(len(chunk.split()) <= 40 for chunk in chunks)


@pytest.mark.parametrize(
    "sentence",
    [
        "Pi is about 3.14 and e is 2.72 today.",
        "Mr. Smith and Dr. Jones met Mrs. Brown.",
        "Bring fruit, e.g. apples, i.e. red ones, etc. and so on.",
        "It was Celtic vs. Rangers on St. Patrick's day.",
        "J. R. R. Tolkien lived in the U.K. for years.",
        "Version 1.2.3 shipped.",
        "We met on Dec. 3 and in Sept. 2024 at No. 5 Main Street.",
    ],
)
def test_no_split_inside_numbers_abbreviations_or_initials(sentence: str) -> None:
    assert by_characters("Okay. Sure. " + sentence + " Next.") == ["Okay.", "Sure.", sentence, "Next."]


def test_a_month_abbreviation_before_a_word_ends_the_sentence() -> None:
    assert by_characters("Okay. Sure. We met in Dec. Then we left.") == [
        "Okay.",
        "Sure.",
        "We met in Dec.",
        "Then we left.",
    ]
    chunker = SpeakableChunker()
    assert chunker.feed("Okay. Sure. It ends in Dec. ") == ["Okay.", "Sure."]  # a day may follow
    assert chunker.feed("3.") == []
    assert chunker.flush() == ["It ends in Dec. 3."]


def test_quotes_and_brackets_stay_with_their_sentence() -> None:
    assert by_characters('Okay. He said "stop." (Really!) Then left.') == [
        "Okay.",
        'He said "stop."',
        "(Really!)",
        "Then left.",
    ]


def test_a_chunk_waits_until_the_boundary_is_proven() -> None:
    chunker = SpeakableChunker()
    assert chunker.feed("It's 3.") == []  # could still become 3.14
    assert chunker.feed("50 dollars.") == []  # the end of the stream may still follow
    assert chunker.feed(" And") == ["It's 3.50 dollars."]
    assert chunker.pending_text == "And"
    assert chunker.flush() == ["And"]


def test_newlines_paragraphs_and_list_items_are_boundaries() -> None:
    text = "Here's how:\n1. Open the door.\n2. Walk in\n- milk\n* eggs\n\n## Next\nDone"
    assert by_characters(text) == [
        "Here's how:",
        "1. Open the door.",
        "2. Walk in",
        "- milk",
        "* eggs",
        "## Next",
        "Done",
    ]


def test_a_fenced_code_block_is_one_chunk() -> None:
    text = "Try this:\n```python\nprint('Hi. There.')\n\nx = 1\n```\nThat prints hi. Done."
    assert by_characters(text) == [
        "Try this:",
        "```python\nprint('Hi. There.')\n\nx = 1\n```",
        "That prints hi.",
        "Done.",
    ]


def test_an_unclosed_code_block_comes_out_at_flush() -> None:
    chunker = SpeakableChunker()
    assert chunker.feed("```sh\nls -la. Then\nmore") == []
    assert chunker.flush() == ["```sh\nls -la. Then\nmore"]


def test_flush_starts_a_new_stream_with_a_short_first_chunk() -> None:
    chunker = SpeakableChunker()
    assert chunk_stream(["One two three, four. Five six seven, eight. Nine ten, eleven."], chunker) == [
        "One two three,",
        "four.",
        "Five six seven, eight.",
        "Nine ten, eleven.",
    ]
    assert chunk_stream(["Again one two, three."], chunker) == ["Again one two,", "three."]


def test_reset_drops_pending_text() -> None:
    chunker = SpeakableChunker()
    chunker.feed("Half a sen")
    chunker.reset()
    assert chunker.flush() == []


def test_whitespace_only_input_gives_no_chunks() -> None:
    assert chunk_stream([" ", "\n\n", "\t "]) == []


def test_bad_config_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        ChunkerConfig(first_chunk_min_words=5, first_chunk_max_words=3)
    with pytest.raises(UsageError):
        ChunkerConfig(max_chunk_words=1)
    with pytest.raises(UsageError):
        ChunkerConfig(second_chunk_max_words=50)


TOKENS = [
    "Hello", "world", "the", "answer", "is", "3.14", "1,000", "Mr.", "Dr.", "e.g.", "etc.",
    "J.", "U.S.", "yes.", "no!", "why?", "so,", "then;", "note:", "—", "-", "–", "2010–2020",
    "3:45", "well...", "…", '"quoted."', "(aside)", "```", "```python", "\n", "\n\n", "1.", "-",
    "*", "**bold**", "`code`", "é", "日本語。", "😀", "", " ",
]  # fmt: skip
texts = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=80).map(" ".join),
    st.lists(st.sampled_from(TOKENS), max_size=80).map("".join),
    st.text(max_size=300),
)


def split_at(text: str, cuts: list[int]) -> list[str]:
    points = sorted({cut % (len(text) + 1) for cut in cuts})
    return [text[start:end] for start, end in zip([0, *points], [*points, len(text)], strict=True)]


@settings(max_examples=300, deadline=None)
@given(text=texts, cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_chunks_cover_the_input_and_do_not_depend_on_token_boundaries(
    text: str, cuts: list[int]
) -> None:
    streamed = chunk_stream(split_at(text, cuts))
    assert "".join("".join(streamed).split()) == "".join(text.split())
    assert all(chunk and chunk == chunk.strip() for chunk in streamed)
    assert streamed == chunk_stream([text])
    if streamed and not streamed[0].startswith("```"):
        assert len(streamed[0].split()) <= 12
