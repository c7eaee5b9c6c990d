"""The model store: what is on disk, whether it is intact, and where a backend finds it.

This and ``pull.py`` are the only modules that touch model files on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from voiceagent.errors import ModelError
from voiceagent.models.catalog import ModelKind, ModelSpec, get_spec, load_catalog
from voiceagent.paths import model_store

_STAMP = ".verified.json"
_CHUNK_BYTES = 1 << 20


class ModelStatus(StrEnum):
    READY = "ready"
    MISSING = "missing"
    CORRUPT = "corrupt"


@dataclass(frozen=True)
class ModelState:
    """One row of ``voiceagent models list``."""

    id: str
    kind: str
    status: ModelStatus
    path: str
    size_bytes: int
    sha256: str
    source: str
    problem: str | None = None

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["status"] = str(self.status)
        return data


def model_dir(model_id: str, store: Path | None = None) -> Path:
    """The folder of ``model_id`` inside the store, refusing anything that would escape it."""
    root = (store or model_store()).resolve()
    spec = get_spec(model_id)  # validates the id
    folder = (root / spec.id).resolve()
    if folder.parent != root:
        raise ModelError(f"model id {model_id!r} would leave the model store.")
    return folder


def main_path(spec: ModelSpec, store: Path | None = None) -> Path:
    folder = model_dir(spec.id, store)
    return folder if spec.main == "." else folder / spec.main


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_matches(folder: Path, spec: ModelSpec) -> bool:
    """Whether every file is unchanged since it was last hashed (size and mtime)."""
    try:
        stamp = json.loads((folder / _STAMP).read_text())
    except (OSError, ValueError):
        return False
    for model_file in spec.files:
        entry = stamp.get(model_file.name)
        stat = (folder / model_file.name).stat()
        if not entry or entry.get("sha256") != model_file.sha256:
            return False
        if entry.get("size") != stat.st_size or entry.get("mtime_ns") != stat.st_mtime_ns:
            return False
    return True


def write_stamp(folder: Path, spec: ModelSpec) -> None:
    """Record that the files were hashed and found intact, so ``list`` need not re-hash."""
    stamp = {}
    for model_file in spec.files:
        stat = (folder / model_file.name).stat()
        stamp[model_file.name] = {
            "sha256": model_file.sha256,
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        }
    tmp = folder / (_STAMP + ".tmp")
    tmp.write_text(json.dumps(stamp, indent=1))
    os.replace(tmp, folder / _STAMP)


def check_model(spec: ModelSpec, *, rehash: bool = False, store: Path | None = None) -> ModelState:
    """Inspect one model on disk.

    Sizes are always checked. Contents are re-hashed when ``rehash`` is set or when any file
    changed since the last verified hash (so a bit flip is caught by ``list`` too).
    """
    folder = model_dir(spec.id, store)
    path = main_path(spec, store)

    def state(status: ModelStatus, problem: str | None = None) -> ModelState:
        sha = spec.files[0].sha256 if len(spec.files) == 1 else _combined_sha(spec)
        return ModelState(
            id=spec.id,
            kind=str(spec.kind),
            status=status,
            path=str(path),
            size_bytes=spec.size_bytes,
            sha256=sha,
            source=spec.source,
            problem=problem,
        )

    present = [f for f in spec.files if (folder / f.name).is_file()]
    if not present:
        return state(ModelStatus.MISSING)
    if len(present) < len(spec.files):
        missing = ", ".join(f.name for f in spec.files if f not in present)
        return state(ModelStatus.CORRUPT, f"missing file(s): {missing}")
    for model_file in spec.files:
        size = (folder / model_file.name).stat().st_size
        if size != model_file.size_bytes:
            return state(
                ModelStatus.CORRUPT,
                f"{model_file.name} is {size} bytes, expected {model_file.size_bytes}",
            )
    if not rehash and _stamp_matches(folder, spec):
        return state(ModelStatus.READY)
    for model_file in spec.files:
        if sha256_file(folder / model_file.name) != model_file.sha256:
            return state(ModelStatus.CORRUPT, f"{model_file.name} fails its sha256 check")
    try:
        write_stamp(folder, spec)
    except OSError:
        pass  # a read-only store is still usable; we just re-hash next time
    return state(ModelStatus.READY)


def _combined_sha(spec: ModelSpec) -> str:
    """A single checksum for a multi-file model: sha256 over 'name sha256' lines."""
    lines = "".join(f"{f.name} {f.sha256}\n" for f in sorted(spec.files, key=lambda f: f.name))
    return hashlib.sha256(lines.encode()).hexdigest()


def list_models(*, rehash: bool = False, store: Path | None = None) -> list[ModelState]:
    return [check_model(spec, rehash=rehash, store=store) for spec in load_catalog()]


def resolve_model(ref: str, kind: ModelKind, *, store: Path | None = None) -> Path:
    """Turn a model id or a local path into the path a backend loads.

    A path that exists is used as it is (any CTranslate2 Whisper folder, GGUF file or Piper
    voice). An id must name a model of ``kind`` that has been pulled and is intact.
    """
    candidate = Path(ref).expanduser()
    looks_like_path = os.sep in ref or ref.startswith(".") or candidate.suffix in {
        ".gguf",
        ".onnx",
    }
    if candidate.exists():
        return _check_local_path(candidate.resolve(), kind)
    if looks_like_path:
        raise ModelError(f"model file {ref} does not exist.", fix="check the path.")
    spec = get_spec(ref)
    if spec.kind != kind:
        raise ModelError(
            f"{ref!r} is a {spec.kind} model, not a {kind} model.",
            fix=f"pick a {kind} model from `voiceagent models list`.",
        )
    state = check_model(spec, store=store)
    if state.status == ModelStatus.MISSING:
        raise ModelError(
            f"model {ref} is not in the store.", fix=f"run `voiceagent models pull {ref}`."
        )
    if state.status == ModelStatus.CORRUPT:
        raise ModelError(
            f"model {ref} is corrupt ({state.problem}).",
            fix=f"run `voiceagent models pull {ref}` to fetch it again.",
        )
    return Path(state.path)


_KIND_HINTS = {
    ModelKind.STT: "a CTranslate2 Whisper folder (with model.bin)",
    ModelKind.LLM: "a .gguf file",
    ModelKind.TTS: "a Piper .onnx voice with its .onnx.json beside it",
    ModelKind.VAD: "a Silero VAD .onnx file",
    ModelKind.TURN: "a Smart Turn .onnx file",
}


def _check_local_path(path: Path, kind: ModelKind) -> Path:
    """Cheap shape checks so a voice is not handed to Whisper (the loaders check the rest)."""
    ok = {
        ModelKind.STT: path.is_dir() and (path / "model.bin").is_file(),
        ModelKind.LLM: path.is_file() and _has_magic(path, b"GGUF"),
        ModelKind.TTS: path.is_file()
        and path.suffix == ".onnx"
        and path.with_name(path.name + ".json").is_file(),
        ModelKind.VAD: path.is_file() and path.suffix == ".onnx",
        ModelKind.TURN: path.is_file() and path.suffix == ".onnx",
    }[kind]
    if not ok:
        raise ModelError(
            f"{path} is not a {kind} model: expected {_KIND_HINTS[kind]}.",
            fix="pass the right path, or a model id from `voiceagent models list`.",
        )
    return path


def _has_magic(path: Path, magic: bytes) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(len(magic)) == magic
    except OSError:
        return False
