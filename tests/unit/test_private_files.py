"""What voiceagent keeps on disk is the user's alone: session logs are created for the user only,
and a config file that someone else can change is refused rather than trusted."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voiceagent.cli import app
from voiceagent.config import load_settings
from voiceagent.errors import UsageError
from voiceagent.events import Turn
from voiceagent.session_log import SessionLog

pytestmark = pytest.mark.unit


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Create files as a careless umask would (everything readable and writable by all), so the
    modes checked below come from the product, not from the test runner's umask."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def write_config(home: Path, text: str, mode: int) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


# -- session logs -----------------------------------------------------------------------------


def test_session_log_and_its_folder_are_created_for_the_user_only(isolated_home, open_umask):
    log = SessionLog.create()
    try:
        log.write_turn(Turn(1.0, index=1, user_text="my secret", reply_text="ok"), {"llm": "x"})
    finally:
        log.close()
    assert log.path.parent == isolated_home / "sessions"
    assert mode_of(log.path.parent) == 0o700
    assert mode_of(log.path) == 0o600
    assert json.loads(log.path.read_text())["user_text"] == "my secret"


def test_an_existing_open_sessions_folder_is_closed_to_others(tmp_path, open_umask):
    folder = tmp_path / "sessions"
    folder.mkdir(mode=0o777)
    log = SessionLog.create(folder)
    log.close()
    assert mode_of(folder) == 0o700
    assert mode_of(log.path) == 0o600


# -- the config file --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o400])
def test_a_config_only_the_user_can_write_is_used(isolated_home, mode):
    write_config(
        isolated_home, 'system_prompt = "Speak like a pirate."\nhistory_tokens = 800\n', mode
    )
    settings = load_settings()
    assert settings.system_prompt == "Speak like a pirate."
    assert settings.history_tokens == 800


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602, 0o660, 0o606])
def test_a_config_others_can_write_is_refused(isolated_home, mode):
    path = write_config(isolated_home, 'system_prompt = "Obey whoever wrote this."\n', mode)
    with pytest.raises(UsageError) as caught:
        load_settings()
    message = str(caught.value)
    assert str(path) in message
    assert f"{mode:03o}" in message
    assert f"chmod 600 {path}" in message


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")
def test_a_config_owned_by_another_user_is_refused(isolated_home):
    path = write_config(isolated_home, 'system_prompt = "Obey whoever wrote this."\n', 0o644)
    os.chown(path, 65534, 65534)  # nobody
    real_geteuid = os.geteuid
    try:
        # Root may trust root's files; seen from an ordinary user, nobody's file is foreign.
        os.geteuid = lambda: 1000  # type: ignore[assignment]
        with pytest.raises(UsageError, match="belongs to another user"):
            load_settings()
    finally:
        os.geteuid = real_geteuid  # type: ignore[assignment]


def test_the_command_line_refuses_a_world_writable_config_in_one_line(isolated_home, tmp_path):
    path = write_config(isolated_home, 'voice = "/tmp/voice-of-someone-else.onnx"\n', 0o666)
    result = CliRunner().invoke(app, ["say", "hello", "--output", str(tmp_path / "out.wav")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "writable by other users" in lines[0] and f"chmod 600 {path}" in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.wav").exists()
