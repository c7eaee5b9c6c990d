"""Soak: a long conversation fed from files as fast as possible with the default models.

Runs :func:`voiceagent.bench.soak.run_soak` over the recordings of ../shared/audio/speech and
prints its report: resident memory growth after warm-up, the largest prompt against the context
window, and the slope of each latency over the turns (ms per turn), fitted to every turn and to
medians of windows of turns. tests/e2e/test_soak.py asserts on the same figures.

Usage: .venv/bin/python scripts/soak.py [--turns 200] [--json FILE] [--realtime]
(--realtime: a polite user at real-time pace, as `talk` is used; e.g. --turns 50)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from voiceagent.bench.soak import CLIP_COUNT, SoakTurn, run_soak, soak_clips, summarize
from voiceagent.config import load_settings

SPEECH = Path(__file__).resolve().parents[1].parent / "shared" / "audio" / "speech"


def show_progress(turn: SoakTurn) -> None:
    if turn.index % 10 == 0:
        v2v = turn.latency_ms.get("voice_to_voice")
        print(f"turn {turn.index}: voice_to_voice {v2v} ms, rss {turn.rss_mb:.0f} MiB "
              f"(at rest {turn.at_rest_mb:.0f})", file=sys.stderr)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--clips", type=int, default=CLIP_COUNT,
        help="how many recordings the questions cycle through (15: turn 50 repeats turn 5's)",
    )  # fmt: skip
    parser.add_argument(
        "--realtime", action="store_true",
        help="ask each question at real-time pace once the last answer was heard",
    )  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        result = run_soak(
            load_settings(), soak_clips(SPEECH, args.clips), args.turns, Path(scratch),
            show_progress,
            realtime=args.realtime,
        )
    report = summarize(result)
    print(json.dumps(report.to_json(), indent=1))
    if args.json:
        details = {
            "report": report.to_json(),
            "turns": [asdict(t) for t in result.turns],
            "llm_calls": [asdict(c) for c in result.llm_calls],
            "errors": result.errors,
            "dropped": result.dropped,
        }
        args.json.write_text(json.dumps(details, indent=1))


if __name__ == "__main__":
    main()
