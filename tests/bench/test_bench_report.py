"""The report's JSON schema (the contract's keys), the Markdown table and the chart."""

from __future__ import annotations

import json

import pytest

from voiceagent.bench import report as render
from voiceagent.bench.results import BenchReport, Mode, RunConfig, RunReport
from voiceagent.bench.runner import UtteranceResult

pytestmark = pytest.mark.unit

CONTRACT_RUN_KEYS = {
    "config", "turns", "wer", "false_turns", "peak_rss_mb", "stt_rtf", "llm_tokens_per_s",
    "tts_rtf", "latency_ms",
}  # fmt: skip
CONTRACT_LATENCY_KEYS = {"eou", "stt", "llm_first_token", "tts_first_audio", "voice_to_voice"}


def _run(mode: Mode, v2v: list[float], stt: str = "whisper-tiny.en") -> RunReport:
    run = RunReport(RunConfig(stt, "smollm2-135m-instruct", "piper-en_US-joe-medium", mode))
    for index, value in enumerate(v2v):
        result = UtteranceResult("samples", f"u{index}", 2.0, "hello world", 1.9)
        result.hypothesis, result.turns, result.reply = "hello world", 1, "Hi."
        result.stt_ms, result.stt_audio_s = 150.0, 2.0
        result.llm_tokens, result.llm_s = 12, 0.4
        result.tts_compute_s, result.tts_audio_s = 0.2, 1.0
        result.latency_ms = {
            "eou": 600.0, "eou_true": 610.0, "stt": 150.0, "transcript_ready": 650.0,
            "llm_first_token": 90.0, "tts_first_audio": 120.0, "voice_to_voice": value,
            "voice_to_voice_session": value - 10,
        }  # fmt: skip
        run.add(result)
    run.peak_rss_mb = 812.0
    return run


def _report(fast: bool = False) -> BenchReport:
    runs = [_run(Mode.STREAMING, [900.0, 1000.0, 1100.0]), _run(Mode.BASELINE, [2000.0] * 3)]
    if fast:
        for run in runs:
            run.latency_measured = False
    machine = {"cpu": "Test CPU", "cores_logical": 2, "threads_used": 2, "packages": {}}
    corpora = [{"name": "samples", "path": "/x", "kind": "speech", "utterances": 3}]
    return BenchReport(
        "voiceagent bench --baseline", machine, corpora, runs, fast=fast,
        end_of_turn={"silence_ms": 600.0, "max_silence_ms": 750.0},
    )  # fmt: skip


def test_json_has_every_contract_field(tmp_path):
    path = tmp_path / "bench.json"
    render.write_json(_report(), path)
    data = json.loads(path.read_text())
    assert data["schema"] == 1
    assert isinstance(data["machine"], dict) and data["machine"]["cpu"] == "Test CPU"
    assert len(data["runs"]) == 2
    for run in data["runs"]:
        assert CONTRACT_RUN_KEYS <= set(run)
        assert set(run["config"]) == {"stt", "llm", "voice", "mode"}
        assert run["config"]["mode"] in ("streaming", "baseline")
        assert CONTRACT_LATENCY_KEYS <= set(run["latency_ms"])
        for spread in run["latency_ms"].values():
            assert set(spread) == {"p50", "p95"}
        assert run["turns"] == 3 and run["false_turns"] == 0 and run["wer"] == 0.0
        assert run["stt_rtf"] == 0.075 and run["llm_tokens_per_s"] == 30.0 and run["tts_rtf"] == 0.2
        assert len(run["utterances"]) == 3
    streaming = data["runs"][0]["latency_ms"]["voice_to_voice"]
    assert streaming == {"p50": 1000.0, "p95": 1100.0}
    assert data["speed_up"]["voice_to_voice_p50"] == 2.0
    assert not list(tmp_path.glob(".*tmp*")), "the temporary file is left behind"


def test_the_report_names_the_end_of_turn_waits():
    """A longer or shorter wait moves every eou and voice_to_voice figure, and a setting can
    change it without a flag in the command: the report says which waits were used."""
    report = _report()
    assert report.to_json()["end_of_turn"] == {"silence_ms": 600.0, "max_silence_ms": 750.0}
    assert "end of turn: 600 ms of silence, at most 750 ms after words left mid-phrase" in (
        render.markdown(report)
    )


def test_fast_runs_write_null_latencies():
    data = _report(fast=True).to_json()
    assert data["fast"] is True
    for run in data["runs"]:
        assert all(v == {"p50": None, "p95": None} for v in run["latency_ms"].values())
    assert "speed_up" not in data


def test_markdown_names_the_command_and_the_machine():
    text = render.markdown(_report())
    assert "`voiceagent bench --baseline`" in text
    assert "Machine: Test CPU, 2 cores (2 threads used)" in text
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 2  # header, rule, one row per run
    assert "| streaming | 3 | 0.0% | 0 | 0 | 1000 | 1100 |" in table[2]
    assert "2.00x faster" in text


def test_labels_name_only_what_differs():
    report = _report()
    report.runs.insert(1, _run(Mode.STREAMING, [950.0], stt="whisper-base"))
    assert [render.run_label(report, r) for r in report.runs] == [
        "whisper-tiny.en + streaming",
        "whisper-base + streaming",
        "whisper-tiny.en + baseline",
    ]
    assert render.shared_models(report) == "llm smollm2-135m-instruct, voice piper-en_US-joe-medium"


def test_what_speculation_buys_is_the_median_of_each_recordings_difference():
    report = _report()
    # Paired by recording: the p50s differ by 100 ms, the recordings by 50, 300 and 20 ms.
    report.runs.append(_run(Mode.NO_SPECULATION, [950.0, 1300.0, 1120.0]))
    ours, unspeculative, gain_ms, count = report.speculation_gain()
    assert (ours.config.mode, unspeculative.config.mode) == (Mode.STREAMING, Mode.NO_SPECULATION)
    assert gain_ms == 50.0 and count == 3
    data = report.to_json()["speculation"]
    assert data == {
        "median_gain_ms": 50.0, "recordings": 3, "streaming_p50_ms": 1000.0,
        "no_speculation_p50_ms": 1120.0,
    }  # fmt: skip
    assert "speculation buys a median 50 ms per recording (3 recordings)" in render.markdown(report)
    # A recording one side did not answer is left out of the pairs.
    report.runs[-1].utterances[1].latency_ms["voice_to_voice"] = None
    assert report.speculation_gain()[2:] == (35.0, 2)
    assert "speculation" not in _report().to_json()


def test_the_terminal_table_has_a_row_per_run():
    from rich.console import Console

    console = Console(width=220, record=True)
    render.print_table(_report(), console)
    text = console.export_text()
    assert "streaming" in text and "baseline" in text and "2.00x faster" in text


def test_the_chart_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    render.write_plot(_report(), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
