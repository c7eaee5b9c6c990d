"""What ``voiceagent bench`` does between parsing its flags and exiting: check the outputs can
be written, run the benchmark under a progress bar on stderr, then print and write the report."""

from __future__ import annotations

import sys
from pathlib import Path

from voiceagent.bench.benchmark import BenchOptions, run_benchmark
from voiceagent.bench.results import BenchReport
from voiceagent.config import Settings
from voiceagent.errors import DependencyError, UsageError


def check_output(path: Path, flag: str) -> None:
    """Fail before an hour-long run, not after it, if the result cannot be saved."""
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder.", fix="name a file.")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: the folder {parent} does not exist.", fix="create it.")


def bench_command(
    settings: Settings,
    options: BenchOptions,
    json_file: Path | None = None,
    plot_file: Path | None = None,
    as_markdown: bool = False,
    show_progress: bool = True,
) -> BenchReport:
    from rich.console import Console

    if json_file is not None:
        check_output(json_file, "--json")
    if plot_file is not None:
        check_output(plot_file, "--plot")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise DependencyError(
                "--plot needs matplotlib, which is not installed.",
                fix="pip install 'voiceagent[plot]' (or pip install matplotlib).",
            ) from None
    report = _run_with_progress(settings, options, Console(stderr=True), show_progress)
    from voiceagent.bench import report as render

    if as_markdown:
        print(render.markdown(report), end="")
    else:
        # Piped output is not squeezed to 80 columns: the table is wide.
        render.print_table(report, Console(width=None if sys.stdout.isatty() else 200))
    if json_file is not None:
        render.write_json(report, json_file)
    if plot_file is not None:
        render.write_plot(report, plot_file)
    return report


def _run_with_progress(
    settings: Settings, options: BenchOptions, console: object, show_progress: bool
) -> BenchReport:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("bench"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,  # type: ignore[arg-type]
        transient=True,
        disable=not show_progress,
    )
    task = progress.add_task("starting", total=None)

    def update(done: int, total: int, what: str) -> None:
        progress.update(task, completed=done, total=total, description=what)

    with progress:
        return run_benchmark(settings, options, update)
