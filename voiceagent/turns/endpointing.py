"""End-of-utterance policy: how long a pause must last before the user's turn is over.

The VAD reports where the voice stopped; this module decides when that silence has lasted long
enough. The wait adapts to what the user said so far: a transcript ending a complete sentence
("What time is it?") needs a short wait, one ending mid-phrase ("I'd like to order a pizza
and") a long one, anything else the configured ``silence_ms``. An optional model-based turn
detector can shift the wait within the same bounds; it never ends a turn without silence.

Everything is handed the time (``t_s`` seconds on the session's audio clock); nothing here
reads a clock.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from enum import Enum

from voiceagent.errors import UsageError

HALF_DUPLEX_MAX_SILENCE_MS = 1500.0
"""The longest wait by default where words said over our reply are not heard (half duplex from
a microphone) or nothing is said back (only listening): a turn ended too early stays ended."""

CUT_IN_MAX_SILENCE_MS = 750.0
"""The longest wait by default where the user can cut in over our reply (``--duplex full``, or
an input that cannot hear us): an answer that started too early is then held as soon as their
voice comes back and forgotten once it is confirmed, and their words make one turn with what
they said before (README, Latency). 750 ms answers a sentence left hanging within 800 ms."""


@dataclass(frozen=True)
class EndpointingConfig:
    """Bounds for the end-of-utterance wait.

    Attributes:
        silence_ms: Wait after the voice stops when nothing suggests otherwise
            (``--eou-silence-ms``).
        min_silence_ms: Shortest wait, when the user has clearly finished a sentence.
        max_silence_ms: Longest wait, when the user stopped mid-phrase. Nothing waits longer.
            The 1500 ms default is for half duplex from a microphone, where words spoken over
            our reply are not heard; see :data:`CUT_IN_MAX_SILENCE_MS`.
        same_turn_ms: A user who goes on within this long of stopping, cutting off our answer
            before a whole sentence of it was heard, continues the turn it answered (the
            half-duplex longest wait: as if we had waited that long).
        min_speech_ms: Utterances with less speech than this are dropped as too short.
        max_turn_s: A turn is ended after this long, even if the user keeps talking. 29.5 s
            keeps the turn's audio, with the VAD's 300 ms pre-roll and the last 32 ms frame,
            inside Whisper's 30 s window, so it takes the short-window path: at 30.0 s the
            audio was 30.27 s and took 1.2-1.8 s on the full window (greedy / beam 5), where
            29.9 s took 0.48 s (one thread, measured).
        hint_done_probability: Turn-detector probability at or above which the user is
            taken to be done. 0.5 is Smart Turn's own decision threshold. From there the wait
            shortens with the detector's confidence, from ``silence_ms`` at this probability
            to ``min_silence_ms`` at ``hint_sure_probability``. A wrong early end is cheap
            while the reply is still silent: if the user goes on before our first sound, the
            reply is dropped and their words join the turn.
        hint_sure_probability: Turn-detector probability from which the wait is
            ``min_silence_ms``. Readers pausing 288-352 ms between two sentences scored 0.52
            and 0.86 on ../shared/audio/turns; ends of turns mostly 0.95-0.99.
        hint_not_done_probability: Turn-detector probability at or below which the user is
            taken to be still talking.
    """

    silence_ms: float = 600.0
    min_silence_ms: float = 250.0
    max_silence_ms: float = HALF_DUPLEX_MAX_SILENCE_MS
    same_turn_ms: float = HALF_DUPLEX_MAX_SILENCE_MS
    min_speech_ms: float = 250.0
    max_turn_s: float = 29.5
    hint_done_probability: float = 0.5
    hint_sure_probability: float = 0.95
    hint_not_done_probability: float = 0.25

    def __post_init__(self) -> None:
        names = ("silence_ms", "min_silence_ms", "max_silence_ms", "same_turn_ms", "min_speech_ms")
        for name in names:
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise UsageError(f"End-of-utterance {name} is {value}.", fix="use ms >= 0.")
        if not self.min_silence_ms <= self.silence_ms <= self.max_silence_ms:
            raise UsageError(
                f"End-of-utterance silence {self.silence_ms:g} ms is outside "
                f"{self.min_silence_ms:g}-{self.max_silence_ms:g} ms.",
                fix="pick --eou-silence-ms within that range.",
            )
        if not (math.isfinite(self.max_turn_s) and self.max_turn_s > 0):
            raise UsageError(f"Maximum turn length is {self.max_turn_s} s.", fix="use > 0 s.")
        if not (
            0.0 <= self.hint_not_done_probability < self.hint_done_probability
            <= self.hint_sure_probability <= 1.0
        ):
            raise UsageError(
                "Turn-detector thresholds must satisfy 0 <= not_done < done <= sure <= 1.",
                fix="adjust hint_not_done_probability and hint_done_probability.",
            )

    @property
    def file_tail_ms(self) -> int:
        """Silence appended to an input file, so its last utterance can end: the longest wait
        and a second more."""
        return int(self.max_silence_ms + 1000)

    def with_silence_ms(self, silence_ms: float) -> EndpointingConfig:
        """Returns a copy with ``silence_ms`` set, widening min/max so the order still holds.

        This is how a user's ``--eou-silence-ms`` is applied: asking for 2000 ms must not be
        rejected just because it is above the default longest wait.
        """
        return replace(
            self,
            silence_ms=silence_ms,
            min_silence_ms=min(self.min_silence_ms, silence_ms),
            max_silence_ms=max(self.max_silence_ms, silence_ms),
        )


class TranscriptEnding(Enum):
    """What the end of the running transcript says about the turn."""

    COMPLETE = "complete"
    """Ends a sentence: the user is probably done."""
    INCOMPLETE = "incomplete"
    """Ends mid-phrase: the user is probably still thinking."""
    UNKNOWN = "unknown"
    """No transcript, or nothing to go on."""


class EndpointAction(Enum):
    """What the session should do now."""

    WAIT = "wait"
    END = "end"
    TOO_SHORT = "too_short"
    MAX_TURN = "max_turn"


@dataclass(frozen=True)
class TurnDetectorHint:
    """Output of a model-based turn detector (such as Smart Turn) for the current pause.

    Attributes:
        end_probability: Probability, 0.0 to 1.0, that the user has finished their turn.
        audio_end_s: End of the audio the detector looked at. A hint whose audio ends before
            the voice last stopped was computed for an earlier pause and is ignored.
    """

    end_probability: float
    audio_end_s: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.end_probability <= 1.0:  # also rejects NaN
            raise ValueError(f"end_probability must be within 0..1, got {self.end_probability}")


@dataclass(frozen=True)
class EndpointDecision:
    """The policy's answer for one moment of a turn.

    Attributes:
        action: WAIT, END, TOO_SHORT (end, but drop the utterance) or MAX_TURN.
        wait_remaining_ms: How long until the policy would end the turn if nothing changes
            (0 unless WAIT). Useful to arm a timer instead of polling.
        required_silence_ms: The silence this turn needs, given transcript and hint.
        silence_so_far_ms: How long the voice has been stopped (0 while speaking).
        ending: What the transcript's ending suggested.
    """

    action: EndpointAction
    wait_remaining_ms: float
    required_silence_ms: float
    silence_so_far_ms: float
    ending: TranscriptEnding

    @property
    def is_final(self) -> bool:
        """Whether the turn is over (ended, dropped or cut at the maximum length)."""
        return self.action is not EndpointAction.WAIT


# Words after which an utterance is rarely over: conjunctions, articles, prepositions,
# possessives and fillers. A few ("so", "for") can end a sentence; the cost of a wrong guess is
# only a longer wait, never a cut-off.
CONTINUATION_WORDS = frozenset(
    """
    and or but so because nor yet if than that when while although though unless whereas
    the a an this these those my your his her our their its some any every
    to of in on at for with from by about into onto over under between through during without
    um umm uh uhh uhm er erm ah hmm
    is are was were am be been have has had will would could should can may might must
    """.split()
)

# Abbreviations that are followed by more words ("Mr." needs a name after it).
_CONTINUATION_ABBREVIATIONS = frozenset(
    {"mr.", "mrs.", "ms.", "dr.", "prof.", "e.g.", "i.e.", "vs.", "approx.", "cf."}
)
# Abbreviations that may or may not end the sentence ("I live on Main St.").
_AMBIGUOUS_ABBREVIATIONS = frozenset({"etc.", "st.", "jr.", "sr.", "inc.", "ltd.", "co.", "no."})
_DOTTED_ACRONYM = re.compile(r"(?:[a-z]\.){2,}")
_CLOSERS = "\"'”’»)]}*_` \t\r\n"
_TRAILING_OFF = ("...", "…", ",", ";", ":", "-", "–", "—")


def classify_transcript_ending(transcript: str | None) -> TranscriptEnding:
    """Guesses from the end of a transcript whether the speaker finished a sentence.

    Args:
        transcript: The running transcript of the utterance, or None if there is none yet.

    Returns:
        COMPLETE after terminal punctuation (not an abbreviation), INCOMPLETE after a trailing
        comma, ellipsis, dash or continuation word, UNKNOWN otherwise.
    """
    if not transcript:
        return TranscriptEnding.UNKNOWN
    text = transcript.rstrip(_CLOSERS)
    if not text:
        return TranscriptEnding.UNKNOWN
    if text.endswith(_TRAILING_OFF):
        return TranscriptEnding.INCOMPLETE
    words = text.rsplit(None, 1)
    if not words:  # only white space that _CLOSERS does not list (e.g. "\x1f")
        return TranscriptEnding.UNKNOWN
    last_word = words[-1].lstrip("\"'“‘«([{¿¡").lower()
    if text.endswith(("?", "!")):
        return TranscriptEnding.COMPLETE
    if text.endswith("."):
        if last_word in _CONTINUATION_ABBREVIATIONS:
            return TranscriptEnding.INCOMPLETE
        if last_word in _AMBIGUOUS_ABBREVIATIONS or _DOTTED_ACRONYM.fullmatch(last_word):
            return TranscriptEnding.UNKNOWN
        return TranscriptEnding.COMPLETE
    if last_word.rstrip(".,;:!?") in CONTINUATION_WORDS:
        return TranscriptEnding.INCOMPLETE
    return TranscriptEnding.UNKNOWN


class EndpointingPolicy:
    """Decides when a pause ends the user's turn.

    The wait is chosen from three levels: ``min_silence_ms`` when the user seems done,
    ``max_silence_ms`` when they seem mid-phrase, ``silence_ms`` otherwise; a confident turn
    detector picks a wait between ``silence_ms`` and ``min_silence_ms``. The transcript
    (ending on "and", "the", a comma...) lengthens the wait; so does the turn detector, unless
    the transcript ends a sentence.
    Only the turn detector can shorten it, and only once the transcript is known and does not
    end mid-phrase. Whisper puts a full stop after fragments ("Author of the danger."), so punctuation alone
    would cut people off at natural pauses. Either way the voice must have stopped for the
    chosen time: a hint shortens or lengthens the wait, it never replaces it.
    """

    def __init__(self, config: EndpointingConfig | None = None) -> None:
        self._config = config if config is not None else EndpointingConfig()

    @property
    def config(self) -> EndpointingConfig:
        """The configuration this policy was built with."""
        return self._config

    def required_silence_ms(
        self,
        transcript: str | None,
        hint: TurnDetectorHint | None = None,
        voice_stopped_s: float | None = None,
    ) -> float:
        """How long the voice must stay stopped before the turn ends.

        Args:
            transcript: The running transcript, or None.
            hint: An optional turn-detector output for this pause.
            voice_stopped_s: When the voice stopped; used to ignore hints for earlier pauses.

        Returns:
            A wait between ``min_silence_ms`` and ``max_silence_ms``.
        """
        ending = classify_transcript_ending(transcript)
        return self._required(ending, hint, voice_stopped_s, transcript is not None)

    def _required(
        self,
        ending: TranscriptEnding,
        hint: TurnDetectorHint | None,
        voice_stopped_s: float | None,
        has_transcript: bool,
    ) -> float:
        config = self._config
        hint_vote = self._hint_vote(hint, voice_stopped_s)
        mid_phrase = ending is TranscriptEnding.INCOMPLETE
        if hint_vote < 0:
            # The detector may only shorten the wait once the words are known not to trail
            # off. Waiting for them costs nothing: the reply cannot start without them.
            if mid_phrase or not has_transcript:
                return config.silence_ms
            assert hint is not None
            return self._confident_wait(hint.end_probability)
        if mid_phrase:
            return config.max_silence_ms
        if hint_vote > 0:
            # The detector says "not done". If the words end a sentence the two disagree
            # (read-aloud sentences often score < 0.1): wait the usual silence, no longer.
            if ending is TranscriptEnding.COMPLETE:
                return config.silence_ms
            return config.max_silence_ms
        return config.silence_ms

    def _confident_wait(self, end_probability: float) -> float:
        """The wait for a detector sure enough the user is done: ``silence_ms`` at
        ``hint_done_probability``, falling linearly to ``min_silence_ms`` at
        ``hint_sure_probability``."""
        config = self._config
        span = config.hint_sure_probability - config.hint_done_probability
        share = 1.0 if span <= 0 else (end_probability - config.hint_done_probability) / span
        share = min(1.0, max(0.0, share))
        return config.silence_ms - share * (config.silence_ms - config.min_silence_ms)

    def _hint_vote(self, hint: TurnDetectorHint | None, voice_stopped_s: float | None) -> int:
        if hint is None:
            return 0
        if (
            hint.audio_end_s is not None
            and voice_stopped_s is not None
            and hint.audio_end_s < voice_stopped_s - 1e-6
        ):
            return 0  # computed before the user resumed: says nothing about this pause
        if hint.end_probability >= self._config.hint_done_probability:
            return -1
        if hint.end_probability <= self._config.hint_not_done_probability:
            return 1
        return 0

    def decide(
        self,
        voice_stopped_s: float | None,
        now_s: float,
        speech_duration_s: float,
        transcript: str | None,
        turn_start_s: float,
        hint: TurnDetectorHint | None = None,
    ) -> EndpointDecision:
        """Decides whether the turn is over at ``now_s``.

        Args:
            voice_stopped_s: When the voice last stopped, or None while the user is speaking.
            now_s: The current time.
            speech_duration_s: Voiced speech in the utterance so far, pauses excluded.
            transcript: The running transcript, or None.
            turn_start_s: When the user's speech began.
            hint: An optional turn-detector output for this pause.

        Returns:
            END once the pause has lasted the required silence (TOO_SHORT instead if there was
            less than ``min_speech_ms`` of speech), MAX_TURN once the turn has run
            ``max_turn_s``, WAIT otherwise.
        """
        config = self._config
        ending = classify_transcript_ending(transcript)
        required_ms = self._required(ending, hint, voice_stopped_s, transcript is not None)
        turn_left_ms = (turn_start_s + config.max_turn_s - now_s) * 1000.0

        if voice_stopped_s is None:
            silence_so_far_ms = 0.0
        else:
            # A voice-stop time slightly in the future (rounding between clocks) is no silence.
            silence_so_far_ms = max(0.0, (now_s - voice_stopped_s) * 1000.0)
            if silence_so_far_ms >= required_ms:
                too_short = speech_duration_s * 1000.0 < config.min_speech_ms
                action = EndpointAction.TOO_SHORT if too_short else EndpointAction.END
                return EndpointDecision(action, 0.0, required_ms, silence_so_far_ms, ending)
        if turn_left_ms <= 0:
            return EndpointDecision(
                EndpointAction.MAX_TURN, 0.0, required_ms, silence_so_far_ms, ending
            )
        wait_ms = min(required_ms - silence_so_far_ms, turn_left_ms)
        return EndpointDecision(
            EndpointAction.WAIT, wait_ms, required_ms, silence_so_far_ms, ending
        )
