"""What the benchmark ran on, and how much memory and CPU it used while it ran."""

from __future__ import annotations

import os
import platform
import resource
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

PACKAGES = (
    "voiceagent",
    "faster-whisper",
    "ctranslate2",
    "llama_cpp_python",
    "piper-tts",
    "onnxruntime",
    "numpy",
    "jiwer",
)


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's marketing name ("model name" in /proc/cpuinfo), else the platform's guess."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.machine() or "unknown"  # platform.processor() would run `uname -p`


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _psutil() -> Any:
    import psutil  # type: ignore[import-untyped,unused-ignore]

    return psutil


def current_rss_mb() -> float:
    """Resident memory of this process now."""
    return float(_psutil().Process().memory_info().rss) / 2**20


def describe_machine(threads: int) -> dict[str, Any]:
    """The ``machine`` object of the JSON report."""
    psutil = _psutil()

    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpu": cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "threads_used": threads,
        "memory_total_mb": round(psutil.virtual_memory().total / 2**20),
        "load_avg_1m": round(load[0], 2),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "packages": package_versions(),
    }


def process_peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


class RssSampler:
    """Samples this process's resident memory in a background thread, per labelled phase.

    ``with sampler.phase("run-1"): ...`` attributes the highest RSS seen during the block to
    that label. The process holds every model of every configuration, so a phase's peak
    includes them all: compare configurations by the models' own footprint, not by this.
    """

    def __init__(self, interval_s: float = 0.02) -> None:
        self._process = _psutil().Process()
        self._interval_s = interval_s
        self._label: str | None = None
        self._lock = threading.Lock()
        self.peaks_mb: dict[str, float] = {}
        self._low_mb: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="voiceagent-rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def rss_mb(self) -> float:
        return float(self._process.memory_info().rss) / 2**20

    def phase(self, label: str) -> _Phase:
        return _Phase(self, label)

    def take_low_mb(self) -> float:
        """The lowest RSS seen since the last call (or the start), now included; then start
        over. Between two turns that is the memory at rest, without what a model call in
        flight holds for a moment."""
        rss = self.rss_mb()
        with self._lock:
            low = rss if self._low_mb is None else min(self._low_mb, rss)
            self._low_mb = None
        return low

    def _record(self) -> None:
        rss = self.rss_mb()
        with self._lock:
            self._low_mb = rss if self._low_mb is None else min(self._low_mb, rss)
            if self._label is not None:
                self.peaks_mb[self._label] = max(self.peaks_mb.get(self._label, 0.0), rss)

    def _set_label(self, label: str | None) -> None:
        with self._lock:
            self._label = label
        if label is not None:
            self._record()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._record()


class _Phase:
    def __init__(self, sampler: RssSampler, label: str) -> None:
        self._sampler = sampler
        self._label = label
        self._cpu_started = 0.0
        self.cpu_s = 0.0
        self.wall_s = 0.0
        self._wall_started = 0.0

    def __enter__(self) -> _Phase:
        self._sampler._set_label(self._label)
        self._cpu_started = time.process_time()
        self._wall_started = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cpu_s = time.process_time() - self._cpu_started
        self.wall_s = time.perf_counter() - self._wall_started
        self._sampler._record()
        self._sampler._set_label(None)
