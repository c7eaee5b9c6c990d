"""``voiceagent bench``: every configuration of a model matrix over the same recordings.

Order is utterance-major: for each recording, every configuration in turn (and the baseline),
so a machine that slows down part-way (other work, thermal throttling) slows all alike. Each
model is loaded once per process; each recording gets a fresh session (empty history). One
throwaway utterance per configuration runs first, so no measurement pays for a cold cache.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from voiceagent.audio.formats import PIPELINE_RATE_HZ
from voiceagent.bench.corpus import Corpus, CorpusKind, Utterance, load_corpora
from voiceagent.bench.machine import (
    RssSampler,
    current_rss_mb,
    describe_machine,
    process_peak_rss_mb,
)
from voiceagent.bench.pool import ModelChoice, ModelPool
from voiceagent.bench.results import BenchReport, Mode, RunConfig, RunReport
from voiceagent.bench.runner import (
    SpeechSpan,
    UtteranceResult,
    find_speech,
    run_utterance,
    session_options,
)
from voiceagent.config import Settings
from voiceagent.errors import UsageError
from voiceagent.models.catalog import ModelKind

UTTERANCE_TIMEOUT_S = 120.0
"""A recording's session is given twice its length plus this before it counts as hung."""

if TYPE_CHECKING:
    from voiceagent.bench.baseline import BaselinePipeline

Progress = Callable[[int, int, str], None]
"""Called with (steps done, steps in all, what runs next)."""


@dataclass(frozen=True)
class BenchOptions:
    corpora: list[Path] = field(default_factory=list)
    stt: list[str] = field(default_factory=list)  # empty: the setting's model
    llm: list[str] = field(default_factory=list)
    voice: list[str] = field(default_factory=list)
    baseline: bool = False
    no_speculation: bool = False
    limit: int | None = None
    fast: bool = False


def split_ids(value: str | None, flag: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]`` (no duplicates); None -> ``[]``."""
    if value is None:
        return []
    ids = list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    if not ids:
        raise UsageError(f"{flag} needs at least one model id or path, e.g. {flag} a,b.")
    return ids


def configurations(settings: Settings, options: BenchOptions) -> list[ModelChoice]:
    """Every combination of the requested models, in flag order."""
    stt = options.stt or [settings.stt_model]
    llm = options.llm or [settings.llm_model]
    voice = options.voice or [settings.voice]
    return [ModelChoice(s, m, v) for s, m, v in itertools.product(stt, llm, voice)]


def describe_command(options: BenchOptions) -> str:
    parts = ["voiceagent", "bench", *(str(p) for p in options.corpora)]
    for flag, ids in (("--stt", options.stt), ("--llm", options.llm), ("--voice", options.voice)):
        if ids:
            parts += [flag, ",".join(ids)]
    if options.baseline:
        parts.append("--baseline")
    if options.no_speculation:
        parts.append("--no-speculation")
    if options.limit is not None:
        parts += ["--limit", str(options.limit)]
    if options.fast:
        parts.append("--fast")
    return " ".join(parts)


def _end_of_turn(settings: Settings, reply: bool) -> dict[str, float]:
    config = session_options(settings, realtime=reply, reply=reply).endpointing
    return {"silence_ms": config.silence_ms, "max_silence_ms": config.max_silence_ms}


def run_benchmark(
    settings: Settings, options: BenchOptions, progress: Progress | None = None
) -> BenchReport:
    """Run the benchmark and return its report (nothing is printed here)."""
    from voiceagent.audio.files import probe_audio, read_audio

    report_progress = progress or (lambda done, total, what: None)
    corpora = load_corpora(options.corpora, options.limit)
    utterances = [u for corpus in corpora for u in corpus.utterances]
    for utterance in utterances:
        probe_audio(utterance.path)  # an unreadable file fails now, not an hour in
    reply = not options.fast
    choices = configurations(settings, options)
    runs = [
        RunReport(RunConfig(c.stt, c.llm, c.voice, Mode.STREAMING), latency_measured=reply)
        for c in choices
    ]
    choice_of = {run.config.key: choice for run, choice in zip(runs, choices, strict=True)}
    if options.no_speculation and reply:  # the first configuration again, interleaved
        first = choices[0]
        unspeculative = RunReport(RunConfig(first.stt, first.llm, first.voice, Mode.NO_SPECULATION))
        runs.append(unspeculative)
        choice_of[unspeculative.config.key] = first
    machine = describe_machine(settings.threads)  # before the run: the load average is of now
    pool = ModelPool(settings)
    pool.resolve(choices, reply)  # every model present and intact before anything loads
    baseline: BaselinePipeline | None = None
    total = 1 + len(utterances) * (len(runs) + int(options.baseline))
    try:
        report_progress(0, total, "loading models")
        pool.load(
            choices, reply, on_loading=lambda k, ref: report_progress(0, total, f"loading {ref}")
        )
        for run in runs:
            run.models_rss_mb = pool.models_rss_mb(choice_of[run.config.key], reply)
        if options.baseline:
            baseline, baseline_run = _load_baseline(pool, choices[0], settings, reply)
            runs.append(baseline_run)
        vad, vad_worker = pool.vad()

        def prepare(utterance: Utterance) -> tuple[np.ndarray, SpeechSpan | None]:
            samples = read_audio(utterance.path).samples
            return samples, vad_worker.submit(lambda: find_speech(vad, samples)).result()

        report_progress(0, total, "warming up")
        # Warm up on speech, so the LLM and the voice run too.
        first = next((u for u in utterances if u.expects_speech), utterances[0])
        samples, speech = prepare(first)
        for choice in choices:  # throwaway: caches, allocators and branch predictors warm up
            _run_streaming(
                pool, choice, first, samples, speech, settings, realtime=False, reply=reply
            )
        if baseline is not None:
            baseline.run(first, samples, speech)
        done = 1
        with RssSampler() as sampler:
            for utterance in utterances:
                samples, speech = prepare(utterance)
                for run in runs:
                    report_progress(done, total, f"{utterance.name} · {_label(run.config)}")
                    with sampler.phase(run.config.key) as phase:
                        if run.config.mode is Mode.BASELINE:
                            assert baseline is not None
                            result = baseline.run(utterance, samples, speech)
                        else:
                            choice = choice_of[run.config.key]
                            result = _run_streaming(
                                pool, choice, utterance, samples, speech, settings,
                                realtime=reply, reply=reply,
                                speculate=run.config.mode is not Mode.NO_SPECULATION,
                            )  # fmt: skip
                    result.cpu_s, result.wall_s = phase.cpu_s, phase.wall_s
                    run.add(result)
                    done += 1
            for run in runs:
                run.peak_rss_mb = sampler.peaks_mb.get(run.config.key, 0.0)
        report_progress(done, total, "done")
    finally:
        if baseline is not None:
            baseline.close()
        pool.close()
    return BenchReport(
        command=describe_command(options),
        machine=machine,
        corpora=[_describe_corpus(c) for c in corpora],
        runs=runs,
        fast=options.fast,
        process_peak_rss_mb=process_peak_rss_mb(),
        end_of_turn=_end_of_turn(settings, reply),
    )


def _run_streaming(
    pool: ModelPool,
    choice: ModelChoice,
    utterance: Utterance,
    samples: np.ndarray,
    speech: SpeechSpan | None,
    settings: Settings,
    realtime: bool,
    reply: bool,
    speculate: bool = True,
) -> UtteranceResult:
    session_models = pool.models_for(choice, reply)
    audio_s = len(samples) / PIPELINE_RATE_HZ
    limit_s = 2 * audio_s + UTTERANCE_TIMEOUT_S
    try:
        return asyncio.run(
            asyncio.wait_for(
                run_utterance(
                    session_models, utterance, audio_s, speech, settings,
                    realtime=realtime, reply=reply, speculate=speculate,
                ),
                limit_s,
            )
        )  # fmt: skip
    except TimeoutError:
        # A session that never finishes is a defect to report, not a benchmark that hangs.
        failed = UtteranceResult(
            utterance.corpus, utterance.name, audio_s, utterance.reference,
            None if speech is None else speech.end_s,
        )  # fmt: skip
        failed.error = f"the session did not finish within {limit_s:.0f} s"
        return failed


def _load_baseline(
    pool: ModelPool, choice: ModelChoice, settings: Settings, reply: bool
) -> tuple[BaselinePipeline, RunReport]:
    from voiceagent.bench.baseline import BaselinePaths, BaselinePipeline

    paths = BaselinePaths(
        stt=pool.path(ModelKind.STT, choice.stt),
        llm=pool.path(ModelKind.LLM, choice.llm) if reply else Path(),
        voice=pool.path(ModelKind.TTS, choice.voice) if reply else Path(),
    )
    before_mb = current_rss_mb()
    pipeline = BaselinePipeline.load(paths, settings, reply=reply)
    config = RunConfig(choice.stt, choice.llm, choice.voice, Mode.BASELINE)
    run = RunReport(config, latency_measured=reply)
    run.models_rss_mb = max(0.0, current_rss_mb() - before_mb)
    return pipeline, run


def _label(config: RunConfig) -> str:
    return f"{config.mode} {config.stt} + {config.llm} + {config.voice}"


def _describe_corpus(corpus: Corpus) -> dict[str, object]:
    kind = corpus.kind
    return {
        "name": corpus.name,
        "path": str(corpus.path),
        "kind": str(kind),
        "utterances": len(corpus.utterances),
        "noise_utterances": sum(1 for u in corpus.utterances if not u.expects_speech)
        if kind is not CorpusKind.SPEECH
        else 0,
    }
