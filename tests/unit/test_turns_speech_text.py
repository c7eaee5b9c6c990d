"""Normalising LLM output for a TTS voice."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voiceagent.turns.number_words import (
    digit_run_to_words,
    digits_to_words,
    number_to_words,
    ordinal_to_words,
    year_to_words,
)
from voiceagent.turns.speech_text import text_for_speech

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (21, "twenty-one"),
        (100, "one hundred"),
        (105, "one hundred five"),
        (999, "nine hundred ninety-nine"),
        (1000, "one thousand"),
        (1234, "one thousand two hundred thirty-four"),
        (1_000_001, "one million one"),
        (2_500_000_000, "two billion five hundred million"),
        (-42, "minus forty-two"),
        (10**15, "one zero zero zero zero zero zero zero zero zero zero zero zero zero zero zero"),
    ],
)
def test_number_to_words(number: int, words: str) -> None:
    assert number_to_words(number) == words


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (1, "first"),
        (2, "second"),
        (3, "third"),
        (5, "fifth"),
        (12, "twelfth"),
        (20, "twentieth"),
        (21, "twenty-first"),
        (100, "one hundredth"),
        (1009, "one thousand ninth"),
    ],
)
def test_ordinal_to_words(number: int, words: str) -> None:
    assert ordinal_to_words(number) == words


@pytest.mark.parametrize(
    ("year", "words"),
    [
        (1999, "nineteen ninety-nine"),
        (1900, "nineteen hundred"),
        (1905, "nineteen oh five"),
        (2000, "two thousand"),
        (2005, "two thousand five"),
        (2010, "twenty ten"),
        (2024, "twenty twenty-four"),
    ],
)
def test_year_to_words(year: int, words: str) -> None:
    assert year_to_words(year) == words


def test_digits_to_words() -> None:
    assert digits_to_words("007") == "zero zero seven"
    assert digit_run_to_words("007") == "zero zero seven"
    assert digit_run_to_words("1200") == "one thousand two hundred"
    assert digit_run_to_words("1" * 16) == " ".join(["one"] * 16)


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        # markdown
        ("**Hello** _world_ and `ls -la`!", "Hello world and ls -la!"),
        (
            "# Shopping list\n- milk\n- eggs\n\n1. first\n2. second",
            "Shopping list. milk. eggs. first. second.",
        ),
        ("> quoted wisdom", "quoted wisdom"),
        ("See [the docs](https://docs.python.org/3/) now.", "See the docs now."),
        ("![a cat](cat.png)", "a cat"),
        ("Line one\n\n---\n\nLine two", "Line one. Line two"),
        ("| Name | Age |\n|---|---|\n| Ann | 30 |", "Name, Age. Ann, thirty."),
        ("Run this:\n```python\nprint('hi')\n```\nDone.", "Run this: (code omitted) Done."),
        ("~~old~~ new <b>bold</b>", "old new bold"),
        # links and emails
        ("Go to https://www.example.com/path?q=1.", "Go to example dot com."),
        ("Visit github.com/voiceagent today", "Visit github dot com today"),
        ("Write to jane.doe@mail.example.org", "Write to jane dot doe at mail dot example dot org"),
        # numbers
        (
            "I have 3 cats and 1,234 fish.",
            "I have three cats and one thousand two hundred thirty-four fish.",
        ),
        (
            "Pi is 3.14 and it is -5 outside.",
            "Pi is three point one four and it is minus five outside.",
        ),
        ("It's 3.5 liters.", "It's three point five liters."),
        ("the 1st, 2nd, 3rd and 22nd", "the first, second, third and twenty-second"),
        (
            "Born in 1999, moved in 2024.",
            "Born in nineteen ninety-nine, moved in twenty twenty-four.",
        ),
        ("the 1990s and the '80s", "the nineteen nineties and the eighties"),
        ("Save 25% now", "Save twenty-five percent now"),
        ("It costs $5.", "It costs five dollars."),
        ("That's €3.20 or £1.", "That's three euros and twenty cents or one pound."),
        ("Only $0.99", "Only ninety-nine cents"),
        ("A $2.5 billion deal", "A two point five billion dollars deal"),
        ("Meet at 3:45 pm or 9am.", "Meet at three forty-five P M or nine A M."),
        ("The train leaves at 15:30.", "The train leaves at fifteen thirty."),
        ("At 7:05 sharp", "At seven oh five sharp"),
        ("Add 1/2 cup", "Add one half cup"),
        ("Pages 10–20", "Pages ten to twenty"),
        ("Agent 007", "Agent zero zero seven"),
        ("Roughly ~5 km, 2x faster", "Roughly about five kilometers, two times faster"),
        ("Version 2.1.0", "Version two point one point zero"),
        (
            "It takes 10-20 minutes, 2024-25.",
            "It takes ten to twenty minutes, twenty twenty-four to twenty-five.",
        ),
        # dates
        ("On 2025-03-04 we met.", "On March fourth, twenty twenty-five we met."),
        (
            "Born January 5, 1990, died 5 March 2020.",
            "Born January fifth, nineteen ninety, died the fifth of March, twenty twenty.",
        ),
        (
            "On Jan 5th and Feb. 12, 2024.",
            "On January fifth and February twelfth, twenty twenty-four.",
        ),
        ("The 4th of July, Sept. 2023", "The fourth of July, September twenty twenty-three"),
        (
            "Due 12/25/2024 or 25/12/24.",
            "Due December twenty-fifth, twenty twenty-four"
            " or the twenty-fifth of December, twenty twenty-four.",
        ),
        (
            "May 5:30 work? It grew March 3.5 times",
            "May five thirty work? It grew March three point five times",
        ),
        # phone numbers
        (
            "Call (555) 123-4567 or +1 555 123 4567.",
            "Call five five five, one two three, four five six seven"
            " or plus one, five five five, one two three, four five six seven.",
        ),
        (
            "Try 1-800-555-1234 or 555-1234, for 500-1000 people.",
            "Try one, eight zero zero, five five five, one two three four"
            " or five five five, one two three four, for five hundred to one thousand people.",
        ),
        ("Dial 112. Call 911.", "Dial one one two. Call nine one one."),
        # units
        ("It is 5 km away and weighs 1 kg.", "It is five kilometers away and weighs one kilogram."),
        ("Drive at 60 mph", "Drive at sixty miles per hour"),
        (
            "It's 21°C, or -3 °F.",
            "It's twenty-one degrees Celsius, or minus three degrees Fahrenheit.",
        ),
        ("Latency 300ms with 16 GB", "Latency three hundred milliseconds with sixteen gigabytes"),
        # abbreviations and symbols
        ("Dr. Smith and Mr. Jones", "Doctor Smith and Mister Jones"),
        ("Mrs. Brown lives on Baker St.", "Missus Brown lives on Baker Street."),
        ("St. Louis is nice", "Saint Louis is nice"),
        (
            "Fruit, e.g. apples, i.e. red ones, etc.",
            "Fruit, for example apples, that is red ones, et cetera.",
        ),
        ("Cats vs. dogs", "Cats versus dogs"),
        ("Salt & pepper", "Salt and pepper"),
        ("I love C# and C++", "I love C sharp and C plus plus"),
        # emoji and scripts
        ("Great job! 🎉👍🏽", "Great job!"),
        ("Café 日本語 Ελληνικά हिन्दी", "Café 日本語 Ελληνικά हिन्दी"),
        ("Hello \u200bworld\u00ad!", "Hello world!"),
        # whitespace
        ("  lots   of\t\tspace \n\n here ", "lots of space. here"),
        ("", ""),
        ("*** ### ``` ", ""),
        ("Like so:\n```sh\nrm -rf build", "Like so: (code omitted)"),
    ],
)
def test_text_for_speech(text: str, spoken: str) -> None:
    assert text_for_speech(text) == spoken


FORBIDDEN = set("*`_#[]{}<>|\\/~^") | set("0123456789")
markdown_alphabet = st.sampled_from(
    list("abc XYZ 123.,:;!?-–—$€£%@/*_#[]()`<>|~\n\t°'\"")
    + ["```", "**", "http://", "www.", "😀", "ß", "日", "Jan", "May", "the", "+1", "2024-", "(555)"]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.text(max_size=10_000),
        st.lists(markdown_alphabet, max_size=3_000).map("".join),
    )
)
def test_any_unicode_gives_clean_speakable_text(text: str) -> None:
    spoken = text_for_speech(text)
    assert isinstance(spoken, str)
    assert not FORBIDDEN & set(spoken), spoken
    assert "://" not in spoken
    assert spoken == spoken.strip()
    assert "  " not in spoken
    spoken.encode("utf-8")  # no lone surrogates or other unencodable leftovers


ADVERSARIAL = {
    "letters": "a" * 10_000,
    "digits": "1" * 10_000,
    "digit groups": "1,000" * 2_000,
    "brackets": "[" * 10_000,
    "unclosed links": "[a](" * 2_500,
    "schemes": "http://" * 1_400,
    "at signs": "a@" * 5_000,
    "dotted": "a." * 5_000,
    "hyphenated domain": "a-" * 5_000 + ".com",
    "fences": "```" * 3_333,
    "decimals": ".5" * 5_000,
    "versions": "1.1" * 3_333,
    "money": "$1" * 5_000,
    "clock": "1:11" * 2_500,
    "dates": "1/1/1" * 2_000,
    "iso dates": "2020-01-0" * 1_100,
    "phones": "555-" * 2_500,
    "months": "Jan 1 " * 1_700,
    "days of months": "the 1 of May " * 800,
    "tags": "<a " * 3_333,
    "emoji": "😀" * 10_000,
    "table rows": "|a|b|\n" * 2_000,
    "mixed": "".join(random.Random(7).choice("ab1.,:-$%@/ *_#[]()`\n€°") for _ in range(10_000)),
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_long_adversarial_input_is_fast(name: str) -> None:
    started = time.perf_counter()
    text_for_speech(ADVERSARIAL[name])
    # Linear passes take a few ms here; catastrophic backtracking would take minutes.
    assert time.perf_counter() - started < 1.0
