"""Hand-off queues between the audio thread and consumers, and the fake clock."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from voiceagent.audio.clock import Clock, FakeClock, MonotonicClock
from voiceagent.audio.ring_buffer import (
    AsyncFrameQueue,
    FrameRingBuffer,
    QueueClosed,
    SampleQueue,
)

pytestmark = pytest.mark.unit


def test_ring_buffer_drops_oldest_and_counts() -> None:
    buffer: FrameRingBuffer[int] = FrameRingBuffer(capacity=3)
    for item in range(5):
        buffer.put(item)
    assert buffer.overflow_count == 2
    assert len(buffer) == 3
    assert [buffer.get(), buffer.get(), buffer.get()] == [2, 3, 4]


def test_ring_buffer_consumer_thread_wakes_on_put_and_close() -> None:
    buffer: FrameRingBuffer[int] = FrameRingBuffer(capacity=8)
    received: list[int] = []
    finished = threading.Event()

    def consume() -> None:
        try:
            while True:
                received.append(buffer.get(timeout_s=5))
        except QueueClosed:
            finished.set()

    consumer = threading.Thread(target=consume)
    consumer.start()
    for item in range(5):
        buffer.put(item)
    buffer.close()
    consumer.join(timeout=5)
    assert finished.is_set()
    assert received == [0, 1, 2, 3, 4]


def test_ring_buffer_close_with_error_after_drain() -> None:
    buffer: FrameRingBuffer[int] = FrameRingBuffer(capacity=2)
    buffer.put(1)
    buffer.close(OSError("device lost"))
    buffer.put(2)  # ignored after close
    assert buffer.get() == 1
    with pytest.raises(OSError, match="device lost"):
        buffer.get()


def test_ring_buffer_timeout() -> None:
    buffer: FrameRingBuffer[int] = FrameRingBuffer(capacity=2)
    with pytest.raises(TimeoutError):
        buffer.get(timeout_s=0.01)


def test_async_queue_from_a_foreign_thread() -> None:
    async def scenario() -> tuple[list[int], int]:
        queue: AsyncFrameQueue[int] = AsyncFrameQueue(maxsize=1000)

        def produce() -> None:
            for item in range(200):
                queue.put_threadsafe(item)
            queue.close_threadsafe()

        producer = threading.Thread(target=produce)
        producer.start()
        received = [item async for item in queue]
        producer.join()
        return received, queue.overflow_count

    received, overflow_count = asyncio.run(scenario())
    assert received == list(range(200))
    assert overflow_count == 0


def test_async_queue_drops_oldest_when_consumer_is_slow() -> None:
    async def scenario() -> tuple[list[int], int]:
        queue: AsyncFrameQueue[int] = AsyncFrameQueue(maxsize=4)
        for item in range(10):
            queue.put_threadsafe(item)
        queue.close_threadsafe()
        await asyncio.sleep(0)  # let the scheduled puts run before consuming
        return [item async for item in queue], queue.overflow_count

    received, overflow_count = asyncio.run(scenario())
    assert received == [6, 7, 8, 9]
    assert overflow_count == 6


def test_async_queue_raises_producer_error_after_items() -> None:
    async def scenario() -> list[int]:
        queue: AsyncFrameQueue[int] = AsyncFrameQueue(maxsize=4)
        queue.put_nowait(1)
        queue.close(RuntimeError("boom"))
        received = [await queue.get()]
        with pytest.raises(RuntimeError, match="boom"):
            await queue.get()
        return received

    assert asyncio.run(scenario()) == [1]


def test_sample_queue_partial_reads_and_clear() -> None:
    queue = SampleQueue()
    queue.write(np.arange(5, dtype=np.float32))
    queue.write(np.arange(5, 10, dtype=np.float32))
    out = np.full(3, -1.0, dtype=np.float32)
    assert queue.read_into(out) == 3
    np.testing.assert_array_equal(out, [0, 1, 2])
    out = np.full(4, -1.0, dtype=np.float32)
    assert queue.read_into(out) == 4
    np.testing.assert_array_equal(out, [3, 4, 5, 6])
    assert queue.queued_samples == 3
    assert queue.clear() == 3
    out = np.full(2, -1.0, dtype=np.float32)
    assert queue.read_into(out) == 0
    np.testing.assert_array_equal(out, [-1, -1])


def test_clocks_satisfy_the_protocol() -> None:
    assert isinstance(MonotonicClock(), Clock)
    assert isinstance(FakeClock(), Clock)


def test_fake_clock_auto_advance_records_requests() -> None:
    clock = FakeClock(start_s=10.0)

    async def scenario() -> None:
        await clock.sleep_until(10.5)
        await clock.sleep_until(10.2)  # in the past: returns at once, time does not go back

    asyncio.run(scenario())
    assert clock.sleep_requests_s == [10.5, 10.2]
    assert clock.now_s() == 10.5


def test_fake_clock_manual_mode_wakes_sleepers_when_advanced() -> None:
    clock = FakeClock(auto_advance=False)
    woken: list[float] = []

    async def sleeper(t_s: float) -> None:
        await clock.sleep_until(t_s)
        woken.append(clock.now_s())

    async def scenario() -> None:
        tasks = [asyncio.create_task(sleeper(t_s)) for t_s in (1.0, 2.0)]
        await asyncio.sleep(0)
        clock.advance(1.5)
        await asyncio.sleep(0)
        assert woken == [1.5]
        clock.set(2.0)
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    assert woken == [1.5, 2.0]
    with pytest.raises(ValueError):
        clock.advance(-1)
