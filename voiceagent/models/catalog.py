"""The model catalog: ids, kinds, where each model's files come from and their checksums."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

from voiceagent.errors import ModelError

_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class ModelKind(StrEnum):
    VAD = "vad"
    STT = "stt"
    LLM = "llm"
    TTS = "tts"
    TURN = "turn"


@dataclass(frozen=True)
class ModelFile:
    """One file of a model as it lies in the store."""

    name: str
    size_bytes: int
    sha256: str
    member: str | None = None  # path inside the bundling wheel
    parts: tuple[str, ...] = ()  # or: joined from these members, in order
    hub_file: str | None = None  # name in the model-hub repo, when it differs

    @property
    def members(self) -> tuple[str, ...]:
        return self.parts if self.parts else ((self.member,) if self.member else ())


@dataclass(frozen=True)
class ModelSpec:
    """A model voiceagent knows by id."""

    id: str
    kind: ModelKind
    is_default: bool
    description: str
    license: str
    main: str  # the file a backend loads, or "." for a folder model
    wheels: tuple[str, ...]  # PyPI requirements "name==version"
    hub_repo: str | None
    files: tuple[ModelFile, ...]

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    @property
    def source(self) -> str:
        return "pypi:" + ",".join(self.wheels)


def _catalog_path() -> Path:
    packaged = Path(__file__).with_name("catalog.toml")
    if packaged.is_file():
        return packaged
    # Editable installs and source checkouts read the catalog from the repository.
    return Path(__file__).resolve().parents[2] / "models" / "catalog.toml"


def is_valid_model_id(model_id: str) -> bool:
    """Whether ``model_id`` is a plain name that cannot point outside the store."""
    return bool(_ID_PATTERN.match(model_id)) and ".." not in model_id


@cache
def load_catalog() -> tuple[ModelSpec, ...]:
    """Parse ``catalog.toml`` once."""
    with _catalog_path().open("rb") as handle:
        raw = tomllib.load(handle)
    specs = []
    for entry in raw["model"]:
        if not is_valid_model_id(entry["id"]):
            raise ModelError(f"the model catalog has an invalid id {entry['id']!r}.")
        files = tuple(
            ModelFile(
                name=f["name"],
                size_bytes=int(f["size_bytes"]),
                sha256=f["sha256"].lower(),
                member=f.get("member"),
                parts=tuple(f.get("parts", ())),
                hub_file=f.get("hub_file"),
            )
            for f in entry["files"]
        )
        for f in files:
            if Path(f.name).name != f.name:
                raise ModelError(f"the model catalog names an unsafe file {f.name!r}.")
        source = entry.get("source", {})
        specs.append(
            ModelSpec(
                id=entry["id"],
                kind=ModelKind(entry["kind"]),
                is_default=bool(entry.get("default", False)),
                description=entry.get("description", ""),
                license=entry.get("license", ""),
                main=entry["main"],
                wheels=tuple(source.get("pypi", {}).get("wheels", ())),
                hub_repo=source.get("hub", {}).get("repo"),
                files=files,
            )
        )
    return tuple(specs)


def default_specs() -> tuple[ModelSpec, ...]:
    return tuple(s for s in load_catalog() if s.is_default)


def default_model_id(kind: ModelKind) -> str:
    for spec in default_specs():
        if spec.kind == kind:
            return spec.id
    raise ModelError(f"the catalog has no default {kind} model.")


def get_spec(model_id: str) -> ModelSpec:
    """The catalog entry for ``model_id``; a clear error for unknown or unsafe ids."""
    if not is_valid_model_id(model_id):
        raise ModelError(
            f"{model_id!r} is not a valid model id.",
            fix="use an id from `voiceagent models list`.",
        )
    for spec in load_catalog():
        if spec.id == model_id:
            return spec
    known = ", ".join(s.id for s in load_catalog())
    raise ModelError(f"unknown model {model_id!r}.", fix=f"use one of: {known}.")
