"""``voiceagent bench`` through the CLI, in-process: usage errors, and one small real run."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from voiceagent.cli import app

runner = CliRunner()

CONTRACT_RUN_KEYS = {
    "config", "turns", "wer", "false_turns", "peak_rss_mb", "stt_rtf", "llm_tokens_per_s",
    "tts_rtf", "latency_ms",
}  # fmt: skip
CONTRACT_LATENCY_KEYS = ("eou", "stt", "llm_first_token", "tts_first_audio", "voice_to_voice")


@pytest.mark.unit
def test_a_missing_corpus_is_one_line_and_exit_2(tmp_path):
    result = runner.invoke(app, ["bench", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "nowhere" in lines[0] and "Traceback" not in result.output


@pytest.mark.unit
def test_an_empty_model_list_is_a_usage_error():
    result = runner.invoke(app, ["bench", "--stt", " , "])
    assert result.exit_code == 2
    assert "--stt" in result.output


@pytest.mark.unit
def test_an_unwritable_json_path_fails_before_the_run(tmp_path):
    result = runner.invoke(app, ["bench", "--json", str(tmp_path / "no" / "such" / "b.json")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


@pytest.mark.unit
def test_missing_models_are_named_with_the_fix():
    # The test's own VOICEAGENT_HOME has an empty model store.
    result = runner.invoke(app, ["bench", "--limit", "1"])
    assert result.exit_code == 1
    assert "voiceagent models pull" in result.output
    assert "Traceback" not in result.output


@pytest.mark.models
def test_a_small_real_run_reports_every_contract_field(models_env, tmp_path):
    json_path = tmp_path / "bench.json"
    plot_path = tmp_path / "bench.png"
    result = runner.invoke(
        app,
        [
            "bench", "--limit", "2", "--baseline", "--no-speculation", "--json", str(json_path),
            "--plot", str(plot_path),
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    assert "streaming" in result.output and "baseline" in result.output

    data = json.loads(json_path.read_text())
    assert data["schema"] == 1
    machine = data["machine"]
    assert machine["cpu"] and machine["cores_logical"] >= 1 and machine["threads_used"] >= 1
    assert machine["packages"]["faster-whisper"]
    modes = [r["config"]["mode"] for r in data["runs"]]
    assert modes == ["streaming", "no-speculation", "baseline"]
    for run in data["runs"]:
        assert CONTRACT_RUN_KEYS <= set(run), run.keys()
        config = run["config"]
        assert config == {
            "stt": "whisper-tiny.en", "llm": "smollm2-135m-instruct",
            "voice": "piper-en_US-joe-medium", "mode": config["mode"],
        }  # fmt: skip
        assert run["turns"] == 2, run["utterances"]
        assert run["false_turns"] == 0
        assert 0.0 <= run["wer"] <= 1.0
        assert run["peak_rss_mb"] > 50
        assert 0 < run["stt_rtf"] < 5 and 0 < run["tts_rtf"] < 5
        assert run["llm_tokens_per_s"] > 0
        latency = run["latency_ms"]
        for key in CONTRACT_LATENCY_KEYS:
            p50, p95 = latency[key]["p50"], latency[key]["p95"]
            assert p50 is not None and p95 is not None, key
            assert 0 <= p50 <= p95, (key, p50, p95)
        assert latency["voice_to_voice"]["p50"] > latency["eou"]["p50"]
        for utterance in run["utterances"]:
            assert utterance["reply"], utterance
            assert utterance["latency_ms"]["voice_to_voice"] > utterance["latency_ms"]["eou"]
    streaming = data["runs"][0]
    # The session's own figure is kept beside the one from the true end of speech.
    assert streaming["latency_ms"]["voice_to_voice_session"]["p50"] is not None
    assert data["speed_up"]["voice_to_voice_p50"] > 0
    # Both sessions answered both recordings; what speculation bought is measured, not assumed.
    assert data["speculation"]["recordings"] == 2
    assert "speculation buys a median" in result.output
    # the defaults for a file, which cannot hear us (as `talk --input FILE`)
    assert data["end_of_turn"] == {"silence_ms": 600.0, "max_silence_ms": 750.0}
    assert plot_path.read_bytes()[:4] == b"\x89PNG"
