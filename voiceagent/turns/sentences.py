"""Cutting a stream of LLM tokens into chunks a TTS voice can speak.

The first chunk is short (the first clause) so the voice starts while the LLM is still
writing; later chunks are whole sentences, which sound more natural. A cut is only made once
the text after it proves it is a boundary ("3." could become "3.14"), so the chunks do not
depend on how the stream happened to be split into tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from voiceagent.errors import UsageError
from voiceagent.turns.spoken_numbers import MONTH_ABBREVIATIONS


@dataclass(frozen=True)
class ChunkerConfig:
    """How long chunks may be, in words.

    Attributes:
        first_chunk_min_words: The first chunk may end at a clause boundary (comma, semicolon,
            colon, dash) once it has at least this many words.
        first_chunk_max_words: The first chunk is cut after this many words if no boundary
            came, so the voice never waits long for its first sound.
        second_chunk_max_words: The second chunk also ends at its first clause boundary, or
            after this many words: it is synthesised while the first plays, and a whole long
            sentence would not be ready in time (a gap in the voice).
        max_chunk_words: Later chunks are cut (at the last clause boundary, or else here) if a
            sentence runs on this long, so one run-on sentence cannot stall the voice.

    A four-word first chunk starts the voice ~70 ms sooner than a seven-word one (median over
    ten replies here: Piper needs ~100 ms instead of ~150 ms, and the LLM writes fewer words
    before it); three words instead of four took Piper's first audio from 82 to 64 ms (p50)
    and voice-to-voice from 495 to 474 ms (`voiceagent bench`, 20 recordings). The short
    second chunk keeps the voice from pausing after it.
    """

    first_chunk_min_words: int = 2
    first_chunk_max_words: int = 3
    second_chunk_max_words: int = 12
    max_chunk_words: int = 40

    def __post_init__(self) -> None:
        if not 1 <= self.first_chunk_min_words <= self.first_chunk_max_words:
            raise UsageError(
                "Chunker word limits must satisfy 1 <= first_chunk_min_words <= "
                "first_chunk_max_words.",
                fix="adjust the limits.",
            )
        if not self.first_chunk_max_words <= self.second_chunk_max_words <= self.max_chunk_words:
            raise UsageError(
                "Chunker word limits must satisfy first_chunk_max_words <= "
                "second_chunk_max_words <= max_chunk_words.",
                fix="adjust the limits.",
            )
        if self.max_chunk_words < self.first_chunk_min_words:
            raise UsageError(
                "max_chunk_words must be at least first_chunk_min_words.", fix="raise it."
            )


# Sentence end: terminal punctuation plus closing quotes or brackets, then whitespace (or the
# end of the stream, checked by the caller).
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]*_`]*(?=\s|$)")
_CLOSERS = "\"'”’»)]*_`"
# Clause boundary: , ; : before whitespace (not "1,000" or "3:45"), a dash, or a spaced hyphen.
_CLAUSE_END = re.compile(r"[,;:](?=\s|$)|[—–]|(?<=\s)-(?=\s|$)")
_WORD = re.compile(r"\S+")
_FENCE = "```"

# Words that take a period without ending the sentence.
ABBREVIATIONS = frozenset(
    {
        "mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "jr.", "sr.", "mt.", "e.g.", "i.e.",
        "etc.", "vs.", "approx.", "cf.", "fig.", "eg.", "ie.",
    }
)  # fmt: skip
_OPENERS = "\"'“‘«([{*_"
# Words that end a sentence, or take a period before a number: "in Dec. We met", "Dec. 3".
_BEFORE_NUMBER = frozenset({f"{name}." for name in MONTH_ABBREVIATIONS} | {"no."})


def _is_abbreviation(text: str, period_index: int) -> bool:
    """Whether the period at ``period_index`` closes an abbreviation or an initial."""
    token = _word_before(text, period_index)
    if token in ABBREVIATIONS:
        return True
    if token in _BEFORE_NUMBER:
        return text[period_index + 1 :].lstrip()[:1].isdigit()
    body = token[:-1]
    # An initial ("J. R. R. Tolkien") or a dotted acronym ("U.S."): one letter per period.
    return bool(body) and all(len(part) == 1 and part.isalpha() for part in body.split("."))


def _word_before(text: str, period_index: int) -> str:
    """The word the period at ``period_index`` closes, with it, in lower case."""
    start = period_index
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start : period_index + 1].lstrip(_OPENERS).lower()


def _has_letter(text: str) -> bool:
    return any(char.isalpha() for char in text)


class SpeakableChunker:
    """Turns streamed text deltas into chunks to synthesise, first one short.

    Feed deltas with :meth:`feed` as they arrive and call :meth:`flush` at the end of the
    stream; together they return every non-whitespace character of the input exactly once, in
    order, in non-empty chunks. Fenced code blocks come out as one chunk each.
    """

    def __init__(self, config: ChunkerConfig | None = None) -> None:
        self._config = config if config is not None else ChunkerConfig()
        self._buffer = ""
        self._chunks_emitted = 0

    @property
    def config(self) -> ChunkerConfig:
        """The configuration this chunker was built with."""
        return self._config

    @property
    def pending_text(self) -> str:
        """Text received but not yet returned in a chunk."""
        return self._buffer

    def feed(self, delta: str) -> list[str]:
        """Adds streamed text and returns the chunks it completed (often none)."""
        self._buffer += delta
        return self._drain(final=False)

    def flush(self) -> list[str]:
        """Ends the stream: returns the remaining chunks and gets ready for the next one."""
        chunks = self._drain(final=True)
        rest = self._buffer.strip()
        if rest:
            chunks.append(rest)
        self.reset()
        return chunks

    def reset(self) -> None:
        """Drops pending text (say, after a barge-in) and starts a new stream."""
        self._buffer = ""
        self._chunks_emitted = 0

    def _drain(self, *, final: bool) -> list[str]:
        chunks: list[str] = []
        while True:
            self._buffer = self._buffer.lstrip()
            if not self._buffer:
                break
            cut = self._next_cut(self._buffer, final=final)
            if cut is None:
                break
            chunk = self._buffer[:cut].strip()
            self._buffer = self._buffer[cut:]
            if chunk:
                chunks.append(chunk)
                self._chunks_emitted += 1
        return chunks

    def _next_cut(self, text: str, *, final: bool) -> int | None:
        """Where to cut ``text`` (which has no leading whitespace), or None to wait for more."""
        if text.startswith(_FENCE):
            return _fence_end(text, final=final)
        candidates: list[int] = []
        newline = _newline_cut(text)
        if newline is not None:
            candidates.append(newline)
        sentence = _sentence_cut(text, final=final)
        if sentence is not None:
            candidates.append(sentence)
        config = self._config
        if self._chunks_emitted < 2:
            clause = _clause_cut(text, config.first_chunk_min_words, final=final, last=False)
            if clause is not None:
                candidates.append(clause)
            limit = (
                config.first_chunk_max_words
                if self._chunks_emitted == 0
                else config.second_chunk_max_words
            )
            cap = _word_cap_cut(text, limit, final=final)
            if cap is not None:
                candidates.append(cap)
        else:
            cap = _word_cap_cut(text, config.max_chunk_words, final=final)
            if cap is not None:
                # A run-on sentence: prefer its last clause boundary before the cap.
                clause = _clause_cut(
                    text[:cap], config.first_chunk_min_words, final=True, last=True
                )
                candidates.append(clause if clause is not None else cap)
        return min(candidates) if candidates else None


def _fence_end(text: str, *, final: bool) -> int | None:
    """End of a fenced code block that starts ``text``: after its closing fence line."""
    opening_end = text.find("\n")
    if opening_end < 0:
        return len(text) if final else None
    closing = text.find("\n" + _FENCE, opening_end)
    if closing < 0:
        return len(text) if final else None
    closing_end = text.find("\n", closing + 1 + len(_FENCE))
    if closing_end < 0:
        return len(text) if final else None
    return closing_end


def _newline_cut(text: str) -> int | None:
    """A line break ends a chunk: paragraphs, headings and list items are spoken apart."""
    start = 0
    while True:
        index = text.find("\n", start)
        if index < 0:
            return None
        if text[:index].strip():
            return index
        start = index + 1


def _sentence_cut(text: str, *, final: bool) -> int | None:
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        if end == len(text) and not final:
            return None  # the next token may turn "3." into "3.14"
        punctuation = match.group().rstrip(_CLOSERS)
        if punctuation == "." and _is_abbreviation(text, match.start()):
            continue
        if (
            not final
            and not text[end:].strip()
            and _word_before(text, match.start()) in _BEFORE_NUMBER
        ):
            return None  # "Dec." may be followed by a day
        # "1." alone is a list marker or a number, not a sentence worth speaking apart.
        if not _has_letter(text[: match.start()]):
            continue
        return end
    return None


def whole_sentences(text: str) -> str:
    """``text`` up to its last sentence end, by the chunker's rules ("" if it has none): what
    the LLM keeps of a reply cut off by the user."""
    end = 0
    while (cut := _sentence_cut(text[end:], final=True)) is not None:
        end += cut
    return text[:end]


def _clause_cut(text: str, min_words: int, *, final: bool, last: bool) -> int | None:
    """First (or last) clause boundary with at least ``min_words`` words before it."""
    found: int | None = None
    for match in _CLAUSE_END.finditer(text):
        end = match.end()
        if match.group() in "—–":
            if match.start() > 0 and text[match.start() - 1].isdigit():
                if end == len(text) and not final:
                    return found  # "2010–" may turn out to be a range "2010–2020"
                if end < len(text) and text[end].isdigit():
                    continue
        elif end == len(text) and not final:
            return found  # whitespace must follow to rule out "1,000" or "3:45"
        if len(text[:end].split()) >= min_words and _has_letter(text[:end]):
            found = end
            if not last:
                return found
    return found


def _word_cap_cut(text: str, max_words: int, *, final: bool) -> int | None:
    """Just after the ``max_words``-th word, once whitespace (or the end) proves it whole."""
    for count, match in enumerate(_WORD.finditer(text), start=1):
        if count == max_words:
            end = match.end()
            if end == len(text) and not final:
                return None
            return end
    return None
