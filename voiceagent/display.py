"""What ``voiceagent talk`` shows a person: plain lines, or a live status display on a terminal.

``--jsonl`` is for scripts (see events.py). Without it, a terminal gets :class:`LiveStatus`
(state, input level, transcript, reply, latency, device counters, redrawn in place by rich);
anything else (a pipe, a test) gets :class:`TerminalEvents`, one readable line per event.
rich is imported inside functions only: ``voiceagent --help`` must not load it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from voiceagent.audio.recovery import DeviceCounts
from voiceagent.events import (
    LATENCY_KEYS,
    DeviceLost,
    DeviceRecovered,
    Dropped,
    ErrorEvent,
    Event,
    Interrupted,
    Listening,
    PartialTranscript,
    Reply,
    SessionEnd,
    SpeechEnd,
    SpeechStart,
    Thinking,
    TranscriptEvent,
    Turn,
)

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

REFRESH_PER_S = 10
"""Redraws per second of the live display: smooth enough for a level meter, cheap on the CPU."""

METER_FLOOR_DBFS = -60.0
"""The level meter's left end; quieter input shows as an empty bar."""

METER_CELLS = 24

LATENCY_LABELS = {
    "eou": "eou",
    "stt": "stt",
    "llm_first_token": "llm 1st token",
    "tts_first_audio": "tts 1st audio",
    "voice_to_voice": "voice-to-voice",
}


def counts_line(turns: int, dropped: int, counts: DeviceCounts) -> str:
    """The counters in one line (shared by both displays)."""
    return (
        f"{turns} turn(s), {dropped} ignored; input overflows {counts.input_overflows}, "
        f"output underflows {counts.output_underflows}, device losses {counts.device_losses}, "
        f"reopens {counts.device_reopens}"
    )


def latency_line(latency_ms: Mapping[str, float | None]) -> str:
    """``eou 210, stt 180, ...`` in milliseconds; keys without a value are left out."""
    return ", ".join(
        f"{LATENCY_LABELS.get(key, key)} {value:.0f}"
        for key, value in latency_ms.items()
        if value is not None and key in LATENCY_KEYS
    )


class TerminalEvents:
    """Readable lines for a person when stdout is not a terminal (``--jsonl`` is for scripts)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout

    def _say(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()

    def emit(self, event: Event) -> None:
        if isinstance(event, Listening):
            self._say(f"listening ({event.source}) - speak; Ctrl-C to stop")
        elif isinstance(event, SpeechStart):
            self._say("  ... hearing you")
        elif isinstance(event, SpeechEnd):
            self._say(f"  ... you stopped ({event.eou_ms:.0f} ms to decide)")
        elif isinstance(event, PartialTranscript):
            self._say(f"  ... {event.text}")
        elif isinstance(event, TranscriptEvent):
            self._say(f"you: {event.text}")
        elif isinstance(event, Dropped):
            self._say(f"  (ignored: {event.reason})")
        elif isinstance(event, Interrupted):
            self._say("  (interrupted)")
        elif isinstance(event, Turn):
            if event.reply_text:
                self._say(f"assistant: {event.reply_text}")
            self._say("  latency ms: " + latency_line(event.latency_ms))
        elif isinstance(event, DeviceLost):
            self._say(f"  device: {event.message}")
        elif isinstance(event, DeviceRecovered):
            self._say(f"  device: the {event.direction} device {event.device} is back "
                      f"after {event.gap_s:.1f} s")  # fmt: skip
        elif isinstance(event, ErrorEvent):
            self._say(f"  error: {event.message}")
        elif isinstance(event, SessionEnd):
            self._say(session_end_line(event))


def session_end_line(event: SessionEnd) -> str:
    """The closing line of a session, with the device counters."""
    counts = DeviceCounts(
        event.input_overflows, event.output_underflows, event.device_losses, event.device_reopens
    )
    extra = f"; reply audio in {event.reply_file}" if event.reply_file else ""
    return f"session over: {counts_line(event.turns, event.dropped, counts)}{extra}"


# --- the live display ---------------------------------------------------------------------


@dataclass(frozen=True)
class StatusView:
    """Everything the live display shows, as plain data (see :func:`render_status`).

    Attributes:
        state: ``listening``, ``thinking`` or ``speaking`` (``starting`` before the first event,
            ``finished`` after the last).
        source: Where the voice comes from.
        level_dbfs: Input level of the latest ~100 ms; None when unknown.
        is_hearing: The user is speaking (between ``speech_start`` and ``speech_end``).
        user_text: The latest transcript (partial while ``is_partial``).
        reply_text: The assistant's latest reply.
        latency_ms: The latest turn's latencies.
        notice: The latest device message or error, until the next turn.
        stop_key: Enter or Space stops the reply (standard input is a terminal).
    """

    state: str = "starting"
    source: str = ""
    level_dbfs: float | None = None
    is_hearing: bool = False
    user_text: str = ""
    is_partial: bool = False
    reply_text: str = ""
    latency_ms: Mapping[str, float | None] = field(default_factory=dict)
    turns: int = 0
    dropped: int = 0
    counts: DeviceCounts = field(default_factory=DeviceCounts)
    notice: str = ""
    stop_key: bool = False


def apply_event(view: StatusView, event: Event) -> StatusView:
    """The view after ``event`` (pure)."""
    if isinstance(event, Listening):
        return replace(view, state="listening", source=event.source)
    if isinstance(event, SpeechStart):
        return replace(view, is_hearing=True)
    if isinstance(event, SpeechEnd):
        return replace(view, is_hearing=False)
    if isinstance(event, PartialTranscript):
        return replace(view, user_text=event.text, is_partial=True)
    if isinstance(event, TranscriptEvent):
        return replace(view, user_text=event.text, is_partial=False, reply_text="")
    if isinstance(event, Thinking):
        return replace(view, state="thinking")
    if isinstance(event, Reply):
        return replace(view, state="speaking", reply_text=event.text)
    if isinstance(event, Interrupted):
        return replace(view, state="listening", reply_text=event.played_text + " ...")
    if isinstance(event, Dropped):
        return replace(view, dropped=view.dropped + 1, is_hearing=False)
    if isinstance(event, Turn):
        return replace(
            view,
            state="listening",
            turns=max(view.turns, event.index),
            user_text=event.user_text,
            is_partial=False,
            reply_text=event.reply_text,
            latency_ms=dict(event.latency_ms),
            notice="",
        )
    if isinstance(event, DeviceLost):
        return replace(view, notice=event.message)
    if isinstance(event, DeviceRecovered):
        return replace(
            view, notice=f"the {event.direction} device {event.device} is back after "
            f"{event.gap_s:.1f} s."
        )  # fmt: skip
    if isinstance(event, ErrorEvent):
        return replace(view, notice=event.message)
    if isinstance(event, SessionEnd):
        counts = DeviceCounts(
            event.input_overflows, event.output_underflows, event.device_losses,
            event.device_reopens,
        )  # fmt: skip
        return replace(view, state="finished", turns=event.turns, dropped=event.dropped,
                       counts=counts, is_hearing=False)  # fmt: skip
    return view


STATE_STYLES = {
    "starting": "dim",
    "listening": "bold green",
    "thinking": "bold yellow",
    "speaking": "bold cyan",
    "finished": "dim",
}


def level_bar(level_dbfs: float | None, cells: int = METER_CELLS) -> str:
    """A text meter: full at 0 dBFS, empty at :data:`METER_FLOOR_DBFS` and below."""
    if level_dbfs is None:
        return " " * cells
    share = (min(0.0, level_dbfs) - METER_FLOOR_DBFS) / -METER_FLOOR_DBFS
    filled = round(max(0.0, share) * cells)
    return "█" * filled + "░" * (cells - filled)


def render_status(view: StatusView) -> RenderableType:
    """The live display for ``view`` (pure: the same view always renders the same)."""
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    state = Text(view.state, style=STATE_STYLES.get(view.state, ""))
    if view.is_hearing and view.state == "listening":
        state.append(" (hearing you)", style="green")
    if view.source:
        state.append(f"  {view.source}", style="dim")
    grid.add_row("state", state)
    level = Text(level_bar(view.level_dbfs), style="green")
    level.append(" -- dBFS" if view.level_dbfs is None else f" {view.level_dbfs:6.1f} dBFS")
    grid.add_row("input", level)
    you = Text(view.user_text, style="italic dim" if view.is_partial else "")
    if view.is_partial:
        you.append(" ...", style="dim")
    grid.add_row("you", you)
    grid.add_row("assistant", Text(view.reply_text))
    grid.add_row("latency ms", Text(latency_line(view.latency_ms) or "-"))
    grid.add_row("counters", Text(counts_line(view.turns, view.dropped, view.counts)))
    if view.notice:
        grid.add_row("device", Text(view.notice, style="bold red"))
    if view.state != "finished":
        hint = (
            "Enter or Space: stop the reply · Ctrl-C: quit" if view.stop_key else "Ctrl-C to stop"
        )
        grid.add_row("", Text(hint, style="dim"))
    return grid


@dataclass(frozen=True)
class StatusProbes:
    """Live readings the display takes at each redraw (between events).

    Attributes:
        state: The session's state (``listening``/``thinking``/``speaking``).
        level_dbfs: The input level.
        counts: The device counters.
    """

    state: Callable[[], str] | None = None
    level_dbfs: Callable[[], float] | None = None
    counts: Callable[[], DeviceCounts] | None = None


class LiveStatus:
    """The live status display: an event sink that redraws ``REFRESH_PER_S`` times a second.

    Use as a context manager around the session; leaving it (normally, on Ctrl-C/SIGTERM or on
    an error) stops the redraws and leaves the last frame and the closing line on screen.
    """

    def __init__(
        self, console: Console | None = None, refresh_per_s: float = REFRESH_PER_S
    ) -> None:
        self._console = console
        self._refresh_per_s = refresh_per_s
        self._view = StatusView()
        self._lock = threading.Lock()
        self._probes = StatusProbes()
        self._live: Any = None
        self._end: SessionEnd | None = None

    @property
    def view(self) -> StatusView:
        """The view with the latest probe readings."""
        with self._lock:
            view = self._view
        probes = self._probes
        if view.state not in ("starting", "finished"):
            if probes.state is not None:
                view = replace(view, state=probes.state())
            if probes.counts is not None:
                view = replace(view, counts=probes.counts())
        if probes.level_dbfs is not None and view.state != "finished":
            view = replace(view, level_dbfs=probes.level_dbfs())
        return view

    def watch(self, probes: StatusProbes) -> None:
        """Read these at each redraw."""
        self._probes = probes

    def show_stop_key(self) -> None:
        """Tell the user Enter or Space stops the reply."""
        with self._lock:
            self._view = replace(self._view, stop_key=True)

    def emit(self, event: Event) -> None:
        with self._lock:
            self._view = apply_event(self._view, event)
        if isinstance(event, SessionEnd):
            self._end = event
        if self._live is not None:
            self._live.refresh()

    def _renderable(self) -> RenderableType:
        return render_status(self.view)

    def start(self) -> None:
        """Start redrawing."""
        from rich.console import Console
        from rich.live import Live

        console = self._console or Console()
        self._console = console
        self._live = Live(
            get_renderable=self._renderable,
            console=console,
            refresh_per_second=self._refresh_per_s,
            transient=False,
        )
        self._live.start()

    def stop(self) -> None:
        """Draw the last frame, stop redrawing and print the closing line; safe to call twice."""
        live, self._live = self._live, None
        if live is None:
            return
        live.stop()
        if self._end is not None and self._console is not None:
            self._console.print(session_end_line(self._end), highlight=False)

    def __enter__(self) -> LiveStatus:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
