"""A real PulseAudio sound server with two null sinks, for device tests without hardware.

``mic`` is a sink whose monitor (``mic.monitor``) is the default input: whatever ``paplay
--device=mic`` plays is what the "microphone" hears. ``speaker`` is the default output; its
monitor records what we played. The server gets its own runtime folder (PULSE_RUNTIME_PATH), so
it never touches, and ``pulseaudio --kill`` never stops, a developer's own sound server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER_START_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class PulseServer:
    """A running test sound server.

    Attributes:
        runtime_dir: Its runtime folder (socket, pid file).
        env: Environment for client commands (``paplay``, ``parecord``, ``pactl``).
    """

    runtime_dir: Path
    env: dict[str, str]

    def run(self, *command: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a client command against this server; fails the test if it fails."""
        result = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=timeout_s
        )
        if result.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed: {result.stderr.strip()}")
        return result


def _server_env(runtime_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PULSE_RUNTIME_PATH"] = str(runtime_dir)
    env["PULSE_SERVER"] = f"unix:{runtime_dir / 'native'}"
    return env


def _wait_until_ready(env: dict[str, str]) -> None:
    deadline_s = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        ready = subprocess.run(["pactl", "info"], env=env, capture_output=True, timeout=10)
        if ready.returncode == 0:
            return
        if time.monotonic() > deadline_s:
            pytest.fail(f"PulseAudio did not answer within {SERVER_START_TIMEOUT_S} s")
        time.sleep(0.1)  # a one-off start-up wait for another process, not a consumer loop


@pytest.fixture(scope="session")
def pulse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulseServer]:
    """Start PulseAudio with null sinks ``mic`` and ``speaker`` for the whole session."""
    missing = [
        tool for tool in ("pulseaudio", "pactl", "paplay", "parecord") if not shutil.which(tool)
    ]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed "
            "(sudo apt-get install pulseaudio pulseaudio-utils libasound2-plugins)"
        )
    # Unix socket paths are limited to ~108 bytes, so keep the folder name short.
    runtime_dir = tmp_path_factory.mktemp("pulse")
    env = _server_env(runtime_dir)
    started = subprocess.run(
        [
            "pulseaudio",
            "-n",
            "--daemonize=yes",
            "--exit-idle-time=-1",
            "--load=module-null-sink sink_name=mic",
            "--load=module-null-sink sink_name=speaker",
            "--load=module-native-protocol-unix",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if started.returncode != 0:
        pytest.fail(f"could not start PulseAudio: {started.stderr.strip()}")
    saved_env = {key: os.environ.get(key) for key in ("PULSE_RUNTIME_PATH", "PULSE_SERVER")}
    try:
        _wait_until_ready(env)
        server = PulseServer(runtime_dir, env)
        server.run("pactl", "set-default-source", "mic.monitor")
        server.run("pactl", "set-default-sink", "speaker")
        # PortAudio (inside this process) reaches the server through ALSA's pulse plugin,
        # which reads these variables when a stream or device list is opened.
        os.environ.update({key: env[key] for key in saved_env})
        if "sounddevice" in sys.modules:
            # PortAudio lists devices only when initialised; an earlier test may have done so
            # before the server existed.
            from voiceagent.audio.devices import rescan_devices

            rescan_devices()
        yield server
    finally:
        subprocess.run(["pulseaudio", "--kill"], env=env, capture_output=True, timeout=30)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
