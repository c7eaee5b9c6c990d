"""The benchmark's outputs: a terminal table, a Markdown table, the JSON file and a chart."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voiceagent.bench.results import BenchReport, RunReport

NOT_MEASURED = "n/m"


@dataclass(frozen=True)
class Column:
    title: str
    markdown_title: str


COLUMNS = (
    Column("config", "configuration"),
    Column("utts", "utterances"),
    Column("WER", "WER"),
    Column("false\nturns", "false turns"),
    Column("talked\nover", "talked over"),
    Column("v2v p50\nms", "voice-to-voice p50 (ms)"),
    Column("v2v p95\nms", "voice-to-voice p95 (ms)"),
    Column("v2v p50\nsession", "v2v p50, online VAD (ms)"),
    Column("eou\np50", "end-of-turn p50 (ms)"),
    Column("stt\np50", "STT p50 (ms)"),
    Column("llm 1st\np50", "LLM first token p50 (ms)"),
    Column("tts 1st\np50", "TTS first audio p50 (ms)"),
    Column("stt\nrtf", "STT RTF"),
    Column("llm\ntok/s", "LLM tokens/s"),
    Column("tts\nrtf", "TTS RTF"),
    Column("peak\nRSS MB", "peak RSS (MB)"),
)


def run_label(report: BenchReport, run: RunReport) -> str:
    """The configuration's name: only the models that differ between runs, and the mode."""
    varying = [
        part for part in ("stt", "llm", "voice")
        if len({getattr(r.config, part) for r in report.runs}) > 1
    ]  # fmt: skip
    models = [getattr(run.config, part) for part in varying]
    return " + ".join([*models, str(run.config.mode)])


def shared_models(report: BenchReport) -> str:
    """The models every run has in common, for the caption."""
    parts = []
    for part in ("stt", "llm", "voice"):
        values = {getattr(r.config, part) for r in report.runs}
        if len(values) == 1:
            parts.append(f"{part} {values.pop()}")
    return ", ".join(parts)


def _ms(value: float | None) -> str:
    return NOT_MEASURED if value is None else f"{value:.0f}"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def row(report: BenchReport, run: RunReport) -> list[str]:
    return [
        run_label(report, run),
        str(len(run.utterances)),
        "-" if run.wer is None else f"{run.wer:.1%}",
        str(run.false_turns),
        str(run.talked_over),
        _ms(run.spread("voice_to_voice").p50),
        _ms(run.spread("voice_to_voice").p95),
        _ms(run.spread("voice_to_voice_session").p50),
        _ms(run.spread("eou").p50),
        _ms(run.spread("stt").p50),
        _ms(run.spread("llm_first_token").p50),
        _ms(run.spread("tts_first_audio").p50),
        _num(run.stt_rtf, 3),
        _num(run.llm_tokens_per_s, 0),
        _num(run.tts_rtf, 3),
        f"{run.peak_rss_mb:.0f}",
    ]


def machine_line(report: BenchReport) -> str:
    m = report.machine
    packages = m.get("packages", {})
    versions = ", ".join(f"{k} {v}" for k, v in packages.items() if v and k != "voiceagent")
    return (
        f"{m.get('cpu')}, {m.get('cores_logical')} cores ({m.get('threads_used')} threads used), "
        f"{m.get('memory_total_mb')} MB RAM, load {m.get('load_avg_1m')}; {m.get('os')}, "
        f"Python {m.get('python')}; {versions}"
    )


def speed_up_line(report: BenchReport) -> str | None:
    found = report.speed_up()
    if found is None:
        return None
    ours, baseline, ratio = found
    return (
        f"speed-up: p50 voice-to-voice {ours.spread('voice_to_voice').p50:.0f} ms streaming vs "
        f"{baseline.spread('voice_to_voice').p50:.0f} ms sequential baseline = {ratio:.2f}x faster"
    )


def speculation_line(report: BenchReport) -> str | None:
    found = report.speculation_gain()
    if found is None:
        return None
    ours, unspeculative, gain_ms, count = found
    return (
        f"speculation buys a median {gain_ms:.0f} ms per recording ({count} recordings): p50 "
        f"voice-to-voice {ours.spread('voice_to_voice').p50:.0f} ms vs "
        f"{unspeculative.spread('voice_to_voice').p50:.0f} ms with nothing started before the "
        f"end of the turn is decided"
    )


def notes(report: BenchReport) -> list[str]:
    lines = []
    shared = shared_models(report)
    if shared:
        lines.append(f"models: {shared}")
    if report.fast:
        lines.append(
            "--fast: fed as fast as possible, no replies (accuracy only); latencies not "
            "measured (n/m)."
        )
    else:
        lines.append(
            "v2v = offline VAD end of speech -> first reply sample; 'session' starts at the "
            "online VAD's stop. Percentiles: nearest rank."
        )
        if report.end_of_turn:
            waits = report.end_of_turn
            lines.append(
                f"end of turn: {waits['silence_ms']:g} ms of silence, at most "
                f"{waits['max_silence_ms']:g} ms after words left mid-phrase "
                "(eou_silence_ms, eou_max_silence_ms)."
            )
    for line in (speed_up_line(report), speculation_line(report)):
        if line:
            lines.append(line)
    return lines


def print_table(report: BenchReport, console: Any = None) -> None:
    """The terminal table (rich), one row per configuration."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(
        *[c.title for c in COLUMNS], title="voiceagent bench", title_justify="left",
        box=box.SIMPLE_HEAD, padding=(0, 1),
    )  # fmt: skip
    for run in report.runs:
        table.add_row(*row(report, run))
    console.print(table)
    for line in notes(report):
        console.print(line, highlight=False, soft_wrap=True)


def markdown(report: BenchReport) -> str:
    """A Markdown table for the README, with the command and the machine."""
    lines = [
        f"`{report.command}`",
        "",
        f"Machine: {machine_line(report)}",
        "",
        "| " + " | ".join(c.markdown_title for c in COLUMNS) + " |",
        "|" + "|".join(" --- " for _ in COLUMNS) + "|",
    ]
    for run in report.runs:
        lines.append("| " + " | ".join(cell.replace("\n", " ") for cell in row(report, run)) + " |")
    lines.append("")
    lines += [f"{line}  " for line in notes(report)]
    return "\n".join(lines).rstrip() + "\n"


def write_json(report: BenchReport, path: Path) -> None:
    """Write the report atomically: a reader never sees half a file."""
    _write_atomically(path, json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


# --- the chart ------------------------------------------------------------------------------

STACK = (
    ("end-of-turn wait", "eou_true"),
    ("STT after the decision", "stt_after_decision"),
    ("LLM first token", "llm_first_token"),
    ("TTS first audio", "tts_first_audio"),
)


def stage_parts(run: RunReport) -> dict[str, float | None]:
    """p50 of each stage's share of voice-to-voice, per utterance then the median of each.

    Speculative STT runs during the end-of-turn wait, so only what is left after the decision
    (transcript_ready - eou) is stacked; the rest of voice_to_voice is "other": mostly the LLM
    writing on from its first token to the first speakable phrase, plus scheduling.
    """
    from voiceagent.bench import metrics

    parts: dict[str, list[float]] = {key: [] for _, key in STACK}
    parts["other"] = []
    for u in run.utterances:
        lat = u.latency_ms
        v2v = lat.get("voice_to_voice")
        values = {
            "eou_true": lat.get("eou_true"),
            "stt_after_decision": _minus(lat.get("transcript_ready"), lat.get("eou")),
            "llm_first_token": lat.get("llm_first_token"),
            "tts_first_audio": lat.get("tts_first_audio"),
        }
        if v2v is None or any(v is None for v in values.values()):
            continue
        for key, value in values.items():
            parts[key].append(max(0.0, float(value or 0.0)))
        parts["other"].append(max(0.0, v2v - sum(float(v or 0.0) for v in values.values())))
    return {key: metrics.percentile(values, 50) for key, values in parts.items()}


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def write_plot(report: BenchReport, path: Path) -> None:
    """Stacked per-stage p50 latency per configuration, and the voice-to-voice distribution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report.runs
    labels = [run_label(report, r).replace(" + ", "\n") for r in runs]
    figure, (stacked, spread) = plt.subplots(1, 2, figsize=(max(9.0, 2.4 * len(runs) + 4), 5))
    bottoms = [0.0] * len(runs)
    parts = [stage_parts(r) for r in runs]
    for name, key in [*STACK, ("LLM to first phrase, other", "other")]:
        heights = [p.get(key) or 0.0 for p in parts]
        stacked.bar(labels, heights, bottom=bottoms, label=name)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    for index, run in enumerate(runs):
        p50 = run.spread("voice_to_voice").p50
        if p50 is not None:
            stacked.plot([index], [p50], marker="D", color="black")
    stacked.set_ylabel("ms (p50 of each stage; diamond: p50 voice-to-voice)")
    stacked.set_title("Where the time goes")
    stacked.legend(fontsize="small")
    for index, run in enumerate(runs):
        values = [v for v in run.latencies("voice_to_voice") if v is not None]
        spread.scatter([index] * len(values), values, s=14, alpha=0.6)
        summary = run.spread("voice_to_voice")
        for value, style in ((summary.p50, "-"), (summary.p95, ":")):
            if value is not None:
                spread.hlines(value, index - 0.25, index + 0.25, colors="black", linestyles=style)
    spread.set_xticks(range(len(runs)), labels)
    spread.set_ylabel("voice-to-voice, ms (line: p50, dotted: p95, nearest rank)")
    spread.set_title("Voice-to-voice per utterance")
    if report.fast:
        spread.text(0.5, 0.5, "latencies not measured (--fast)", transform=spread.transAxes,
                    ha="center")  # fmt: skip
    figure.suptitle(f"{report.command}\n{report.machine.get('cpu')}", fontsize="small")
    figure.tight_layout()
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    try:
        figure.savefig(temporary, dpi=110)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
        plt.close(figure)
