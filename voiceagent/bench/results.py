"""One benchmark run per configuration, summarised into the contract's JSON fields."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from voiceagent.bench import metrics
from voiceagent.bench.runner import LATENCY_KEYS, UtteranceResult

SCHEMA_VERSION = 1


class Mode(StrEnum):
    STREAMING = "streaming"  # our VoiceSession, as `talk` runs it
    BASELINE = "baseline"  # the sequential README pipeline
    # Our VoiceSession with nothing started before the end of the turn is decided
    NO_SPECULATION = "no-speculation"


@dataclass(frozen=True)
class RunConfig:
    stt: str
    llm: str
    voice: str
    mode: Mode

    def to_json(self) -> dict[str, str]:
        return {"stt": self.stt, "llm": self.llm, "voice": self.voice, "mode": str(self.mode)}

    @property
    def key(self) -> str:
        return f"{self.mode}:{self.stt}|{self.llm}|{self.voice}"


@dataclass
class RunReport:
    """Every utterance of one configuration, plus what the process used while it ran them."""

    config: RunConfig
    latency_measured: bool = True
    utterances: list[UtteranceResult] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    models_rss_mb: float = 0.0
    cpu_s: float = 0.0
    wall_s: float = 0.0

    def add(self, result: UtteranceResult) -> None:
        self.utterances.append(result)
        self.cpu_s += result.cpu_s
        self.wall_s += result.wall_s

    # --- metrics ----------------------------------------------------------------------------

    @property
    def turns(self) -> int:
        return sum(u.turns for u in self.utterances)

    @property
    def wer(self) -> float | None:
        speech = [u for u in self.utterances if u.expects_speech]
        return metrics.word_error_rate(
            [u.reference or "" for u in speech], [u.hypothesis for u in speech]
        )

    @property
    def false_turns(self) -> int:
        return metrics.false_turns(
            [u.turns for u in self.utterances], [u.expects_speech for u in self.utterances]
        )

    @property
    def split_turns(self) -> int:
        return metrics.split_turns(
            [u.turns for u in self.utterances], [u.expects_speech for u in self.utterances]
        )

    @property
    def missed(self) -> int:
        """Speech utterances that got no turn at all."""
        return sum(1 for u in self.utterances if u.expects_speech and u.turns == 0)

    @property
    def talked_over(self) -> int:
        """Utterances whose last reply began before the speech ended (no voice_to_voice)."""
        return sum(1 for u in self.utterances if u.talked_over)

    @property
    def stt_rtf(self) -> float | None:
        return metrics.ratio(
            sum(u.stt_ms for u in self.utterances) / 1000,
            sum(u.stt_audio_s for u in self.utterances),
        )

    @property
    def llm_tokens_per_s(self) -> float | None:
        return metrics.ratio(
            sum(u.llm_tokens for u in self.utterances), sum(u.llm_s for u in self.utterances)
        )

    @property
    def tts_rtf(self) -> float | None:
        return metrics.ratio(
            sum(u.tts_compute_s for u in self.utterances),
            sum(u.tts_audio_s for u in self.utterances),
        )

    def latencies(self, key: str) -> list[float | None]:
        return [u.latency_ms.get(key) for u in self.utterances]

    def spread(self, key: str) -> metrics.Spread:
        if not self.latency_measured:
            return metrics.Spread(None, None, 0)
        return metrics.spread(self.latencies(key))

    def to_json(self) -> dict[str, Any]:
        def rounded(value: float | None, digits: int = 3) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "config": self.config.to_json(),
            "utterance_count": len(self.utterances),
            "turns": self.turns,
            "wer": rounded(self.wer, 4),
            "false_turns": self.false_turns,
            "split_turns": self.split_turns,
            "missed_utterances": self.missed,
            "talked_over": self.talked_over,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "models_rss_mb": round(self.models_rss_mb, 1),
            "cpu_s": round(self.cpu_s, 2),
            "wall_s": round(self.wall_s, 2),
            "stt_rtf": rounded(self.stt_rtf),
            "llm_tokens_per_s": rounded(self.llm_tokens_per_s, 1),
            "tts_rtf": rounded(self.tts_rtf),
            "latency_measured": self.latency_measured,
            "latency_ms": {key: self.spread(key).to_json() for key in LATENCY_KEYS},
            "utterances": [u.to_json() for u in self.utterances],
        }


@dataclass
class BenchReport:
    command: str
    machine: dict[str, Any]
    corpora: list[dict[str, Any]]
    runs: list[RunReport]
    fast: bool = False
    process_peak_rss_mb: float = 0.0
    # The end-of-turn waits every run used (ms): ``silence_ms`` and ``max_silence_ms``. They
    # set the eou and voice_to_voice columns, and settings can change them unseen in the command.
    end_of_turn: dict[str, float] | None = None

    def _streaming_like(self, other: RunReport) -> RunReport | None:
        """The streaming run with ``other``'s models."""
        models = (other.config.stt, other.config.llm, other.config.voice)
        return next(
            (
                r for r in self.runs
                if r.config.mode is Mode.STREAMING
                and (r.config.stt, r.config.llm, r.config.voice) == models
            ),
            None,
        )  # fmt: skip

    def speed_up(self) -> tuple[RunReport, RunReport, float] | None:
        """(ours, baseline, baseline p50 / our p50 voice_to_voice) for the baseline's models."""
        baseline = next((r for r in self.runs if r.config.mode is Mode.BASELINE), None)
        if baseline is None:
            return None
        ours = self._streaming_like(baseline)
        if ours is None:
            return None
        ratio = metrics.speed_up(
            baseline.spread("voice_to_voice").p50, ours.spread("voice_to_voice").p50
        )
        return None if ratio is None else (ours, baseline, ratio)

    def speculation_gain(self) -> tuple[RunReport, RunReport, float, int] | None:
        """What speculation buys: (ours, the run without it, the median over recordings of
        its voice_to_voice minus ours, the recordings both answered). Each recording's last
        turn is compared with the same recording's, so the machine's hour cancels out."""
        unspeculative = next((r for r in self.runs if r.config.mode is Mode.NO_SPECULATION), None)
        if unspeculative is None or not unspeculative.latency_measured:
            return None
        ours = self._streaming_like(unspeculative)
        if ours is None:
            return None
        gains = [
            without - with_
            for with_, without in zip(
                ours.latencies("voice_to_voice"), unspeculative.latencies("voice_to_voice"),
                strict=True,
            )
            if with_ is not None and without is not None
        ]  # fmt: skip
        if not gains:
            return None
        return ours, unspeculative, statistics.median(gains), len(gains)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "command": self.command,
            "machine": self.machine,
            "corpora": self.corpora,
            "fast": self.fast,
            "percentile_method": "nearest-rank",
            "process_peak_rss_mb": round(self.process_peak_rss_mb, 1),
            "end_of_turn": self.end_of_turn,
            "runs": [r.to_json() for r in self.runs],
        }
        found = self.speed_up()
        if found is not None:
            ours, baseline, ratio = found
            data["speed_up"] = {
                "voice_to_voice_p50": round(ratio, 2),
                "streaming_p50_ms": ours.spread("voice_to_voice").to_json()["p50"],
                "baseline_p50_ms": baseline.spread("voice_to_voice").to_json()["p50"],
            }
        gain = self.speculation_gain()
        if gain is not None:
            ours, unspeculative, gain_ms, count = gain
            data["speculation"] = {
                "median_gain_ms": round(gain_ms, 1),
                "recordings": count,
                "streaming_p50_ms": ours.spread("voice_to_voice").to_json()["p50"],
                "no_speculation_p50_ms": unspeculative.spread("voice_to_voice").to_json()["p50"],
            }
        return data
