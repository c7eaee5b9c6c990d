"""Turning LLM output into plain words a TTS voice reads well.

An LLM writes for the eye: markdown, code, links, emoji, digits and symbols. A TTS voice reads
``**Note:**`` as "asterisk asterisk" and ``$3.20`` as "dollar three point two zero", so
:func:`text_for_speech` rewrites the text into the words a person would say. Letters of every
script are kept; anything that cannot be spoken is dropped.

It must never raise and must stay fast on long input: every pattern here is anchored or has
bounded, non-overlapping repetition, so none can backtrack catastrophically.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from voiceagent.turns.spoken_numbers import is_sentence_end, speak_numbers

_TRADEMARKS = str.maketrans({"™": "", "℠": ""})  # NFKC would turn these into letters
_CHARACTER_FIXES = str.maketrans(
    {"−": "-", "‐": "-", "‑": "-", "‒": "-", "\u2028": "\n", "\u2029": "\n", "\t": " ", "\r": "\n"}
)
_FENCE = "```"
_CODE_OMITTED = " (code omitted) "

_HEADING = re.compile(r"#{1,6}(?=\s|$)")
_BULLET = re.compile(r"(?:[-*+•‣◦▪]|[0-9]{1,2}[.)])\s+(?:\[[ xX]\]\s+)?")
_RULE = re.compile(r"(?:[-*_=]\s*){3,}")
_TABLE_SEPARATOR = re.compile(r":?-+:?")
_TERMINAL = tuple(".!?:;,…")

_IMAGE_OR_LINK = re.compile(r"!?\[([^\[\]\n]{0,300})\]\([^()\n]{0,2000}\)")
_REFERENCE_LINK = re.compile(r"\[([^\[\]\n]{1,300})\]\[[^\[\]\n]{0,100}\]")
_CITATION = re.compile(r"\[\^[^\]\n]{1,20}\]|\[[0-9]{1,3}\]")
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]{0,15}(?:\s[^<>\n]{0,200})?/?>")
_AUTOLINK = re.compile(r"<((?:https?|ftp)://[^<>\s]{1,2000})>", re.IGNORECASE)

_EMAIL = re.compile(
    r"(?<![\w.+-])([\w.+-]{1,64})@([A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8})(?![\w-])"
)
_URL = re.compile(r"(?<![\w@/])(?:(?:https?|ftp)://|www\.)[^\s<>()\[\]{}\"'`|\\^]+", re.IGNORECASE)
_TLDS = "com|org|net|edu|gov|io|ai|dev|app|co|uk|de|fr|info|me|tv|us|ca|au|eu|ly|gg"
_BARE_DOMAIN = re.compile(
    r"(?<![\w.@/-])((?:[A-Za-z0-9][A-Za-z0-9-]{0,62}\.){1,8}(?i:" + _TLDS + r"))"
    r"(?![\w-]|\.[A-Za-z0-9])(?:/[^\s<>()\[\]{}\"'`]*)?"
)
_URL_TRAILING = ".,;:!?"

_TITLES = {
    "Dr": "Doctor", "Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Prof": "Professor",
    "Mt": "Mount", "Jr": "Junior", "Sr": "Senior",
}  # fmt: skip
_TITLE = re.compile(r"(?<![\w.])(Dr|Mrs|Mr|Ms|Prof|Mt|Jr|Sr|St)\.(?!\w)")
_LATIN = {"e.g.": "for example", "i.e.": "that is", "etc.": "et cetera", "vs.": "versus",
          "approx.": "approximately", "cf.": "compare"}  # fmt: skip
_LATIN_ABBREVIATION = re.compile(
    r"(?<![\w.])(e\.\s?g\.|i\.\s?e\.|etc\.|vs\.?|approx\.|cf\.)(?!\w)", re.IGNORECASE
)
_LANGUAGE_SHARP = re.compile(r"(?<![\w#])([CF])#(?!\w)")


_SYMBOL_WORDS = str.maketrans(
    {"&": " and ", "+": " plus ", "=": " equals ", "@": " at ", "%": " percent ",
     "°": " degrees ", "×": " times ", "÷": " divided by ", "≈": " about "}
)  # fmt: skip
# Punctuation-like characters that are never spoken (markdown and programming leftovers).
_SILENT = frozenset("*_#\\/|{}[]<>~^`•‣◦⁃▪·†‡§¶※‰‱′″‴")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([,.;:!?…)])")
_REPEATED_CLAUSE_MARKS = re.compile(r"([,;:])(?:\s*[,;:])+")
_CLAUSE_MARK_BEFORE_END = re.compile(r"[,;:]\s*([.!?])")
_REPEATED_ENDS = re.compile(r"([!?])[!?.]+|\.{4,}")
_EMPTY_PARENS = re.compile(r"\(\s*\)")
_LEADING_JUNK = re.compile(r"^[\s,.;:!?)\-–—]+")


# ------------------------------------------------------------------------------ the steps


def _remove_code_blocks(text: str) -> str:
    """Fenced code is unspeakable: replace each block by a short phrase."""
    if _FENCE not in text:
        return text
    parts = []
    position = 0
    while True:
        start = text.find(_FENCE, position)
        if start < 0:
            parts.append(text[position:])
            break
        parts.append(text[position:start])
        end = text.find(_FENCE, start + len(_FENCE))
        if end < 0:
            # Unclosed (the reply was cut off): drop the rest unless it is only a bare fence.
            if text[start + len(_FENCE) :].strip():
                parts.append(_CODE_OMITTED)
            break
        parts.append(_CODE_OMITTED)
        position = end + len(_FENCE)
    return "".join(parts)


def _rewrite_lines(text: str) -> str:
    """Headings, rules, quotes, list items and tables become plain sentences."""
    lines = text.split("\n")
    out: list[str] = []
    for line in lines:
        stripped = line.strip()
        if not stripped or _RULE.fullmatch(stripped):
            out.append("")
            continue
        stripped = stripped.lstrip("> \t")
        is_structural = False
        if heading := _HEADING.match(stripped):
            stripped = stripped[heading.end() :].strip().rstrip("#").strip()
            is_structural = True
        elif bullet := _BULLET.match(stripped):
            stripped = stripped[bullet.end() :]
            is_structural = True
        if stripped.count("|") >= 2:
            cells = [cell.strip() for cell in stripped.strip("|").split("|")]
            if all(not cell or _TABLE_SEPARATOR.fullmatch(cell) for cell in cells):
                out.append("")
                continue
            stripped = ", ".join(cell for cell in cells if cell)
            is_structural = True
        # A heading or list item has no full stop; without one the voice runs it into the next.
        if is_structural and stripped and not stripped.endswith(_TERMINAL):
            stripped += "."
        out.append(stripped)
    # Likewise the last line of a paragraph (but not the end of the text: that may be a chunk
    # cut mid-sentence, which must not sound final).
    for index in range(len(out) - 1):
        if out[index] and not out[index + 1] and not out[index].endswith(_TERMINAL):
            out[index] += "."
    return "\n".join(out)


def _rewrite_inline_markup(text: str) -> str:
    text = _IMAGE_OR_LINK.sub(r"\1", text)
    text = _REFERENCE_LINK.sub(r"\1", text)
    text = _CITATION.sub("", text)
    text = _AUTOLINK.sub(r" \1 ", text)
    return _HTML_TAG.sub(" ", text)


def _speak_host(host: str) -> str:
    host = host.lower().strip(".-")
    host = host.removeprefix("www.")
    return host.replace(".", " dot ") if host else ""


def _speak_email(match: re.Match[str]) -> str:
    local = match.group(1).replace(".", " dot ").replace("+", " plus ").replace("-", " dash ")
    return f" {local} at {_speak_host(match.group(2))} "


def _speak_url(match: re.Match[str]) -> str:
    url = match.group()
    stripped = url.rstrip(_URL_TRAILING)
    trailing = url[len(stripped) :]
    rest = stripped.split("://", 1)[-1]
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1].split(":", 1)[0]
    return f" {_speak_host(host) or 'a link'}{trailing} "


def _speak_bare_domain(match: re.Match[str]) -> str:
    url = match.group()
    trailing = url[len(url.rstrip(_URL_TRAILING)) :]
    return f" {_speak_host(match.group(1))}{trailing} "


def _speak_title(match: re.Match[str]) -> str:
    word = match.group(1)
    text = match.string
    if word == "St":
        following = text[match.end() : match.end() + 2]
        # "St. Louis" is a saint; "Baker St." is a street.
        if following[:1] == " " and following[1:2].isupper():
            return "Saint"
        spoken = "Street"
    else:
        spoken = _TITLES[word]
    # These usually close a name or an address, so their period may also end the sentence.
    if word in ("St", "Jr", "Sr") and is_sentence_end(text, match.end() - 1):
        return spoken + "."
    return spoken


def _speak_latin(match: re.Match[str]) -> str:
    key = match.group(1).lower().replace(" ", "")
    if key == "vs":
        key = "vs."
    words = _LATIN[key]
    if key == "etc." and is_sentence_end(match.string, match.end() - 1):
        return words + "."
    return words


@functools.lru_cache(maxsize=8192)
def _spoken_character(char: str) -> str:
    """What a character becomes: itself, a space, or nothing."""
    if char in _SILENT:
        return " "
    category = unicodedata.category(char)
    if category[0] in "LNP" or category in ("Mn", "Mc"):
        # Variation selectors are marks too, but only meaningful next to the emoji just dropped.
        if "\ufe00" <= char <= "\ufe0f" or "\U000e0100" <= char <= "\U000e01ef":
            return ""
        return char
    if category[0] in "ZS" or category == "Cc":
        return " "
    if char == "\u200c":  # the zero-width non-joiner shapes Persian and Indic words
        return char
    return ""  # enclosing marks, format characters, private use, unassigned, surrogates


def _drop_unspeakable(text: str) -> str:
    return "".join(map(_spoken_character, text))


def _tidy(text: str) -> str:
    text = " ".join(text.split())
    text = _EMPTY_PARENS.sub("", text)
    text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)
    text = _REPEATED_CLAUSE_MARKS.sub(r"\1", text)
    text = _CLAUSE_MARK_BEFORE_END.sub(r"\1", text)
    text = _REPEATED_ENDS.sub(lambda match: match.group(1) or "...", text)
    text = _LEADING_JUNK.sub("", text)
    return " ".join(text.split())


def text_for_speech(text: str) -> str:
    """Rewrites LLM output as plain words for a TTS voice.

    Strips markdown, replaces code blocks with "(code omitted)", reads URLs and emails by
    their domain ("example dot com"), spells out numbers, money, times, units and common
    abbreviations, drops emoji and symbols, and collapses whitespace. Letters of every script
    are kept. Never raises; runs in time roughly linear in the length of the text.

    Args:
        text: Any text, typically one chunk of an LLM reply.

    Returns:
        The text to synthesise; empty when nothing in it can be spoken.
    """
    text = text.translate(_TRADEMARKS)
    text = unicodedata.normalize("NFKC", text)  # full-width digits, ligatures, ℃, …
    text = text.translate(_CHARACTER_FIXES)
    text = _remove_code_blocks(text)
    text = _rewrite_lines(text)
    text = _rewrite_inline_markup(text)
    text = _EMAIL.sub(_speak_email, text)
    text = _URL.sub(_speak_url, text)
    text = _BARE_DOMAIN.sub(_speak_bare_domain, text)
    text = _TITLE.sub(_speak_title, text)
    text = _LATIN_ABBREVIATION.sub(_speak_latin, text)
    text = _LANGUAGE_SHARP.sub(r"\1 sharp", text)
    text = speak_numbers(text.replace("%", " percent "))
    text = text.translate(_SYMBOL_WORDS)
    text = _drop_unspeakable(text)
    return _tidy(text)
