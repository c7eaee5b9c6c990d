"""The soak's verdict figures on made-up sessions: a real drift shows, slow single turns don't."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import pytest

from voiceagent.bench.soak import (
    LlmCall,
    RecordingLlm,
    SoakResult,
    SoakTurn,
    least_squares_slope,
    summarize,
    window_medians,
)
from voiceagent.interfaces import ChatMessage, ReplyLimits, Role

pytestmark = pytest.mark.unit


def session(voice_to_voice_ms: list[float], rss_mb: list[float] | None = None) -> SoakResult:
    rss = rss_mb or [700.0] * len(voice_to_voice_ms)
    turns = [
        SoakTurn(i + 1, "question", "answer", {"voice_to_voice": v}, rss[i])
        for i, v in enumerate(voice_to_voice_ms)
    ]
    return SoakResult(utterances=len(turns), turns=turns)


def noisy_turns(drift_ms_per_turn: float, turns: int = 200, seed: int = 0) -> list[float]:
    """~1 s per turn with 200 ms of noise and, every 8th turn, a 3 s history-trim turn."""
    rng = np.random.default_rng(seed)
    values = 1000 + 200 * rng.standard_normal(turns) + drift_ms_per_turn * np.arange(turns)
    values[::8] += 3000
    return [float(v) for v in values]


def test_window_medians_end_with_the_last_value():
    assert window_medians([9, 1, 2, 3, 4, 5, 6], 3) == [2.0, 5.0]
    assert window_medians([1, 2], 3) == []


def test_least_squares_slope():
    assert least_squares_slope([1.0, 3.0, 5.0]) == pytest.approx(2.0)
    assert least_squares_slope([1.0, 2.0], x=[0.0, 10.0]) == pytest.approx(0.1)


@pytest.mark.parametrize("seed", range(5))
def test_trim_spikes_and_noise_are_not_drift(seed):
    report = summarize(session(noisy_turns(0.0, seed=seed)))
    assert report.window_turns == 24
    assert abs(report.window_slope_ms_per_turn["voice_to_voice"]) < 1.0


@pytest.mark.parametrize("seed", range(5))
def test_a_real_drift_is_seen(seed):
    report = summarize(session(noisy_turns(3.0, seed=seed)))  # +600 ms over the session
    assert report.window_slope_ms_per_turn["voice_to_voice"] > 2.0


def test_memory_growth_is_counted_from_the_end_of_the_warm_up():
    rss = [500.0 + 20 * i for i in range(10)] + [690.0 + i for i in range(30)]
    report = summarize(session([1000.0] * 40, rss))
    assert report.rss_mb_after_warm_up == 680.0  # turn 10
    assert report.rss_growth_mb == pytest.approx(719.0 - 680.0)
    assert report.rss_growth_from_first_mb == pytest.approx(719.0 - 500.0)


def test_memory_growth_is_judged_at_rest_not_on_a_call_in_flight_at_the_last_turn():
    # The last turn ended while the LLM re-read the history after a trim (+70 MB for a moment);
    # between the turns memory was back at 701 MB.
    result = session([1000.0] * 12, [700.0] * 11 + [771.0])
    result.turns = [replace(t, rest_rss_mb=701.0 if t.index == 12 else 700.0) for t in result.turns]
    report = summarize(result)
    assert report.rss_growth_mb == pytest.approx(1.0)
    assert report.rss_mb_turn_end_max == 771.0  # the moment is still reported


def test_memory_at_rest_is_the_lowest_sample_since_the_turn_before():
    from voiceagent.bench.machine import RssSampler

    sampler = RssSampler(interval_s=0.001)
    readings = iter([700.0, 650.0, 720.0, 690.0, 800.0, 810.0])
    sampler.rss_mb = lambda: next(readings)  # type: ignore[method-assign]
    sampler._record()
    sampler._record()
    sampler._record()
    assert sampler.take_low_mb() == 650.0  # the lowest of 700, 650, 720 and 690 now
    sampler._record()
    assert sampler.take_low_mb() == 800.0  # started over: only 800 and 810 now count


def test_prompt_sizes_come_from_every_reply():
    result = session([1000.0] * 3)
    result.context_tokens = 2048
    result.llm_calls = [
        LlmCall(900, 850, 50, 40, "end_of_turn"),
        LlmCall(1000, 0, 1000, 96, "max_tokens"),
        LlmCall(2040, 2000, 40, 8, "context_full"),
    ]
    report = summarize(result)
    assert report.max_prompt_tokens == 2040
    assert report.max_prompt_and_reply_tokens == 2048
    assert report.context_full_replies == 1


@dataclass
class _Stats:
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    evaluated_prompt_tokens: int = 0
    generated_tokens: int = 0
    stop_reason: object = None


class _CountingLlm:
    """Reports its prompt size in ``last_reply``, like the llama.cpp backend."""

    def __init__(self, fail: bool = False) -> None:
        self.last_reply = _Stats()
        self._fail = fail

    def stream_reply(
        self, messages: list[ChatMessage], limits: ReplyLimits, should_stop: Callable[[], bool]
    ) -> Iterator[str]:
        self.last_reply = _Stats(prompt_tokens=10 * len(messages))
        if self._fail:
            raise RuntimeError("the conversation does not fit")
        for word in ("Hello", " there"):
            self.last_reply.generated_tokens += 1
            yield word

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def close(self) -> None:
        pass


def test_the_recording_llm_keeps_each_reply_even_a_failed_one():
    calls: list[LlmCall] = []
    llm = RecordingLlm(_CountingLlm(), calls)
    messages = [ChatMessage(Role.USER, "hi")]
    assert "".join(llm.stream_reply(messages, ReplyLimits(), lambda: False)) == "Hello there"
    assert calls == [LlmCall(10, 0, 0, 2, None)]
    failing = RecordingLlm(_CountingLlm(fail=True), calls)
    with pytest.raises(RuntimeError):
        list(failing.stream_reply(messages * 3, ReplyLimits(), lambda: False))
    assert calls[-1].prompt_tokens == 30


def test_cpu_time_per_turn_is_fitted_like_the_latencies():
    result = session([1000.0] * 120)
    # Each turn uses 10 ms more CPU than the one before: more work per turn.
    cpu = np.cumsum([500 + 10 * i for i in range(120)]) / 1000
    result.turns = [
        SoakTurn(t.index, "q", "a", t.latency_ms, 700.0, c)
        for t, c in zip(result.turns, cpu, strict=True)
    ]
    report = summarize(result)
    assert report.cpu_ms_per_turn_window_slope == pytest.approx(10.0, abs=0.5)
    assert report.window_slope_ms_per_turn["voice_to_voice"] == 0.0
