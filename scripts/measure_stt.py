"""Measure speech-to-text accuracy and latency: faster-whisper's transcribe() vs WhisperStt.

For each thread count, every configuration transcribes every clip of the corpus, interleaved
clip by clip (the order rotates), so load from other processes on a shared machine hits all
configurations alike. Prints WER (both sides through Whisper's English normaliser), median and
p95 stt_ms, and how often WhisperStt fell back to the full 30 s window.

    .venv/bin/python scripts/measure_stt.py                       # defaults, threads 1 and 2
    .venv/bin/python scripts/measure_stt.py --sweep --rounds 3    # also the design variants
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import jiwer
import numpy as np
from whisper_normalizer.english import EnglishTextNormalizer

from voiceagent.audio.files import read_audio
from voiceagent.backends.faster_whisper import (
    DEFAULT_WHISPER_OPTIONS,
    FallbackReason,
    WhisperStt,
)
from voiceagent.backends.silero import SileroVad
from voiceagent.models.catalog import ModelKind
from voiceagent.models.store import resolve_model
from voiceagent.transcribe import transcribe_audio

SHARED_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "audio"
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}
SHORT_S = 10.0
TRANSCRIBE = "voiceagent transcribe (long: chunks)"
LONG_CONFIGS = {"faster-whisper default (30 s, beam 5)", "WhisperStt", TRANSCRIBE}


@dataclass(frozen=True)
class Clip:
    name: str
    samples: np.ndarray
    reference: str

    @property
    def audio_s(self) -> float:
        return len(self.samples) / 16000


@dataclass(frozen=True)
class Outcome:
    text: str
    stt_ms: float
    fallback: FallbackReason | None = None


@dataclass
class Tally:
    """Everything one configuration produced, clip by clip."""

    config: str
    threads: int
    texts: dict[str, str] = field(default_factory=dict)
    stt_ms: dict[str, list[float]] = field(default_factory=dict)
    fallbacks: dict[str, FallbackReason | None] = field(default_factory=dict)


Runner = Callable[[np.ndarray], Outcome]


def load_clips(folder: Path, min_s: float = 0.0, max_s: float = float("inf")) -> list[Clip]:
    clips = []
    for path in sorted(folder.iterdir()):
        reference = path.with_suffix(".txt")
        if path.suffix not in AUDIO_SUFFIXES or not reference.is_file():
            continue
        samples = read_audio(path).samples
        if min_s <= len(samples) / 16000 <= max_s:
            clips.append(Clip(path.stem, samples, reference.read_text().strip()))
    return clips


def joined_clips(clips: list[Clip], min_s: float = 32.0, gap_s: float = 0.5) -> list[Clip]:
    """The clips, in order, joined into recordings of over ``min_s`` (``gap_s`` of silence
    after each): long audio with a reference, for the decode of more than one window."""
    gap = np.zeros(int(gap_s * 16000), dtype=np.float32)
    joined: list[Clip] = []
    group: list[Clip] = []
    for clip in clips:
        group.append(clip)
        if sum(c.audio_s + gap_s for c in group) > min_s:
            samples = np.concatenate([x for c in group for x in (c.samples, gap)])
            reference = " ".join(c.reference for c in group)
            joined.append(Clip("+".join(c.name for c in group), samples, reference))
            group = []
    return joined


def faster_whisper_runner(model: object, **kwargs: object) -> Runner:
    def run(audio: np.ndarray) -> Outcome:
        started = time.perf_counter()
        segments, _ = model.transcribe(audio, language="en", **kwargs)  # type: ignore[attr-defined]
        text = " ".join(s.text.strip() for s in segments)
        return Outcome(text.strip(), (time.perf_counter() - started) * 1000.0)

    return run


def whisper_stt_runner(stt: WhisperStt) -> Runner:
    def run(audio: np.ndarray) -> Outcome:
        stt.forget_drafts()  # each configuration hears the clip as new
        result = stt.transcribe_detailed(audio)
        return Outcome(result.transcript.text, result.transcript.stt_ms, result.fallback)

    return run


def transcribe_runner(stt: WhisperStt, vad: SileroVad) -> Runner:
    """What `voiceagent transcribe` does: with its guards, and over 30 s in chunks cut at
    pauses (a dropped text counts as empty)."""

    def run(audio: np.ndarray) -> Outcome:
        stt.forget_drafts()  # each configuration hears the clip as new
        text, stt_ms, _dropped = transcribe_audio(audio, stt, vad)
        return Outcome(text, stt_ms)

    return run


def build_runners(model_path: Path, threads: int, sweep: bool) -> dict[str, Runner]:
    from faster_whisper import WhisperModel

    baseline = WhisperModel(
        str(model_path), device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1
    )
    stt = WhisperStt.load(model_path, threads=threads)
    vad = SileroVad.load(resolve_model("silero-vad", ModelKind.VAD))
    runners = {
        "faster-whisper default (30 s, beam 5)": faster_whisper_runner(baseline),
        "faster-whisper greedy (30 s, beam 1)": faster_whisper_runner(
            baseline, beam_size=1, without_timestamps=True
        ),
        "WhisperStt": whisper_stt_runner(stt),
        TRANSCRIBE: transcribe_runner(stt, vad),
    }
    if sweep:
        variants = {
            "WhisperStt min_window 0 s": replace(DEFAULT_WHISPER_OPTIONS, min_window_s=0.0),
            "WhisperStt min_window 5 s": replace(DEFAULT_WHISPER_OPTIONS, min_window_s=5.0),
            "WhisperStt min_window 8 s": replace(DEFAULT_WHISPER_OPTIONS, min_window_s=8.0),
            "WhisperStt beam 3": replace(DEFAULT_WHISPER_OPTIONS, beam_size=3),
            "WhisperStt beam 5": replace(DEFAULT_WHISPER_OPTIONS, beam_size=5),
        }
        for name, options in variants.items():
            runners[name] = whisper_stt_runner(stt.with_options(options))
    return runners


def measure(
    clips: list[Clip], runners_by_threads: dict[int, dict[str, Runner]], rounds: int
) -> list[Tally]:
    tallies = {
        (threads, name): Tally(name, threads)
        for threads, runners in runners_by_threads.items()
        for name in runners
    }
    jobs = [
        (threads, name, runner)
        for threads, runners in runners_by_threads.items()
        for name, runner in runners.items()
    ]
    for round_index in range(rounds):
        for clip_index, clip in enumerate(clips):
            shift = (clip_index + round_index) % len(jobs)
            for threads, name, runner in jobs[shift:] + jobs[:shift]:
                outcome = runner(clip.samples)
                tally = tallies[(threads, name)]
                tally.texts[clip.name] = outcome.text
                tally.stt_ms.setdefault(clip.name, []).append(outcome.stt_ms)
                tally.fallbacks[clip.name] = outcome.fallback
            print(f"  round {round_index + 1}/{rounds}: {clip.name}", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    return list(tallies.values())


def summarise(tally: Tally, clips: list[Clip], normalise: Callable[[str], str]) -> dict:
    references = [normalise(c.reference) for c in clips]
    hypotheses = [normalise(tally.texts[c.name]) for c in clips]
    per_clip_ms = {name: statistics.median(values) for name, values in tally.stt_ms.items()}
    all_ms = [per_clip_ms[c.name] for c in clips]
    short_ms = [per_clip_ms[c.name] for c in clips if c.audio_s < SHORT_S]
    reasons = Counter(str(tally.fallbacks[c.name]) for c in clips if tally.fallbacks[c.name])
    is_ours = tally.config.startswith("WhisperStt")
    return {
        "config": tally.config,
        "threads": tally.threads,
        "clips": len(clips),
        "wer_percent": round(100 * jiwer.wer(references, hypotheses), 2),
        "stt_ms_p50": round(float(np.median(all_ms)), 1),
        "stt_ms_p95": round(float(np.percentile(all_ms, 95)), 1),
        "short_stt_ms_p50": round(float(np.median(short_ms)), 1) if short_ms else None,
        "short_stt_ms_p95": round(float(np.percentile(short_ms, 95)), 1) if short_ms else None,
        "fallback_percent": (
            round(100 * sum(reasons.values()) / len(clips), 1) if is_ours else None
        ),
        "fallback_reasons": dict(reasons),
    }


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    header = (
        f"{'configuration':40} {'thr':>3} {'WER %':>6} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'<10s p50':>8} {'<10s p95':>8} {'fallback':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        fallback = "-" if row["fallback_percent"] is None else f"{row['fallback_percent']:.0f}%"
        short_p50 = "-" if row["short_stt_ms_p50"] is None else f"{row['short_stt_ms_p50']:.0f}"
        short_p95 = "-" if row["short_stt_ms_p95"] is None else f"{row['short_stt_ms_p95']:.0f}"
        print(
            f"{row['config']:40} {row['threads']:>3} {row['wer_percent']:>6.2f} "
            f"{row['stt_ms_p50']:>7.0f} {row['stt_ms_p95']:>7.0f} {short_p50:>8} "
            f"{short_p95:>8} {fallback:>8}"
        )
        if row["fallback_reasons"]:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(row["fallback_reasons"].items()))
            print(f"{'':44}fallback reasons: {reasons}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="whisper-tiny.en", help="model id or folder")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--rounds", type=int, default=1, help="timing rounds (median per clip)")
    parser.add_argument("--corpus", type=Path, default=SHARED_AUDIO / "speech")
    parser.add_argument(
        "--long-corpus",
        type=Path,
        default=SHARED_AUDIO / "turns",
        help="clips over 30 s with references (reported apart, with the corpus's clips "
        "joined into recordings of over 32 s); 'none' to skip",
    )
    parser.add_argument("--sweep", action="store_true", help="also measure design variants")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    model_path = resolve_model(args.model, ModelKind.STT)
    thread_counts = [int(t) for t in args.threads.split(",")]
    normalise = EnglishTextNormalizer()
    clips = load_clips(args.corpus)
    long_clips = (
        load_clips(args.long_corpus, min_s=30.0) + joined_clips(clips)
        if str(args.long_corpus) != "none" and args.long_corpus.is_dir()
        else []
    )
    print(
        f"model {model_path}; {len(clips)} clips ({sum(c.audio_s for c in clips):.0f} s, "
        f"{sum(c.audio_s < SHORT_S for c in clips)} under {SHORT_S:.0f} s); "
        f"{len(long_clips)} long clips; threads {thread_counts}; rounds {args.rounds}",
        file=sys.stderr,
    )
    runners = {t: build_runners(model_path, t, args.sweep) for t in thread_counts}

    rows = [summarise(t, clips, normalise) for t in measure(clips, runners, args.rounds)]
    rows.sort(key=lambda r: (r["config"], r["threads"]))
    print_table(f"{args.corpus} ({len(clips)} clips)", rows)
    long_rows: list[dict] = []
    if long_clips:
        main_configs = {
            t: {k: v for k, v in r.items() if k in LONG_CONFIGS} for t, r in runners.items()
        }
        long_tallies = measure(long_clips, main_configs, 1)
        long_rows = [summarise(t, long_clips, normalise) for t in long_tallies]
        long_rows.sort(key=lambda r: (r["config"], r["threads"]))
        names = ", ".join(c.name.split("+")[0] + "+..." * ("+" in c.name) for c in long_clips)
        print_table(f"long clips over 30 s ({names})", long_rows)
    if args.json:
        args.json.write_text(json.dumps({"speech": rows, "long": long_rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
