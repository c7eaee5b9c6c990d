"""Spelling out the numbers in a text: money, clock times, dates, phone numbers, units,
ordinals, years, decimals.

Part of :mod:`voiceagent.turns.speech_text`. Digits are ASCII digits only; other scripts'
digits are left for the voice. Every pattern is anchored by a look-behind that stops it from
starting inside a run of digits, so a long run is scanned once, never once per position.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from voiceagent.turns.number_words import (
    digit_run_to_words,
    digits_to_words,
    number_to_words,
    ordinal_to_words,
    plural_of_last_word,
    year_to_words,
)

_A = re.ASCII  # digits are ASCII digits; other scripts' digits are left to the voice
_INT = r"(?P<int>[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)"
_SIGN = r"(?P<sign>(?<![\w.,\-])-)?"

_NUMBER_SIGN = re.compile(r"(?<![\w.])(?:No\.|#)\s?(?=[0-9])")
_APPROXIMATELY = re.compile(r"[~≈]\s?(?=[0-9])")
_TIMES_SUFFIX = re.compile(r"(?<=[0-9])x(?![A-Za-z0-9])")  # "2x faster"

_CURRENCY = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "¥": ("yen", "yen", "", ""),
    "₹": ("rupee", "rupees", "paisa", "paise"),
}
_CURRENCY_CODES = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}
_MONEY_SCALES = {"thousand": "thousand", "million": "million", "billion": "billion",
                 "trillion": "trillion", "k": "thousand", "m": "million", "mn": "million",
                 "b": "billion", "bn": "billion"}  # fmt: skip
_AMOUNT = _INT + r"(?:\.(?P<frac>[0-9]+))?"
_MONEY_BEFORE = re.compile(
    r"(?P<sign>(?<![\w.,\-])-)?(?P<sym>[$€£¥₹])\s?"
    + _AMOUNT
    + r"(?:\s?(?P<scale>thousand|million|billion|trillion)(?![A-Za-z])"
    + r"|(?P<abbr>[kKmMbB]|bn|mn)(?![A-Za-z]))?",
    _A,
)
_MONEY_AFTER = re.compile(
    r"(?<![0-9.,])"
    + _AMOUNT
    + r"\s?(?:(?P<sym>[$€£¥₹])|(?P<code>USD|EUR|GBP|JPY|INR)(?![A-Za-z]))",
    _A,
)
_CLOCK_TIME = re.compile(
    r"(?<![0-9:.])(?P<hour>[01]?[0-9]|2[0-3]):(?P<minute>[0-5][0-9])(?![0-9:])"
    r"(?:\s?(?P<ampm>[AaPp])\.?\s?[Mm]\.?(?![A-Za-z]))?",
    _A,
)
_HOUR_AMPM = re.compile(
    r"(?<![0-9:.])(?P<hour>1[0-2]|0?[1-9])\s?(?P<ampm>[AaPp])\.?[Mm]\.?(?![A-Za-z])", _A
)

_UNITS = {
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "kmh": ("kilometer per hour", "kilometers per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "m/s": ("meter per second", "meters per second"),
    "km": ("kilometer", "kilometers"), "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"), "m": ("meter", "meters"),
    "ft": ("foot", "feet"), "kg": ("kilogram", "kilograms"), "mg": ("milligram", "milligrams"),
    "g": ("gram", "grams"), "lbs": ("pound", "pounds"), "lb": ("pound", "pounds"),
    "oz": ("ounce", "ounces"), "ms": ("millisecond", "milliseconds"),
    "sec": ("second", "seconds"), "s": ("second", "seconds"), "min": ("minute", "minutes"),
    "hrs": ("hour", "hours"), "hr": ("hour", "hours"), "h": ("hour", "hours"),
    "TB": ("terabyte", "terabytes"), "GB": ("gigabyte", "gigabytes"),
    "MB": ("megabyte", "megabytes"), "KB": ("kilobyte", "kilobytes"),
    "kB": ("kilobyte", "kilobytes"), "GHz": ("gigahertz", "gigahertz"),
    "MHz": ("megahertz", "megahertz"), "kHz": ("kilohertz", "kilohertz"),
    "Hz": ("hertz", "hertz"), "kWh": ("kilowatt hour", "kilowatt hours"),
    "kW": ("kilowatt", "kilowatts"), "W": ("watt", "watts"),
    "ml": ("milliliter", "milliliters"), "mL": ("milliliter", "milliliters"),
    "L": ("liter", "liters"), "°C": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"), "°": ("degree", "degrees"),
}  # fmt: skip
_UNIT = re.compile(
    _SIGN
    + r"(?<![0-9])"
    + _AMOUNT
    + r"\s?(?P<unit>"
    + "|".join(re.escape(unit) for unit in sorted(_UNITS, key=len, reverse=True))
    + r")(?![A-Za-z0-9/])",
    _A,
)
_ORDINAL = re.compile(r"(?<![0-9])" + _INT + r"(?:st|nd|rd|th)(?![A-Za-z])", _A | re.IGNORECASE)
_DECADE = re.compile(r"(?<![0-9])'?(?P<int>[1-9][0-9]{0,2}0)s(?![A-Za-z])", _A)
_FRACTION = re.compile(r"(?<![0-9/])(?P<num>[1-9])\s?[/⁄]\s?(?P<den>[2-9]|10)(?![0-9/])", _A)
_RANGE_DASH = re.compile(r"(?<=[0-9])\s?–\s?(?=[0-9])|(?<=[0-9])-(?=[0-9])")

_MONTHS = ("January February March April May June July August September October November "
           "December").split()  # fmt: skip
MONTH_ABBREVIATIONS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9,
    "sept": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
"""Abbreviated month names (lower case, without their period) and their numbers."""
_MONTH_OF = {name.lower(): number for number, name in enumerate(_MONTHS, 1)} | MONTH_ABBREVIATIONS
# Capitalised only: "may", "mar" and "dec" are words too. An abbreviation may take a period.
_MONTH = (
    r"(?P<month>(?:" + "|".join(_MONTHS) + r")(?![A-Za-z])"
    r"|(?:"
    + "|".join(name.capitalize() for name in sorted(MONTH_ABBREVIATIONS, key=len, reverse=True))
    + r")(?![A-Za-z])\.?)"
)
_DAY = r"(?P<day>3[01]|[12][0-9]|0?[1-9])(?:st|nd|rd|th)?(?![0-9A-Za-z:.,][0-9A-Za-z]|[0-9])"
_YEAR = r"(?:,?\s(?P<year>[12][0-9]{3})(?![0-9]))?"
_MONTH_DAY = re.compile(r"(?<![\w.])" + _MONTH + r"\s" + _DAY + _YEAR, _A)
_DAY_MONTH = re.compile(
    r"(?:(?<![\w])(?P<the>[Tt]he)\s)?(?<![\w.,])" + _DAY + r"\s(?:of\s)?" + _MONTH + _YEAR, _A
)
_MONTH_YEAR = re.compile(r"(?<![\w.])" + _MONTH + r"\s(?=[12][0-9]{3}(?![0-9]))", _A)
_ISO_DATE = re.compile(
    r"(?<![0-9./-])(?P<year>[12][0-9]{3})-(?P<month>0[1-9]|1[0-2])-(?P<day>0[1-9]|[12][0-9]|3[01])"
    r"(?![0-9]|-[0-9])",
    _A,
)
_SLASH_DATE = re.compile(
    r"(?<![0-9./])(?P<first>[0-9]{1,2})/(?P<second>[0-9]{1,2})/(?P<year>[0-9]{4}|[0-9]{2})"
    r"(?![0-9]|/[0-9])",
    _A,
)
# North American numbers: (555) 123-4567, 555-123-4567, 555.123.4567, +1 555 123 4567,
# 1-800-555-1234; and 555-1234 unless it reads as a range of round numbers (500-1000).
_PHONE = re.compile(
    r"(?<![\w+.-])(?P<country>\+?1[\s.-]?)?"
    r"(?:\((?P<area>[0-9]{3})\)\s?(?P<exchange>[0-9]{3})[\s.-]"
    r"|(?P<area2>[0-9]{3})(?P<sep>[.-])(?P<exchange2>[0-9]{3})(?P=sep)"
    r"|(?<=[+1]\s)(?P<area3>[0-9]{3})\s(?P<exchange3>[0-9]{3})\s)"
    r"(?P<line>[0-9]{4})(?![0-9]|[.-][0-9])",
    _A,
)
_LOCAL_PHONE = re.compile(
    r"(?<![\w+.,-])(?P<exchange>[2-9][0-9]{2})-(?P<line>[0-9]{2}(?!00)[0-9]{2})(?![0-9]|[.-][0-9])",
    _A,
)
_DIALLED = re.compile(
    r"(?<![\w])(?P<verb>[Cc]all|[Dd]ial|[Tt]ext)\s(?P<number>[0-9]{3})(?![0-9]|[.,:][0-9])", _A
)
_TIMES_SIGN = re.compile(r"(?<=[0-9])\s?[*×]\s?(?=[0-9])")
_NUMBER = re.compile(_SIGN + r"(?<![0-9])" + _INT + r"(?P<frac>(?:\.[0-9]+)+)?", _A)


def is_sentence_end(text: str, index: int) -> bool:
    """Whether the period at ``text[index]`` (after an abbreviation) also ends a sentence."""
    after = text[index + 1 : index + 4].lstrip()
    return not after or after[0].isupper()


def _amount_words(match: re.Match[str]) -> str:
    words = digit_run_to_words(match.group("int").replace(",", ""))
    if match.group("frac"):
        words += " point " + digits_to_words(match.group("frac"))
    return words


def _speak_money(match: re.Match[str], symbol: str) -> str:
    singular, plural, minor_singular, minor_plural = _CURRENCY[symbol]
    digits = match.group("int").replace(",", "")
    fraction = match.group("frac")
    groups = match.groupdict()
    scale = groups.get("scale") or groups.get("abbr")
    if scale:
        words = f"{_amount_words(match)} {_MONEY_SCALES[scale.lower()]} {plural}"
    elif fraction and len(fraction) == 2 and minor_plural:
        whole, minor = int(digits), int(fraction)
        parts = []
        if whole or not minor:
            parts.append(f"{digit_run_to_words(digits)} {singular if whole == 1 else plural}")
        if minor:
            parts.append(
                f"{number_to_words(minor)} {minor_singular if minor == 1 else minor_plural}"
            )
        words = " and ".join(parts)
    elif fraction:
        words = f"{_amount_words(match)} {plural}"
    else:
        words = f"{digit_run_to_words(digits)} {singular if digits.lstrip('0') == '1' else plural}"
    if groups.get("sign"):
        words = "minus " + words
    return f" {words} "


def _speak_money_before(match: re.Match[str]) -> str:
    return _speak_money(match, match.group("sym"))


def _speak_money_after(match: re.Match[str]) -> str:
    return _speak_money(match, match.group("sym") or _CURRENCY_CODES[match.group("code")])


def _speak_ampm(match: re.Match[str]) -> str:
    letter = match.group("ampm")
    if not letter:
        return ""
    words = " A M" if letter in "Aa" else " P M"
    if match.group().endswith(".") and is_sentence_end(match.string, match.end() - 1):
        words += "."
    return words


def _speak_clock_time(match: re.Match[str]) -> str:
    hour, minute = int(match.group("hour")), int(match.group("minute"))
    words = number_to_words(hour)
    if minute == 0:
        if not match.group("ampm"):
            words += " o'clock" if 1 <= hour <= 12 else " hundred"
    elif minute < 10:
        words += f" oh {number_to_words(minute)}"
    else:
        words += " " + number_to_words(minute)
    return f" {words}{_speak_ampm(match)} "


def _speak_hour_ampm(match: re.Match[str]) -> str:
    return f" {number_to_words(int(match.group('hour')))}{_speak_ampm(match)} "


def _speak_unit(match: re.Match[str]) -> str:
    singular, plural = _UNITS[match.group("unit")]
    is_one = match.group("int") == "1" and not match.group("frac")
    words = f"{_amount_words(match)} {singular if is_one else plural}"
    if match.group("sign"):
        words = "minus " + words
    return f" {words} "


def _speak_ordinal(match: re.Match[str]) -> str:
    digits = match.group("int").replace(",", "")
    if len(digits) > 15:
        return f" {digits_to_words(digits)} "
    return f" {ordinal_to_words(int(digits))} "


def _speak_decade(match: re.Match[str]) -> str:
    value = int(match.group("int"))
    words = year_to_words(value) if value >= 1000 else number_to_words(value)
    return f" {plural_of_last_word(words)} "


def _speak_fraction(match: re.Match[str]) -> str:
    numerator, denominator = int(match.group("num")), int(match.group("den"))
    if numerator >= denominator:
        return match.group().replace("/", " over ").replace("⁄", " over ")
    if denominator == 2:
        name = "half"
    elif denominator == 4:
        name = "quarter"
    else:
        name = ordinal_to_words(denominator)
    if numerator > 1:
        name = "halves" if name == "half" else name + "s"
    return f" {number_to_words(numerator)} {name} "


def _date_words(month: int, day: int, year: str | None, *, day_first: bool = False) -> str:
    name, nth = _MONTHS[month - 1], ordinal_to_words(day)
    words = f"the {nth} of {name}" if day_first else f"{name} {nth}"
    return f"{words}, {year_to_words(int(year))}" if year else words


def _month(match: re.Match[str]) -> int:
    return _MONTH_OF[match.group("month").rstrip(".").lower()]


def _speak_month_day(match: re.Match[str]) -> str:
    return f" {_date_words(_month(match), int(match.group('day')), match.group('year'))} "


def _speak_day_month(match: re.Match[str]) -> str:
    words = _date_words(_month(match), int(match.group("day")), match.group("year"), day_first=True)
    if match.group("the") == "The":
        words = "T" + words[1:]
    return f" {words} "


def _speak_month_year(match: re.Match[str]) -> str:
    return f" {_MONTHS[_month(match) - 1]} "


def _speak_iso_date(match: re.Match[str]) -> str:
    month, day = int(match.group("month")), int(match.group("day"))
    return f" {_date_words(month, day, match.group('year'))} "


def _speak_slash_date(match: re.Match[str]) -> str:
    first, second, year = int(match.group("first")), int(match.group("second")), match.group("year")
    if len(year) == 2:  # '24 is 2024, '99 is 1999
        year = str((2000 if int(year) < 50 else 1900) + int(year))
    if 1 <= first <= 12 and 1 <= second <= 31:  # American order: month first
        return f" {_date_words(first, second, year)} "
    if 1 <= second <= 12 and 13 <= first <= 31:  # the day cannot be a month: day first
        return f" {_date_words(second, first, year, day_first=True)} "
    return match.group()


def _digit_groups(*groups: str | None) -> str:
    """Digits read one by one, a short pause (a comma) between groups."""
    return ", ".join(digits_to_words(group) for group in groups if group)


def _speak_phone(match: re.Match[str]) -> str:
    country = match.group("country")
    spoken = _digit_groups(
        match.group("area") or match.group("area2") or match.group("area3"),
        match.group("exchange") or match.group("exchange2") or match.group("exchange3"),
        match.group("line"),
    )
    if country:
        spoken = ("plus one, " if country.startswith("+") else "one, ") + spoken
    return f" {spoken} "


def _speak_local_phone(match: re.Match[str]) -> str:
    return f" {_digit_groups(match.group('exchange'), match.group('line'))} "


def _speak_dialled(match: re.Match[str]) -> str:
    return f"{match.group('verb')} {digits_to_words(match.group('number'))}"


def _speak_number(match: re.Match[str]) -> str:
    digits = match.group("int").replace(",", "")
    fraction = match.group("frac")
    if fraction:
        parts = fraction[1:].split(".")
        if len(parts) > 1:  # a version such as 1.2.3
            words = " point ".join(digit_run_to_words(part) for part in [digits, *parts])
        else:
            words = f"{digit_run_to_words(digits)} point {digits_to_words(parts[0])}"
    elif "," not in match.group("int") and len(digits) == 4 and 1100 <= int(digits) <= 2099:
        words = year_to_words(int(digits))
    else:
        words = digit_run_to_words(digits)
    if match.group("sign"):
        words = "minus " + words
    return f" {words} "


def speak_numbers(text: str) -> str:
    """Spells out money, clock times, dates, phone numbers, units, ordinals, fractions and
    plain numbers.

    The most specific patterns go first, so "$3.50" is money before "3.50" is a decimal and
    "2025-03-04" a date before "2025-03" a range. Every ASCII digit in the text is gone afterwards.
    """
    if not any("0" <= char <= "9" for char in text):
        return text
    steps: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str] | str], ...] = (
        (_NUMBER_SIGN, "number "),
        (_APPROXIMATELY, " about "),
        (_TIMES_SUFFIX, " times"),
        (_PHONE, _speak_phone),
        (_LOCAL_PHONE, _speak_local_phone),
        (_DIALLED, _speak_dialled),
        (_ISO_DATE, _speak_iso_date),
        (_SLASH_DATE, _speak_slash_date),
        (_MONTH_DAY, _speak_month_day),
        (_DAY_MONTH, _speak_day_month),
        (_MONTH_YEAR, _speak_month_year),
        (_RANGE_DASH, " to "),
        (_TIMES_SIGN, " times "),
        (_MONEY_BEFORE, _speak_money_before),
        (_MONEY_AFTER, _speak_money_after),
        (_CLOCK_TIME, _speak_clock_time),
        (_HOUR_AMPM, _speak_hour_ampm),
        (_DECADE, _speak_decade),
        (_FRACTION, _speak_fraction),
        (_UNIT, _speak_unit),
        (_ORDINAL, _speak_ordinal),
        (_NUMBER, _speak_number),
    )
    for pattern, replacement in steps:
        text = pattern.sub(replacement, text)
    return text
