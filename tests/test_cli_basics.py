"""The command line itself: light start-up, doctor, devices, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from voiceagent.cli import app

runner = CliRunner()

HEAVY = ("torch", "ctranslate2", "llama_cpp", "onnxruntime", "piper", "faster_whisper",
         "sounddevice", "soundfile", "numpy")


@pytest.mark.unit
def test_help_imports_no_heavy_library():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from voiceagent.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'talk' in result.output or 'models' in result.output\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"--help imported: {done.stdout.strip()}"


@pytest.mark.unit
def test_help_through_the_installed_script():
    done = subprocess.run(
        [sys.executable, "-m", "voiceagent", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    for command in ("models", "devices", "doctor"):
        assert command in done.stdout


@pytest.mark.unit
def test_bad_flag_is_a_usage_error():
    result = runner.invoke(app, ["models", "list", "--no-such-flag"])
    assert result.exit_code == 2


@pytest.mark.unit
def test_doctor_without_models_fails_with_the_fix():
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    failed = {c["name"]: c for c in report["checks"] if c["status"] == "fail"}
    assert "model whisper-tiny.en" in failed
    assert failed["model whisper-tiny.en"]["fix"] == "voiceagent models pull whisper-tiny.en"
    assert report["packages"]["faster-whisper"]
    threads = next(c for c in report["checks"] if c["name"] == "threads")
    assert threads["detail"].split()[0].isdigit()


@pytest.mark.models
def test_doctor_with_models_passes(models_env):
    result = runner.invoke(app, ["doctor"])
    checks = result.stdout.splitlines()
    assert any(line.startswith("[ok  ] model smollm2-135m-instruct") for line in checks)
    assert not any(line.startswith("[FAIL] model") for line in checks), result.stdout
    assert any("portaudio" in line for line in checks)


@pytest.mark.unit
def test_devices_json_is_a_list():
    result = runner.invoke(app, ["devices", "--json"])
    assert result.exit_code == 0, result.stderr
    devices = json.loads(result.stdout)
    assert isinstance(devices, list)
    for device in devices:
        assert {"index", "name", "max_input_channels", "max_output_channels"} <= set(device)


@pytest.mark.unit
def test_onnxruntime_telemetry_is_off_for_every_entry_point():
    code = "import os, voiceagent; print(os.environ.get('ORT_DISABLE_TELEMETRY'))"
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.strip() == "1"


@pytest.mark.unit
def test_numpy_leaves_no_thread_spinning_after_a_product():
    # OpenBLAS's helper thread used to spin ~100 ms of CPU after each log-mel product (Whisper
    # and Smart Turn features), a core taken from the models on a two-core laptop.
    code = (
        "import time, voiceagent, numpy as np\n"
        "a = np.ones((80, 201), np.float32); b = np.ones((201, 1000), np.float32)\n"
        "a @ b; time.sleep(0.3)\n"
        "before = time.process_time(); a @ b; time.sleep(0.3)\n"
        "print(round((time.process_time() - before) * 1000))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS_", "OMP_"))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 30, f"{done.stdout.strip()} ms of CPU while the process slept"


@pytest.mark.unit
def test_the_script_keeps_exit_status_and_output_when_it_skips_teardown():
    # main() ends the process without the interpreter's teardown (see cli._exit_without_teardown):
    # the status must be the command's and piped output must arrive whole.
    usage = subprocess.run(
        [sys.executable, "-m", "voiceagent", "models", "list", "--no-such-flag"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert usage.returncode == 2, usage.stderr
    doctor = subprocess.run(
        [sys.executable, "-m", "voiceagent", "doctor", "--json"], capture_output=True, text=True
    )
    assert doctor.returncode == 1, doctor.stderr
    assert json.loads(doctor.stdout)["ok"] is False
    # Output still in Python's buffers (a pipe is block-buffered) is written before the end.
    code = (
        "import sys\n"
        "from voiceagent import cli\n"
        "sys.stdout.write('buffered, no newline')\n"
        "cli._exit_status.append(3)\n"
        "cli._exit_without_teardown()\n"
        "print('not reached')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    ended = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert (ended.returncode, ended.stdout) == (3, "buffered, no newline")
