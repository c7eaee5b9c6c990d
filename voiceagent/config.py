"""Settings shared by every command: thread counts and per-stage options.

Values come from (last wins) built-in defaults, ``$VOICEAGENT_HOME/config.toml``, ``VOICEAGENT_*``
environment variables and command-line flags.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from typing import Any

from voiceagent.errors import UsageError
from voiceagent.paths import config_file


def default_threads() -> int:
    """One thread per core, capped: CTranslate2 would otherwise take 4 on a 2-core laptop."""
    return max(1, min(os.cpu_count() or 2, 8))


@dataclass(frozen=True)
class Settings:
    """What a session is built from. Models are ids from the catalog or local paths."""

    threads: int = field(default_factory=default_threads)  # speech to text
    # The LLM runs while Piper speaks: with every core, llama.cpp's threads wait on each other
    # and generation collapses (76 -> 18 tokens/s measured here); with half it holds ~43.
    llm_threads: int = field(default_factory=lambda: max(1, default_threads() // 2))
    vad_model: str = "silero-vad"
    stt_model: str = "whisper-tiny.en"
    llm_model: str = "smollm2-135m-instruct"
    voice: str = "piper-en_US-joe-medium"
    turn_model: str = "auto"  # "auto": Smart Turn when pulled; "none" for silence only
    eou_silence_ms: int = 600
    system_prompt: str = (
        "You are a helpful voice assistant. Answer in one or two short spoken sentences. "
        "No lists, no markdown, no emoji."
    )
    max_reply_tokens: int = 96
    max_reply_s: float = 10.0
    history_tokens: int = 1024
    context_tokens: int = 2048

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the non-None overrides applied (flags left unset keep the setting)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def load_settings() -> Settings:
    """Defaults, then the config file, then ``VOICEAGENT_<FIELD>`` environment variables."""
    settings = Settings()
    path = config_file()
    values: dict[str, Any] = {}
    if path.is_file():
        try:
            values.update(tomllib.loads(path.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"cannot read {path}: {exc}.", fix="fix or delete the file.") from None
    known = {f.name: f for f in fields(Settings)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UsageError(
            f"{path} has unknown setting(s): {', '.join(unknown)}.",
            fix=f"use only: {', '.join(known)}.",
        )
    for name in known:
        env = os.environ.get(f"VOICEAGENT_{name.upper()}")
        if env is not None:
            values[name] = env
    converted = {}
    for name, raw in values.items():
        kind = type(getattr(settings, name))
        try:
            converted[name] = kind(raw) if kind in (int, float) else raw
        except (TypeError, ValueError):
            raise UsageError(
                f"setting {name}={raw!r} is not a valid {kind.__name__}.", fix="correct it."
            ) from None
    settings = replace(settings, **converted)
    if settings.threads < 1 or settings.llm_threads < 1:
        raise UsageError("thread counts must be at least 1.", fix="set VOICEAGENT_THREADS=2.")
    return settings
