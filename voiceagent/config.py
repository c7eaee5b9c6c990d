"""Settings shared by every command: thread counts and per-stage options.

Values come from (last wins) built-in defaults, ``$VOICEAGENT_HOME/config.toml``, ``VOICEAGENT_*``
environment variables and command-line flags. The config file steers the prompt and the models,
so one that another user owns or can write is refused.
"""

from __future__ import annotations

import os
import stat
import tomllib
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from voiceagent.errors import UsageError
from voiceagent.paths import config_file
from voiceagent.turns.endpointing import CUT_IN_MAX_SILENCE_MS, EndpointingConfig


def default_threads() -> int:
    """One thread per core, capped: CTranslate2 would otherwise take 4 on a 2-core laptop."""
    return max(1, min(os.cpu_count() or 2, 8))


@dataclass(frozen=True)
class Settings:
    """What a session is built from. Models are ids from the catalog or local paths."""

    threads: int = field(default_factory=default_threads)  # files: transcribe, say, bench baseline
    # Speech to text in a conversation. Whisper's decoder on a short utterance is faster on
    # one thread than on two (median 126 vs 148 ms on the speech corpus here), and the other
    # core stays free for the LLM, which reads the prompt ahead at the same moment.
    stt_threads: int = 1
    # Piper in a conversation. The LLM pauses while the first chunk of a reply is synthesised,
    # so that chunk has both cores: 50-83 ms instead of 80-133 ms here for two to four words.
    tts_threads: int = field(default_factory=lambda: min(2, default_threads()))
    # The LLM runs while Piper speaks: with every core, llama.cpp's threads wait on each other
    # and generation collapses (76 -> 18 tokens/s measured here); with half it holds ~43.
    llm_threads: int = field(default_factory=lambda: max(1, default_threads() // 2))
    vad_model: str = "silero-vad"
    stt_model: str = "whisper-tiny.en"
    llm_model: str = "smollm2-135m-instruct"
    voice: str = "piper-en_US-joe-medium"
    turn_model: str = "auto"  # "auto": Smart Turn when pulled; "none" for silence only
    eou_silence_ms: int = 600
    # The longest wait, when the words and Smart Turn say the user stopped mid-phrase. Lower
    # answers sooner after a sentence left hanging, and ends the turn of anyone who pauses
    # that long mid-phrase (README, Latency). Never shorter than eou_silence_ms. None: 750 ms
    # where the user can cut in over the reply (full duplex, a file), 1500 ms in half duplex
    # from a microphone, where words said over the reply are lost, and when only listening.
    eou_max_silence_ms: int | None = None
    system_prompt: str = (
        "You are a helpful voice assistant. Answer in one or two short spoken sentences. "
        "No lists, no markdown, no emoji."
    )
    max_reply_tokens: int = 96
    max_reply_s: float = 10.0
    history_tokens: int = 1024
    context_tokens: int = 2048

    def endpointing(self, takes_back_early_answers: bool) -> EndpointingConfig:
        """The end-of-turn bounds these settings ask for.

        Args:
            takes_back_early_answers: Whether an answer begun too early is taken back: we
                reply, and the user's voice over the reply interrupts it (``--duplex full``,
                or an input that cannot hear us). Then the default longest wait is shorter.
                Not when only listening: a turn ended too early stays ended.
        """
        config = EndpointingConfig().with_silence_ms(self.eou_silence_ms)
        longest = self.eou_max_silence_ms
        if longest is None:
            longest = config.max_silence_ms
            if takes_back_early_answers:
                longest = CUT_IN_MAX_SILENCE_MS
        return replace(config, max_silence_ms=max(longest, self.eou_silence_ms))

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
            with path.open("rb") as handle:
                _refuse_if_others_can_write(path, os.fstat(handle.fileno()))
                values.update(tomllib.load(handle))
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
    hints = typing.get_type_hints(Settings)
    converted = {}
    for name, raw in values.items():
        # From the annotation, not the default: ``int | None`` (None by default) takes an int.
        kind = next((t for t in typing.get_args(hints[name]) if t is not type(None)), hints[name])
        try:
            converted[name] = kind(raw) if kind in (int, float) else raw
        except (TypeError, ValueError):
            raise UsageError(
                f"setting {name}={raw!r} is not a valid {kind.__name__}.", fix="correct it."
            ) from None
    settings = replace(settings, **converted)
    if min(settings.threads, settings.stt_threads, settings.llm_threads, settings.tts_threads) < 1:
        raise UsageError("thread counts must be at least 1.", fix="set VOICEAGENT_THREADS=2.")
    return settings


def _refuse_if_others_can_write(path: Path, status: os.stat_result) -> None:
    """Refuse a config file that someone other than the user (or root) can change.

    The file sets the system prompt and which model files are loaded, so whoever can write it
    steers the assistant. Like ssh with its keys, a file owned by another user or writable by
    the group or everyone is refused rather than trusted. Readable by others is fine.
    """
    if os.name != "posix":
        return
    owner_uid = status.st_uid
    if owner_uid not in (os.geteuid(), 0):
        raise UsageError(
            f"{path} belongs to another user (uid {owner_uid}), who could change the "
            "assistant's prompt and models through it.",
            fix=f"delete it, or take it over: chown $(id -u) {path} && chmod 600 {path}.",
        )
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UsageError(
            f"{path} is writable by other users (mode {stat.S_IMODE(status.st_mode):03o}), who "
            "could change the assistant's prompt and models through it.",
            fix=f"chmod 600 {path}.",
        )
