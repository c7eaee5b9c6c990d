"""Run `voiceagent talk --input FILE --output reply.wav --jsonl` over a folder of recordings at
real-time pace and report the per-stage latency percentiles of every turn.

A recording is one utterance, but a reader's pause may end a turn too soon; the reader's next
words then interrupt that reply. Such turns are counted and shown apart, and voice_to_voice is
also given per recording, for the turn answered at its end (the way `bench` counts it).

Usage: .venv/bin/python scripts/measure_talk.py [FOLDER] [--limit N] [--talk-arg ARG ...]
(default folder: ../shared/audio/speech). ``--talk-arg`` passes one more argument to ``talk``:
``--talk-arg=--eou-max-silence-ms --talk-arg=1500`` gives a file the longest wait of half duplex
from a microphone.
"""

from __future__ import annotations

import argparse
import json
import statistics
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
    parser.add_argument("--talk-arg", action="append", default=[], help="passed on to talk")
    args = parser.parse_args()
    files = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in AUDIO)
    if args.limit:
        files = files[: args.limit]
    turns = []
    last_turns = []  # per recording: the turn answered at its end
    talked_over = []  # per reply the speaker's next words interrupted: ms it went on over them
    with tempfile.TemporaryDirectory() as scratch:
        for path in files:
            done = subprocess.run(
                [sys.executable, "-m", "voiceagent", "talk", "--input", str(path),
                 "--output", str(Path(scratch) / "reply.wav"), "--jsonl", "--no-log",
                 *args.talk_arg],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                print(f"{path.name}: exit {done.returncode}: {done.stderr.strip()}")
                continue
            file_turns = []
            for line in done.stdout.splitlines():
                event = json.loads(line)
                if event["event"] == "turn":
                    file_turns.append(event)
                    v2v = event["latency_ms"]["voice_to_voice"]
                    print(f"{path.name}: voice_to_voice {v2v} ms", flush=True)
                elif event["event"] == "interrupted":
                    talked_over.append(event["talked_over_ms"])
                    print(
                        f"{path.name}: reply interrupted by the speaker going on; it went on "
                        f"{event['talked_over_ms']:.0f} ms over their voice",
                        flush=True,
                    )
            turns += file_turns
            if file_turns:
                last_turns.append(file_turns[-1])
    print(f"\n{len(turns)} turns from {len(files)} files; {len(talked_over)} replies interrupted")
    if talked_over:
        print(
            f"interrupted replies went on over the speaker's voice: median "
            f"{statistics.median(talked_over):.0f} ms, max {max(talked_over):.0f} ms"
        )
    print(f"{'stage':18} {'p50 ms':>8} {'p95 ms':>8}")
    for key in KEYS:
        values = [t["latency_ms"][key] for t in turns if t["latency_ms"].get(key) is not None]
        if values:
            print(f"{key:18} {percentile(values, 50):8.0f} {percentile(values, 95):8.0f}")
    ends = [t["latency_ms"]["voice_to_voice"] for t in last_turns]
    ends = [v for v in ends if v is not None]
    if ends:
        print(
            f"voice_to_voice at each recording's end ({len(ends)}): "
            f"p50 {percentile(ends, 50):.0f}, p95 {percentile(ends, 95):.0f}"
        )
    early = sum(t.get("reply_started_early", False) for t in turns)
    print(f"replies started before the end of turn was confirmed: {early}/{len(turns)}")


if __name__ == "__main__":
    main()
