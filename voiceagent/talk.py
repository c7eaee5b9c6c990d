"""``voiceagent talk``: wire a source, the models, a sink and an event display into a session."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from voiceagent.audio.clock import Clock, MonotonicClock
from voiceagent.audio.recovery import DeviceCounts, DeviceNotice, NoticeKind, ReopenPolicy
from voiceagent.config import Settings
from voiceagent.display import LiveStatus, StatusProbes, TerminalEvents
from voiceagent.errors import AudioError, DependencyError, DeviceError, UsageError
from voiceagent.events import (
    DeviceLost,
    DeviceRecovered,
    ErrorEvent,
    Event,
    EventSink,
    JsonlEvents,
    Listening,
    SessionEnd,
)
from voiceagent.interfaces import ReplyLimits
from voiceagent.paths import SAMPLE_QUESTION
from voiceagent.session import (
    PARTIAL_EVERY_S,
    Duplex,
    SessionOptions,
    SessionResult,
    VoiceSession,
    hears_user_over_us,
)
from voiceagent.stop_keys import StopKeys

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus"}
REOPEN_POLICY = ReopenPolicy()
"""A lost microphone or speaker is retried from 0.25 s, doubling to 4 s, for up to 30 s."""

__all__ = ["Stopped", "TalkOptions", "TerminalEvents", "open_sink", "run_talk"]


@dataclass(frozen=True)
class TalkOptions:
    input: str | None = None
    output: str | None = None
    jsonl: bool = False
    duplex: Duplex = Duplex.HALF
    no_reply: bool = False
    fast: bool = False
    max_turns: int | None = None
    log: bool = True


def _looks_like_file(spec: str) -> bool:
    path = Path(spec)
    return path.exists() or path.suffix.lower() in AUDIO_SUFFIXES or "/" in spec


def _is_terminal() -> bool:
    """Whether stdout is a terminal, where the live display can redraw in place."""
    return sys.stdout.isatty()


def _has_input_device() -> bool:
    from voiceagent.audio.devices import list_devices

    try:
        return any(d.max_input_channels > 0 for d in list_devices())
    except (DependencyError, DeviceError):
        return False


def _reply_file_name() -> Path:
    return Path.cwd() / f"voiceagent-reply-{time.strftime('%Y%m%d-%H%M%S')}.wav"


def run_talk(settings: Settings, options: TalkOptions) -> SessionResult:
    """Run one conversation until the input ends, max_turns, or Ctrl-C.

    Raises:
        Stopped: SIGINT or SIGTERM ended it (cleanly).
        DeviceError: A device was lost and could not be reopened (or is unknown).
    """
    from voiceagent.audio.sources import FileSource, MicrophoneSource
    from voiceagent.pipeline import load_models, resolve_all

    display: LiveStatus | None = None
    shown: EventSink
    if options.jsonl:
        shown = JsonlEvents()
    elif _is_terminal():
        shown = display = LiveStatus()
    else:
        shown = TerminalEvents()
    resolve_all(settings, reply=not options.no_reply)  # a missing model fails before the mic opens
    input_spec, output_spec = options.input, options.output
    if input_spec is None and not _has_input_device():
        output_spec = output_spec or str(_reply_file_name())
        print(
            f"voiceagent: no input device found; replaying the sample question "
            f"{SAMPLE_QUESTION.name} instead (reply written to {output_spec}).",
            file=sys.stderr,
        )
        input_spec = str(SAMPLE_QUESTION)
    clock = MonotonicClock()
    events = TalkEvents(shown, clock)
    source: FileSource | MicrophoneSource
    from_file = input_spec is not None and _looks_like_file(input_spec)
    endpointing = settings.endpointing(
        takes_back_early_answers=not options.no_reply
        and hears_user_over_us(options.duplex, input_hears_output=not from_file)
    )
    if input_spec is not None and from_file:
        if not Path(input_spec).is_file():
            raise AudioError(f"input file {input_spec} does not exist.", fix="check the path.")
        source = FileSource.open(
            input_spec, realtime=not options.fast, clock=clock,
            trailing_silence_ms=endpointing.file_tail_ms,
        )  # fmt: skip
        source_name = Path(input_spec).name
    else:
        source = MicrophoneSource(
            input_spec, clock=clock, reopen=REOPEN_POLICY, on_notice=events.notice
        )
        source_name = f"microphone {input_spec}" if input_spec else "default microphone"
    session_options = SessionOptions(
        duplex=options.duplex,
        reply=not options.no_reply,
        realtime=not options.fast,
        max_turns=options.max_turns,
        endpointing=endpointing,
        limits=ReplyLimits(max_tokens=settings.max_reply_tokens, max_s=settings.max_reply_s),
        partial_every_s=None if options.fast else PARTIAL_EVERY_S,
        input_hears_output=not from_file,
    )
    models = load_models(settings, reply=not options.no_reply, partials=not options.fast)
    sink = None
    turn_log = None
    session: VoiceSession | None = None
    try:
        if not options.no_reply:
            assert models.tts is not None
            sink = open_sink(
                output_spec, models.tts.sample_rate_hz, clock, REOPEN_POLICY, events.notice
            )
        if options.log:
            from voiceagent.session_log import SessionLog

            turn_log = SessionLog.create()
        opened_sink = sink
        reply_path = getattr(sink, "path", None)
        events.configure(
            source_name,
            str(reply_path) if reply_path else None,
            lambda: device_counts(source, opened_sink),
            turn_log,
        )
        session = VoiceSession(
            models,
            source,
            sink,
            events,
            clock,
            session_options,
            system_prompt=settings.system_prompt,
            history_tokens=settings.history_tokens,
            turn_log=turn_log,
        )
        if display is not None:
            running = session
            display.watch(
                StatusProbes(
                    state=lambda: running.state.value,
                    level_dbfs=lambda: source.level_dbfs,
                    counts=events.counts,
                )
            )
        with display if display is not None else contextlib.nullcontext():
            return asyncio.run(_run_until_stopped(session, events, display))
    finally:
        if sink is not None:
            sink.close()
        if turn_log is not None:
            turn_log.write_summary(
                len(session.result.turns) if session is not None else 0, events.counts()
            )
            turn_log.close()
        models.close()


def device_counts(source: object, sink: object) -> DeviceCounts:
    """Sum the device counters of a source and a sink (files have none)."""
    parts = (source, sink)
    return DeviceCounts(
        input_overflows=int(getattr(source, "overflow_count", 0)),
        output_underflows=int(getattr(sink, "underflow_count", 0)),
        device_losses=sum(int(getattr(part, "device_loss_count", 0)) for part in parts),
        device_reopens=sum(int(getattr(part, "device_reopen_count", 0)) for part in parts),
    )


class Stopped(Exception):
    """The session was stopped by SIGINT or SIGTERM (after a clean shutdown)."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number


async def _run_until_stopped(
    session: VoiceSession, events: TalkEvents, display: LiveStatus | None = None
) -> SessionResult:
    """Run the session; Ctrl-C or SIGTERM cancels it, so replies stop between tokens, the
    devices close and the log keeps every finished turn. A speaker that is gone for good
    ends it the same way, with the device's error. Where standard input is a terminal, Enter
    or Space stops the reply (see :mod:`voiceagent.stop_keys`)."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(session.run())
    received: list[int] = []
    failures: list[DeviceError] = []

    def stop(signal_number: int) -> None:
        received.append(signal_number)
        task.cancel()

    def fail(error: DeviceError) -> None:
        failures.append(error)
        task.cancel()

    def stop_reply() -> None:  # on the key reader's thread
        with contextlib.suppress(RuntimeError):  # the loop closed: the session is over
            loop.call_soon_threadsafe(session.stop_reply)

    keys = StopKeys(sys.stdin, stop_reply)
    if session.options.reply:
        keys.start()
        if keys.active and display is not None:
            display.show_stop_key()
    events.bind(loop, fail)
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop, signal_number)
    try:
        return await task
    except asyncio.CancelledError:
        if received:
            raise Stopped(received[0]) from None
        if failures:
            raise failures[0] from None
        raise
    finally:
        keys.stop()
        events.unbind()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signal_number)


class TalkEvents:
    """The session's event sink for ``talk``: fills in what only the command knows (the
    source's name, the reply file, the device counters), turns device notices into events on
    the event loop's thread, and logs them in the session log."""

    def __init__(self, inner: EventSink, clock: Clock) -> None:
        self._inner = inner
        self._clock = clock
        self._started_s = clock.now_s()
        self._source_name = ""
        self._reply_file: str | None = None
        self._counts: Callable[[], DeviceCounts] = DeviceCounts
        self._log: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._on_failure: Callable[[DeviceError], None] | None = None
        self._failure: DeviceError | None = None

    def configure(
        self,
        source_name: str,
        reply_file: str | None,
        counts: Callable[[], DeviceCounts],
        log: Any = None,
    ) -> None:
        """Set what the events need; call just before the session starts its clock."""
        self._source_name = source_name
        self._reply_file = reply_file
        self._counts = counts
        self._log = log
        self._started_s = self._clock.now_s()

    def counts(self) -> DeviceCounts:
        """The device counters now."""
        return self._counts()

    def bind(
        self, loop: asyncio.AbstractEventLoop, on_failure: Callable[[DeviceError], None]
    ) -> None:
        """Deliver notices on ``loop``; ``on_failure`` ends the session when a speaker is gone
        for good (a lost microphone ends it by raising from its frames)."""
        self._loop, self._loop_thread = loop, threading.get_ident()
        self._on_failure = on_failure
        if self._failure is not None:  # the speaker gave up before the session started
            loop.call_soon(on_failure, self._failure)

    def unbind(self) -> None:
        """The loop is ending: deliver notices directly from now on."""
        self._loop, self._loop_thread, self._on_failure = None, None, None

    def emit(self, event: Event) -> None:
        if isinstance(event, Listening) and not event.source:
            event = Listening(event.t_s, source=self._source_name)
        if isinstance(event, SessionEnd):
            counts = self._counts()
            event = replace(
                event,
                reply_file=self._reply_file or event.reply_file,
                output_underflows=counts.output_underflows,
                device_losses=counts.device_losses,
                device_reopens=counts.device_reopens,
            )
        self._inner.emit(event)

    def notice(self, notice: DeviceNotice) -> None:
        """Take a device notice from any thread (a speaker reopens on its own thread)."""
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            with contextlib.suppress(RuntimeError):  # the loop closed: the session is over
                loop.call_soon_threadsafe(self._deliver, notice)
                return
        self._deliver(notice)

    def _deliver(self, notice: DeviceNotice) -> None:
        t_s = self._clock.now_s() - self._started_s
        if notice.kind is NoticeKind.LOST:
            self.emit(DeviceLost(t_s, notice.direction, notice.device, notice.message))
        elif notice.kind is NoticeKind.RECOVERED:
            self.emit(
                DeviceRecovered(t_s, notice.direction, notice.device, notice.attempts,
                                notice.gap_s)
            )  # fmt: skip
        else:
            self.emit(ErrorEvent(t_s, message=notice.message))
        if self._log is not None:
            self._log.write_device_notice(notice)
        if notice.kind is NoticeKind.GAVE_UP and notice.direction == "output":
            assert notice.error is not None
            self._failure = notice.error
            if self._on_failure is not None:
                self._on_failure(notice.error)


def open_sink(
    spec: str | None,
    rate_hz: int,
    clock: MonotonicClock,
    reopen: ReopenPolicy | None = None,
    on_notice: Callable[[DeviceNotice], None] | None = None,
) -> Any:
    """A WAV file sink for a ``.wav`` path, else the speaker ``spec`` (opened now: a device
    takes a moment to start). ``reopen`` and ``on_notice`` apply to a speaker only."""
    from voiceagent.audio.sinks import WavFileSink

    if spec is not None and (spec.lower().endswith(".wav") or "/" in spec):
        if Path(spec).is_dir():
            raise UsageError(f"--output {spec} is a folder.", fix="name a .wav file.")
        return WavFileSink.open(spec, rate_hz, clock=clock, pad_to_clock=True)
    from voiceagent.audio.speaker import SpeakerSink

    return SpeakerSink.open(spec, clock=clock, reopen=reopen, on_notice=on_notice)
