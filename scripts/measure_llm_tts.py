"""Measure the language model and the voice on this machine, and print a small table.

    .venv/bin/python scripts/measure_llm_tts.py [--threads 2] [--turns 20] [--repeats 5]

LLM: load time, first-token latency (cold = first reply after a plain load; warm = after
``warm_up``; turn 2 and turn N of a growing conversation), tokens/s. Piper: load time, time to
first audio for a short clause and for a sentence, real-time factor. Timings on a shared machine
are noisy: compare numbers from one run, and look at the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path

from voiceagent.backends.llama_cpp import LlamaLlm
from voiceagent.backends.piper import PiperTts
from voiceagent.config import load_settings
from voiceagent.interfaces import ChatMessage, ReplyLimits, Role
from voiceagent.models.catalog import ModelKind
from voiceagent.models.store import resolve_model

QUESTIONS = [
    "What is the capital of France?",
    "And of Germany?",
    "Tell me a fun fact about cats.",
    "What is two plus two?",
    "Who wrote Hamlet?",
]
CLAUSE = "Sure, here is the answer."
SENTENCE = "The capital of France is Paris, a city famous for its museums and cafes."
RTF_TEXTS = [
    "Hello there, how can I help you today?",
    "The weather tomorrow will be sunny with a light breeze in the afternoon.",
    "Two plus two is four.",
]

Row = tuple[str, str, str]


def _never() -> bool:
    return False


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms (min {min(values) * 1000:.0f})"


def measure_llm(path: Path, threads: int, turns: int, repeats: int, system: str) -> list[Row]:
    rows: list[Row] = []
    tag = f"llm t={threads}"
    started = time.perf_counter()
    llm = LlamaLlm.load(path, threads=threads)
    rows.append((tag, "load", _ms(time.perf_counter() - started)))
    first = [ChatMessage(Role.SYSTEM, system), ChatMessage(Role.USER, QUESTIONS[0])]
    limits = ReplyLimits(max_tokens=48)
    list(llm.stream_reply(first, limits, _never))
    cold = llm.last_reply
    rows.append((tag, "first token, cold (no warm-up)", _ms(cold.first_token_s or 0.0)))

    warm: list[float] = []
    for _ in range(repeats):
        llm.clear_cache()
        llm.warm_up(system)
        list(llm.stream_reply(first, limits, _never))
        warm.append(llm.last_reply.first_token_s or 0.0)
    rows.append((tag, "first token, turn 1 after warm_up", _median_ms(warm)))

    per_turn: dict[int, list[float]] = {}
    evaluated: dict[int, int] = {}
    prompt: dict[int, int] = {}
    speeds: list[float] = []
    for _ in range(repeats):
        llm.clear_cache()
        llm.warm_up(system)
        messages = [ChatMessage(Role.SYSTEM, system)]
        for turn in range(1, turns + 1):
            messages.append(ChatMessage(Role.USER, QUESTIONS[(turn - 1) % len(QUESTIONS)]))
            reply = "".join(llm.stream_reply(messages, limits, _never))
            messages.append(ChatMessage(Role.ASSISTANT, reply))
            stats = llm.last_reply
            per_turn.setdefault(turn, []).append(stats.first_token_s or 0.0)
            evaluated[turn] = stats.evaluated_prompt_tokens
            prompt[turn] = stats.prompt_tokens
            if stats.generated_tokens >= 4:
                speeds.append(stats.tokens_per_s)
    for turn in (2, turns):
        rows.append(
            (
                tag,
                f"first token, turn {turn} ({evaluated[turn]} of {prompt[turn]} prompt "
                "tokens evaluated)",
                _median_ms(per_turn[turn]),
            )
        )
    rows.append((tag, "tokens/s (generation)", f"{statistics.median(speeds):.0f}"))
    llm.close()
    return rows


def _time_to_first_audio(tts: PiperTts, text: str) -> tuple[float, float, float]:
    """(seconds to the first chunk, seconds in total, seconds of audio)."""
    started = time.perf_counter()
    first: float | None = None
    samples = 0
    for chunk in tts.synthesize(text):
        if first is None:
            first = time.perf_counter() - started
        samples += chunk.size
    total = time.perf_counter() - started
    return first or total, total, samples / tts.sample_rate_hz


def measure_tts(path: Path, threads: int, repeats: int) -> list[Row]:
    rows: list[Row] = []
    tag = f"piper t={threads}"
    started = time.perf_counter()
    tts = PiperTts.load(path, threads=threads, warm_up=False)
    rows.append((tag, "load", _ms(time.perf_counter() - started)))
    cold, _, _ = _time_to_first_audio(tts, CLAUSE)
    rows.append((tag, "first audio, cold (no warm-up), clause", _ms(cold)))

    def timer(text: str) -> list[float]:
        return [_time_to_first_audio(tts, text)[0] for _ in range(repeats)]

    words = len(CLAUSE.split())
    rows.append((tag, f"first audio, clause ({words} words)", _median_ms(timer(CLAUSE))))
    words = len(SENTENCE.split())
    rows.append((tag, f"first audio, sentence ({words} words)", _median_ms(timer(SENTENCE))))
    compute = audio = 0.0
    for _ in range(repeats):
        for text in RTF_TEXTS:
            _, total, seconds = _time_to_first_audio(tts, text)
            compute += total
            audio += seconds
    rows.append((tag, "real-time factor (compute s / audio s)", f"{compute / audio:.3f}"))
    tts.close()
    return rows


def measure_llm_while_speaking(
    llm_path: Path, voice_path: Path, threads: int, tts_threads: int, repeats: int, system: str
) -> list[Row]:
    """The LLM while Piper synthesizes on another thread, as when sentence 1 is being voiced
    while sentence 2 is generated: llama.cpp's threads spin-wait on each other, so a busy core
    can hurt it far more than its share."""
    tag = f"llm t={threads} +piper t={tts_threads}"
    llm = LlamaLlm.load(llm_path, threads=threads, system_prompt=system)
    tts = PiperTts.load(voice_path, threads=tts_threads)
    stop = threading.Event()

    def keep_speaking() -> None:
        while not stop.is_set():
            for _ in tts.synthesize(SENTENCE):
                pass

    speaker = threading.Thread(target=keep_speaking, daemon=True)
    speaker.start()
    first: list[float] = []
    speeds: list[float] = []
    try:
        messages = [ChatMessage(Role.SYSTEM, system)]
        for turn in range(max(repeats, 3)):
            messages.append(ChatMessage(Role.USER, QUESTIONS[turn % len(QUESTIONS)]))
            reply = "".join(llm.stream_reply(messages, ReplyLimits(max_tokens=48), _never))
            messages.append(ChatMessage(Role.ASSISTANT, reply))
            first.append(llm.last_reply.first_token_s or 0.0)
            if llm.last_reply.generated_tokens >= 4:
                speeds.append(llm.last_reply.tokens_per_s)
    finally:
        stop.set()
        speaker.join()
        llm.close()
        tts.close()
    return [
        (tag, "first token while speaking", _median_ms(first)),
        (tag, "tokens/s while speaking", f"{statistics.median(speeds):.0f}" if speeds else "-"),
    ]


def print_table(rows: list[Row]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    header = ("model", "metric", "value")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    print(line(header))
    print(line(tuple("-" * w for w in widths)))
    for row in rows:
        print(line(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llm", default="smollm2-135m-instruct")
    parser.add_argument("--voice", default="piper-en_US-joe-medium")
    parser.add_argument("--threads", default="2", help="comma-separated LLM thread counts")
    parser.add_argument("--tts-threads", default="1", help="comma-separated Piper thread counts")
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    settings = load_settings()
    llm_path = resolve_model(args.llm, ModelKind.LLM)
    voice_path = resolve_model(args.voice, ModelKind.TTS)
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}")
    rows: list[Row] = []
    for threads in (int(t) for t in args.threads.split(",")):
        rows += measure_llm(llm_path, threads, args.turns, args.repeats, settings.system_prompt)
    for threads in (int(t) for t in args.tts_threads.split(",")):
        rows += measure_tts(voice_path, threads, args.repeats)
    for threads in (int(t) for t in args.threads.split(",")):
        rows += measure_llm_while_speaking(
            llm_path,
            voice_path,
            threads,
            int(args.tts_threads.split(",")[0]),
            args.repeats,
            settings.system_prompt,
        )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print_table(rows)


if __name__ == "__main__":
    main()
