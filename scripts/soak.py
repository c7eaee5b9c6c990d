"""Soak: a long conversation fed from files as fast as possible with the default models.

Builds one input of N utterances (the recordings of ../shared/audio/speech in turn, 3 s of
silence after each), runs a single session over it, and reports per-turn latencies and the
process's resident memory: growth after warm-up and the least-squares slope of each latency
over the turns (ms per turn). As-fast-as-possible pacing: latencies are compute times, so the
slope shows drift (a growing prompt, a leak), not what a user would feel.

Usage: .venv/bin/python scripts/soak.py [--turns 200] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

import numpy as np
import psutil

from voiceagent.audio.clock import MonotonicClock
from voiceagent.audio.files import read_audio, write_wav
from voiceagent.audio.sinks import WavFileSink
from voiceagent.audio.sources import FileSource
from voiceagent.config import load_settings
from voiceagent.events import Event, Turn
from voiceagent.interfaces import ReplyLimits
from voiceagent.pipeline import load_models
from voiceagent.session import SessionOptions, VoiceSession

SPEECH = Path(__file__).resolve().parents[1].parent / "shared" / "audio" / "speech"
GAP_S = 3.0


class TurnMeter:
    """Records each turn with the process's resident memory when it ended."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float | None]] = []
        self._process = psutil.Process()

    def emit(self, event: Event) -> None:
        if isinstance(event, Turn):
            row: dict[str, float | None] = dict(event.latency_ms)
            row["rss_mb"] = self._process.memory_info().rss / 1e6
            self.rows.append(row)


def build_input(turns: int, path: Path) -> None:
    clips = [read_audio(p).samples for p in sorted(SPEECH.glob("*.wav"))[:12]]
    gap = np.zeros(int(GAP_S * 16000), np.float32)
    pieces = [gap]
    for index in range(turns):
        pieces += [clips[index % len(clips)], gap]
    write_wav(path, np.concatenate(pieces), 16000)


def slope(values: list[float]) -> float:
    x = np.arange(len(values), dtype=np.float64)
    return float(np.polyfit(x, np.asarray(values, dtype=np.float64), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    settings = load_settings()
    models = load_models(settings, reply=True)
    meter = TurnMeter()
    with tempfile.TemporaryDirectory() as scratch:
        source_path = Path(scratch) / "soak.wav"
        build_input(args.turns, source_path)
        clock = MonotonicClock()
        assert models.tts is not None
        sink = WavFileSink.open(Path(scratch) / "reply.wav", models.tts.sample_rate_hz, clock=clock)
        source = FileSource.open(source_path, realtime=False, clock=clock, trailing_silence_ms=2500)
        options = SessionOptions(
            realtime=False,
            limits=ReplyLimits(settings.max_reply_tokens, settings.max_reply_s),
        )
        session = VoiceSession(
            models, source, sink, meter, clock, options,
            system_prompt=settings.system_prompt, history_tokens=settings.history_tokens,
        )  # fmt: skip
        try:
            asyncio.run(session.run())
        finally:
            sink.close()
            models.close()
    rows = meter.rows
    warm = rows[min(10, len(rows) - 1)]
    report = {
        "turns": len(rows),
        "rss_mb_after_warm_up": warm["rss_mb"],
        "rss_mb_last": rows[-1]["rss_mb"],
        "rss_growth_mb": (rows[-1]["rss_mb"] or 0) - (warm["rss_mb"] or 0),
        "history_trims": session.history.trims if session.history else None,
        "slope_ms_per_turn": {},
        "median_first_10_vs_last_10": {},
    }
    for key in ("stt", "llm_first_token", "tts_first_audio", "voice_to_voice"):
        values = [r[key] for r in rows if r.get(key) is not None]
        if len(values) >= 20:
            report["slope_ms_per_turn"][key] = round(slope(values), 3)
            report["median_first_10_vs_last_10"][key] = [
                round(float(np.median(values[:10])), 1),
                round(float(np.median(values[-10:])), 1),
            ]
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"report": report, "turns": rows}, indent=1))


if __name__ == "__main__":
    main()
