"""The per-session log: one JSON record per turn, in a file only the user can read.

Transcripts and replies are the user's private speech: they go to this file (which
``--no-log`` turns off) and never to the logging system above DEBUG.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TextIO

from voiceagent.events import Turn
from voiceagent.paths import make_private_dir, session_log_dir


class SessionLog:
    def __init__(self, path: Path, handle: TextIO) -> None:
        self.path = path
        self._handle = handle

    @classmethod
    def create(cls, folder: Path | None = None) -> SessionLog:
        folder = make_private_dir(folder or session_log_dir())
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = folder / f"session-{stamp}-{os.getpid()}.jsonl"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(descriptor, 0o600)
        return cls(path, os.fdopen(descriptor, "a", encoding="utf-8"))

    def write_turn(self, turn: Turn, model_ids: dict[str, str]) -> None:
        record = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "turn": turn.index,
            "user_text": turn.user_text,
            "reply_text": turn.reply_text,
            "models": model_ids,
            "latency_ms": turn.latency_ms,
            "speculative": turn.speculative,
        }
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()  # a crash or Ctrl-C must not lose the turns so far

    def close(self) -> None:
        self._handle.close()
