"""The per-session log: one JSON record per turn, in a file only the user can read.

A reply the user talked over gets a ``"record": "interrupted"`` line after its turn, with
the words of it that were heard (the turn's ``reply_text`` may be what was written, not what
was played). Device trouble is logged too: a ``"record": "device"`` line per loss, recovery
or giving up, and a closing ``"record": "session_end"`` line with the device counters.

Transcripts and replies are the user's private speech: they go to this file (which
``--no-log`` turns off) and never to the logging system above DEBUG.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from voiceagent.audio.recovery import DeviceCounts, DeviceNotice
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
            "time": _now(),
            "record": "turn",
            "turn": turn.index,
            "user_text": turn.user_text,
            "reply_text": turn.reply_text,
            "models": model_ids,
            "latency_ms": turn.latency_ms,
            "speculative": turn.speculative,
        }
        self._write(record)

    def write_interruption(self, turn_index: int, played_text: str) -> None:
        """Log that the reply of turn ``turn_index`` was cut off, and what of it was heard."""
        self._write(
            {
                "time": _now(),
                "record": "interrupted",
                "turn": turn_index,
                "played_text": played_text,
            }
        )

    def write_device_notice(self, notice: DeviceNotice) -> None:
        """Log a device loss, recovery or giving up."""
        self._write(
            {
                "time": _now(),
                "record": "device",
                "event": str(notice.kind),
                "direction": notice.direction,
                "device": notice.device,
                "attempts": notice.attempts,
                "gap_s": round(notice.gap_s, 3),
                "message": notice.message,
            }
        )

    def write_summary(self, turns: int, counts: DeviceCounts) -> None:
        """Log the session's end with its device counters."""
        self._write({"time": _now(), "record": "session_end", "turns": turns, **asdict(counts)})

    def _write(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()  # a crash or Ctrl-C must not lose the turns so far

    def close(self) -> None:
        self._handle.close()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
