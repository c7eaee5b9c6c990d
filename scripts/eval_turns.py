"""Measure end-of-utterance decisions on ../shared/audio/turns with the real VAD and STT.

Runs the listening half of the session (no reply) at real-time pace, so the speculative
transcript is ready exactly when it would be live, and reports:
- turns ended inside a hesitation, and turns never ended (must be 0);
- turns ended inside any other pause of a turn (between its sentences), with the pause's length;
- the end-of-utterance delay (decision minus the moment the voice stopped), in audio time;
- with --natural, the unannotated recordings of natural and read speech with pauses: every end
  that waited the longest wait (the speaker seemed to stop mid-phrase), and whether the speaker
  went on within a second of it (a reply would have talked over them).

Usage: .venv/bin/python scripts/eval_turns.py [--eou-silence-ms 600] [--max-silence-ms 1500]
       [--duplex half|full] [--natural] [--fast]
(--duplex full: the longest wait where the user can cut in, 750 ms unless --max-silence-ms.)
(VOICEAGENT_TURN_MODEL=none for the silence policy alone; Smart Turn is used when pulled.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from pathlib import Path

from voiceagent.audio.clock import MonotonicClock
from voiceagent.audio.sources import FileSource
from voiceagent.config import load_settings
from voiceagent.events import CollectedEvents, Dropped, SpeechEnd, SpeechStart
from voiceagent.pipeline import load_models
from voiceagent.session import PARTIAL_EVERY_S, SessionOptions, VoiceSession
from voiceagent.turns.endpointing import EndpointingConfig

TURNS = Path(__file__).resolve().parents[1].parent / "shared" / "audio" / "turns"


NATURAL = (
    "silero_lecture.wav",
    "asr-reference.wav",
    "OSR_us_000_0034_8k.wav",
    "sentencesWithSilences.wav",
)


def run(path: Path, models, endpointing: EndpointingConfig, realtime: bool) -> CollectedEvents:  # noqa: ANN001
    events = CollectedEvents()
    clock = MonotonicClock()
    source = FileSource.open(
        path, realtime=realtime, clock=clock, trailing_silence_ms=endpointing.file_tail_ms
    )
    options = SessionOptions(
        reply=False, realtime=realtime, endpointing=endpointing,
        partial_every_s=PARTIAL_EVERY_S if realtime else None,  # as `talk --no-reply`
    )  # fmt: skip
    asyncio.run(VoiceSession(models, source, None, events, clock, options).run())
    return events


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--eou-silence-ms", type=int, default=None)
    parser.add_argument("--max-silence-ms", type=int, default=None)
    parser.add_argument("--duplex", choices=("half", "full"), default="half")
    parser.add_argument("--natural", action="store_true")
    parser.add_argument("--fast", action="store_true")
    args = parser.parse_args()
    settings = load_settings().with_overrides(
        eou_silence_ms=args.eou_silence_ms, eou_max_silence_ms=args.max_silence_ms
    )
    # as `talk --duplex --eou-silence-ms --eou-max-silence-ms` from a microphone
    endpointing = settings.endpointing(takes_back_early_answers=args.duplex == "full")
    models = load_models(settings, reply=False, partials=not args.fast)  # as `talk --no-reply`
    try:
        spec = json.loads((TURNS / "hesitations.json").read_text())
        events = run(TURNS / "hesitations.wav", models, endpointing, not args.fast)
        ends = events.of(SpeechEnd)
        drops = events.of(Dropped)
        inside = []
        delays = []
        missed = []
        for turn in spec["turns"]:
            for start, stop in turn["pauses_s"]:
                inside += [e for e in ends if start - 0.05 <= e.decided_audio_s <= stop + 0.05]
            matched = [e for e in ends if abs(e.audio_s - turn["end_s"]) <= 0.4]
            if matched:
                delays.append((matched[0].decided_audio_s - matched[0].audio_s) * 1000)
            else:
                missed.append(turn["end_s"])
        hesitations = sum(len(t["pauses_s"]) for t in spec["turns"])
        print(f"hesitations.wav: {len(spec['turns'])} turns, {hesitations} hesitations")
        print(f"  speech_end events: {len(ends)}, dropped: {[d.reason for d in drops]}")
        print(f"  turns ended inside a hesitation: {len(inside)}")
        for end in inside:
            print(f"    voice stopped at {end.audio_s:.2f} s, ended after {end.eou_ms:.0f} ms")
        print(f"  turns not ended at their end: {len(missed)} {missed}")
        # Every other end: a turn cut inside a pause the annotation does not call a hesitation
        # (between two sentences of one turn). How long the pause really was decides whether
        # the silence setting allowed it.
        turn_ends = [t["end_s"] for t in spec["turns"]]
        starts = [e.audio_s for e in events.of(SpeechStart)]
        others = [
            e for e in ends
            if e not in inside and all(abs(e.audio_s - end) > 0.4 for end in turn_ends)
        ]  # fmt: skip
        print(f"  turns ended inside any other pause of a turn: {len(others)}")
        for end in others:
            later = [s for s in starts if s > end.audio_s]
            pause = f"{(later[0] - end.audio_s) * 1000:.0f} ms" if later else "?"
            print(f"    voice stopped at {end.audio_s:.2f} s, ended after {end.eou_ms:.0f} ms "
                  f"of a {pause} pause")  # fmt: skip
        if delays:
            print(
                f"  eou delay (audio time) median {statistics.median(delays):.0f} ms, "
                f"max {max(delays):.0f} ms over {len(delays)} turns "
                f"({', '.join(f'{d:.0f}' for d in delays)})"
            )
        online = [e.eou_ms for e in ends]
        if online and not args.fast:
            print(f"  eou wall-clock median {statistics.median(online):.0f} ms")
        if args.natural:
            report_natural(models, endpointing, not args.fast)
    finally:
        models.close()


def report_natural(models, endpointing: EndpointingConfig, realtime: bool) -> None:  # noqa: ANN001
    longest = endpointing.max_silence_ms
    waited = went_on = 0
    for name in NATURAL:
        events = run(TURNS / name, models, endpointing, realtime)
        ends = events.of(SpeechEnd)
        starts = [e.audio_s for e in events.of(SpeechStart)]
        print(f"{name}: {len(ends)} turn ends")
        for end in ends:
            if (end.decided_audio_s - end.audio_s) * 1000 < longest - 1:
                continue
            waited += 1
            later = [s for s in starts if s > end.audio_s]
            pause = later[0] - end.audio_s if later else None
            if pause is not None and pause - (end.decided_audio_s - end.audio_s) < 1.0:
                went_on += 1
            shown = f"{pause * 1000:.0f} ms" if pause is not None else "the end"
            print(f"  voice stopped at {end.audio_s:.2f} s, ended after the longest wait; "
                  f"the voice came back after {shown}")  # fmt: skip
    print(
        f"natural recordings: {waited} ends after the longest wait ({longest:.0f} ms), "
        f"{went_on} with the speaker going on within 1 s of the decision"
    )


if __name__ == "__main__":
    main()
