"""Spelling numbers as English words, written here so no dependency is needed.

American usage: no "and" inside numbers ("one hundred five"), hyphenated tens ("twenty-one"),
years in pairs ("nineteen ninety-nine").
"""

from __future__ import annotations

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand"))
# Beyond this, nobody says the number: read it digit by digit (IDs, long codes).
_MAX_SPOKEN_INT = 10**15
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip


def _below_thousand(number: int) -> str:
    hundreds, rest = divmod(number, 100)
    words = [f"{_ONES[hundreds]} hundred"] if hundreds else []
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens] + (f"-{_ONES[ones]}" if ones else ""))
    elif rest:
        words.append(_ONES[rest])
    return " ".join(words)


def digits_to_words(digits: str) -> str:
    """Reads ASCII digits one by one: "007" -> "zero zero seven"."""
    return " ".join(_ONES[ord(char) - 48] for char in digits if "0" <= char <= "9")


def number_to_words(number: int) -> str:
    """Spells an integer in American English: 1234 -> "one thousand two hundred thirty-four".

    Numbers of a quadrillion or more are read digit by digit.
    """
    if number < 0:
        return "minus " + number_to_words(-number)
    if number == 0:
        return "zero"
    if number >= _MAX_SPOKEN_INT:
        return digits_to_words(str(number))
    words = []
    for scale, name in _SCALES:
        count, number = divmod(number, scale)
        if count:
            words.append(f"{_below_thousand(count)} {name}")
    if number:
        words.append(_below_thousand(number))
    return " ".join(words)


def ordinal_to_words(number: int) -> str:
    """Spells an ordinal: 1 -> "first", 22 -> "twenty-second", 100 -> "one hundredth"."""
    words = number_to_words(number)
    cut = max(words.rfind(" "), words.rfind("-")) + 1
    head, last = words[:cut], words[cut:]
    if last in _ORDINAL_WORDS:
        return head + _ORDINAL_WORDS[last]
    if last.endswith("y"):
        return head + last[:-1] + "ieth"
    return head + last + "th"


def year_to_words(year: int) -> str:
    """Spells a year the way it is said: 1999 -> "nineteen ninety-nine", 2005 -> "two
    thousand five", 1905 -> "nineteen oh five"."""
    if not 1000 <= year <= 9999 or 2000 <= year <= 2009 or year % 1000 == 0:
        return number_to_words(year)
    century, rest = divmod(year, 100)
    if rest == 0:
        return f"{number_to_words(century)} hundred"
    if rest < 10:
        return f"{number_to_words(century)} oh {_ONES[rest]}"
    return f"{number_to_words(century)} {number_to_words(rest)}"


def digit_run_to_words(digits: str) -> str:
    """Spells a run of ASCII digits; leading zeros and very long runs are read digit by digit."""
    if (len(digits) > 1 and digits[0] == "0") or len(digits) > 15:
        return digits_to_words(digits)
    return number_to_words(int(digits))


def plural_of_last_word(words: str) -> str:
    """Makes the last word plural: "nineteen ninety" -> "nineteen nineties" (decades)."""
    return words[:-1] + "ies" if words.endswith("y") else words + "s"
