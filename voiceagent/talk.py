"""``voiceagent talk``: wire a source, the models, a sink and an event display into a session."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from voiceagent.audio.clock import MonotonicClock
from voiceagent.config import Settings
from voiceagent.errors import AudioError, DependencyError, DeviceError, UsageError
from voiceagent.events import (
    Dropped,
    ErrorEvent,
    Event,
    EventSink,
    Interrupted,
    JsonlEvents,
    Listening,
    PartialTranscript,
    SessionEnd,
    SpeechEnd,
    SpeechStart,
    TranscriptEvent,
    Turn,
)
from voiceagent.interfaces import ReplyLimits
from voiceagent.session import Duplex, SessionOptions, SessionResult, VoiceSession
from voiceagent.turns.endpointing import EndpointingConfig

SAMPLE_QUESTION = Path(__file__).with_name("data") / "sample_question.wav"
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus"}


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


def _has_input_device() -> bool:
    from voiceagent.audio.devices import list_devices

    try:
        return any(d.max_input_channels > 0 for d in list_devices())
    except (DependencyError, DeviceError):
        return False


class TerminalEvents:
    """Readable lines for a person at a terminal (``--jsonl`` is for scripts)."""

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
            parts = [
                f"{key} {value:.0f}"
                for key, value in event.latency_ms.items()
                if value is not None
            ]
            self._say("  latency ms: " + ", ".join(parts))
        elif isinstance(event, ErrorEvent):
            self._say(f"  error: {event.message}")
        elif isinstance(event, SessionEnd):
            extra = f", reply audio in {event.reply_file}" if event.reply_file else ""
            self._say(f"session over: {event.turns} turn(s), {event.dropped} ignored{extra}")


def _reply_file_name() -> Path:
    return Path.cwd() / f"voiceagent-reply-{time.strftime('%Y%m%d-%H%M%S')}.wav"


def run_talk(settings: Settings, options: TalkOptions) -> SessionResult:
    """Run one conversation until the input ends, max_turns, or Ctrl-C."""
    from voiceagent.audio.sources import FileSource, MicrophoneSource
    from voiceagent.pipeline import load_models, resolve_all

    events: EventSink = JsonlEvents() if options.jsonl else TerminalEvents()
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
    endpointing = EndpointingConfig().with_silence_ms(settings.eou_silence_ms)
    clock = MonotonicClock()
    trailing_ms = int(endpointing.max_silence_ms + 1000)
    if input_spec is not None and _looks_like_file(input_spec):
        if not Path(input_spec).is_file():
            raise AudioError(f"input file {input_spec} does not exist.", fix="check the path.")
        source = FileSource.open(
            input_spec, realtime=not options.fast, clock=clock, trailing_silence_ms=trailing_ms
        )
        source_name = Path(input_spec).name
    else:
        source = MicrophoneSource(input_spec)
        source_name = f"microphone {input_spec}" if input_spec else "default microphone"
    session_options = SessionOptions(
        duplex=options.duplex,
        reply=not options.no_reply,
        realtime=not options.fast,
        max_turns=options.max_turns,
        endpointing=endpointing,
        limits=ReplyLimits(max_tokens=settings.max_reply_tokens, max_s=settings.max_reply_s),
        partial_every_s=1.0 if options.no_reply and not options.fast else None,
    )
    models = load_models(settings, reply=not options.no_reply)
    sink = None
    turn_log = None
    try:
        if not options.no_reply:
            assert models.tts is not None
            sink = open_sink(output_spec, models.tts.sample_rate_hz, clock)
        if options.log:
            from voiceagent.session_log import SessionLog

            turn_log = SessionLog.create()
        session = VoiceSession(
            models,
            source,
            sink,
            _Named(events, source_name, getattr(sink, "path", None) and str(sink.path)),
            clock,
            session_options,
            system_prompt=settings.system_prompt,
            history_tokens=settings.history_tokens,
            turn_log=turn_log,
        )
        return asyncio.run(_run_until_signal(session))
    finally:
        if sink is not None:
            sink.close()
        if turn_log is not None:
            turn_log.close()
        models.close()


class Stopped(Exception):
    """The session was stopped by SIGINT or SIGTERM (after a clean shutdown)."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number


async def _run_until_signal(session: VoiceSession) -> SessionResult:
    """Run the session; Ctrl-C or SIGTERM cancels it, so replies stop between tokens, the
    devices close and the log keeps every finished turn."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(session.run())
    received: list[int] = []

    def stop(signal_number: int) -> None:
        received.append(signal_number)
        task.cancel()

    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop, signal_number)
    try:
        return await task
    except asyncio.CancelledError:
        if received:
            raise Stopped(received[0]) from None
        raise
    finally:
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signal_number)


class _Named:
    """Fills in what only the command knows: the source's name and the reply file."""

    def __init__(self, inner: EventSink, source_name: str, reply_file: str | None) -> None:
        self._inner = inner
        self._source_name = source_name
        self._reply_file = reply_file

    def emit(self, event: Event) -> None:
        if isinstance(event, Listening) and not event.source:
            event = Listening(event.t_s, source=self._source_name)
        if isinstance(event, SessionEnd) and self._reply_file:
            event = replace(event, reply_file=self._reply_file)
        self._inner.emit(event)


def open_sink(spec: str | None, rate_hz: int, clock: MonotonicClock):  # noqa: ANN202
    from voiceagent.audio.sinks import WavFileSink

    if spec is not None and (spec.lower().endswith(".wav") or "/" in spec):
        if Path(spec).is_dir():
            raise UsageError(f"--output {spec} is a folder.", fix="name a .wav file.")
        return WavFileSink.open(spec, rate_hz, clock=clock, pad_to_clock=True)
    from voiceagent.audio.devices import SpeakerSink

    return SpeakerSink.open(spec, clock=clock)  # opened now: the device takes a moment to start
