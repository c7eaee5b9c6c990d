"""Run `voiceagent talk --input FILE --output reply.wav --jsonl` over a folder of recordings at
real-time pace and report the per-stage latency percentiles of every turn.

Usage: .venv/bin/python scripts/measure_talk.py [FOLDER] [--limit N]
(default folder: ../shared/audio/speech)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

KEYS = ("eou", "stt", "transcript_ready", "llm_first_token", "tts_first_audio", "voice_to_voice")
AUDIO = {".wav", ".flac", ".ogg"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))  # nearest rank
    return ordered[min(rank, len(ordered)) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    default = Path(__file__).resolve().parents[1].parent / "shared" / "audio" / "speech"
    parser.add_argument("folder", nargs="?", type=Path, default=default)
    parser.add_argument("--limit", type=int, default=0)
    args = parser.parse_args()
    files = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in AUDIO)
    if args.limit:
        files = files[: args.limit]
    turns = []
    with tempfile.TemporaryDirectory() as scratch:
        for path in files:
            done = subprocess.run(
                [sys.executable, "-m", "voiceagent", "talk", "--input", str(path),
                 "--output", str(Path(scratch) / "reply.wav"), "--jsonl", "--no-log"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                print(f"{path.name}: exit {done.returncode}: {done.stderr.strip()}")
                continue
            for line in done.stdout.splitlines():
                event = json.loads(line)
                if event["event"] == "turn":
                    turns.append(event)
                    v2v = event["latency_ms"]["voice_to_voice"]
                    print(f"{path.name}: voice_to_voice {v2v} ms", flush=True)
    print(f"\n{len(turns)} turns from {len(files)} files")
    print(f"{'stage':18} {'p50 ms':>8} {'p95 ms':>8}")
    for key in KEYS:
        values = [t["latency_ms"][key] for t in turns if t["latency_ms"].get(key) is not None]
        if values:
            print(f"{key:18} {percentile(values, 50):8.0f} {percentile(values, 95):8.0f}")
    early = sum(t.get("reply_started_early", False) for t in turns)
    print(f"replies started before the end of turn was confirmed: {early}/{len(turns)}")


if __name__ == "__main__":
    main()
