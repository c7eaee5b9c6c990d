"""``voiceagent doctor``: is this machine ready to talk?"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Literal

from voiceagent.errors import VoiceAgentError

Status = Literal["ok", "warn", "fail"]

PACKAGES = (
    "numpy", "sounddevice", "onnxruntime", "silero-vad", "torch", "faster-whisper",
    "ctranslate2", "llama-cpp-python", "piper-tts", "typer", "rich",
)  # fmt: skip


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)
    packages: dict[str, str | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "checks": [asdict(c) for c in self.checks],
            "packages": self.packages,
        }


def _package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _device_checks() -> list[Check]:
    from voiceagent.audio.devices import list_devices

    try:
        devices = list_devices()
    except VoiceAgentError as exc:
        return [Check("portaudio", "fail", exc.message, exc.fix)]
    checks = [Check("portaudio", "ok", "PortAudio library loaded")]
    inputs = [d for d in devices if d.max_input_channels > 0]
    outputs = [d for d in devices if d.max_output_channels > 0]
    no_input_fix = (
        "plug in a microphone; without one `talk` replays a bundled sample question"
    )
    checks.append(
        Check("input devices", "ok", f"{len(inputs)} found")
        if inputs
        else Check("input devices", "warn", "none found", no_input_fix)
    )
    checks.append(
        Check("output devices", "ok", f"{len(outputs)} found")
        if outputs
        else Check(
            "output devices", "warn", "none found", "use --output reply.wav to write replies"
        )
    )
    return checks


def _model_checks() -> list[Check]:
    from voiceagent.models.catalog import default_specs
    from voiceagent.models.store import ModelStatus, check_model

    checks = []
    for spec in default_specs():
        state = check_model(spec)
        if state.status == ModelStatus.READY:
            checks.append(Check(f"model {spec.id}", "ok", f"ready, sha256 verified ({state.path})"))
        else:
            detail = str(state.status) + (f": {state.problem}" if state.problem else "")
            checks.append(
                Check(f"model {spec.id}", "fail", detail, f"voiceagent models pull {spec.id}")
            )
    return checks


def run_checks() -> DoctorReport:
    """Run every check; nothing here downloads or loads a model."""
    from voiceagent.config import load_settings

    report = DoctorReport()
    py_ok = sys.version_info >= (3, 11)
    report.checks.append(
        Check(
            "python",
            "ok" if py_ok else "fail",
            f"{platform.python_version()} ({sys.executable})",
            None if py_ok else "use Python 3.11 or newer",
        )
    )
    report.packages = _package_versions()
    missing = [n for n, v in report.packages.items() if v is None]
    report.checks.append(
        Check(
            "packages",
            "fail" if missing else "ok",
            f"missing: {', '.join(missing)}" if missing else "all installed",
            "run `make talk` (or pip install -e .) to install them" if missing else None,
        )
    )
    report.checks.extend(_device_checks())
    report.checks.extend(_model_checks())
    settings = load_settings()
    report.checks.append(
        Check(
            "threads",
            "ok",
            f"{settings.stt_threads} for speech to text while talking, {settings.threads} for "
            f"files, {settings.llm_threads} for the LLM, {settings.tts_threads} for the voice "
            f"(cores: {os.cpu_count()}; "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
            f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')})",
        )
    )
    return report
