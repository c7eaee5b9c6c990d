"""Hand-off queues between the audio device's thread and the rest of the program.

A sound card callback must never block: if the consumer falls behind, the oldest audio is
dropped and counted (``overflow_count``) rather than stalling the device. Consumers wait on a
condition or an asyncio event, never in a polling loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


class QueueClosed(Exception):
    """Raised by ``get`` once a queue is closed and everything in it has been taken."""


class FrameRingBuffer(Generic[T]):
    """Bounded FIFO between threads; ``put`` never blocks and drops the oldest item when full.

    For a consumer that runs on its own thread; an asyncio consumer uses :class:`AsyncFrameQueue`.
    """

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self._items: deque[T] = deque()
        self._condition = threading.Condition()
        self._overflow_count = 0
        self._is_closed = False
        self._error: BaseException | None = None

    @property
    def overflow_count(self) -> int:
        """Items dropped because the buffer was full."""
        with self._condition:
            return self._overflow_count

    def __len__(self) -> int:
        with self._condition:
            return len(self._items)

    def put(self, item: T) -> None:
        """Add an item without blocking; drops (and counts) the oldest one if full.

        Items put after :meth:`close` are ignored: the consumer has been told the stream ended.
        """
        with self._condition:
            if self._is_closed:
                return
            if len(self._items) >= self.capacity:
                self._items.popleft()
                self._overflow_count += 1
            self._items.append(item)
            self._condition.notify()

    def get(self, timeout_s: float | None = None) -> T:
        """Take the oldest item, waiting for one if the buffer is empty.

        Args:
            timeout_s: Longest wait; None waits until an item arrives or the buffer is closed.

        Raises:
            TimeoutError: Nothing arrived within ``timeout_s``.
            QueueClosed: The buffer was closed and is empty.
            BaseException: The error the producer passed to :meth:`close`, once drained.
        """
        with self._condition:
            is_ready = self._condition.wait_for(
                lambda: bool(self._items) or self._is_closed, timeout=timeout_s
            )
            if not is_ready:
                raise TimeoutError(f"no audio within {timeout_s} s")
            if self._items:
                return self._items.popleft()
            if self._error is not None:
                raise self._error
            raise QueueClosed()

    def close(self, error: BaseException | None = None) -> None:
        """End the stream; waiting consumers wake up, get what is left, then the error or
        :class:`QueueClosed`."""
        with self._condition:
            self._is_closed = True
            self._error = error
            self._condition.notify_all()


class AsyncFrameQueue(Generic[T]):
    """Bounded queue from any thread into one asyncio event loop, dropping the oldest when full.

    The producer (an audio callback) calls :meth:`put_threadsafe`, which schedules the insert on
    the loop with ``call_soon_threadsafe``; all state is then touched by the loop thread only,
    so no lock is needed. The consumer does ``async for item in queue``. Create it inside the
    running loop, or pass ``loop``.
    """

    def __init__(self, maxsize: int, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if maxsize <= 0:
            raise ValueError(f"maxsize must be positive, got {maxsize}")
        self.maxsize = maxsize
        self._loop = loop or asyncio.get_running_loop()
        self._items: deque[T] = deque()
        self._has_items = asyncio.Event()
        self._overflow_count = 0
        self._lost_after_loop_closed = 0
        self._is_closed = False
        self._error: BaseException | None = None

    @property
    def overflow_count(self) -> int:
        """Items dropped because the consumer fell behind (plus any lost at shutdown)."""
        return self._overflow_count + self._lost_after_loop_closed

    def __len__(self) -> int:
        return len(self._items)

    def put_threadsafe(self, item: T) -> None:
        """Add an item from any thread without blocking."""
        try:
            self._loop.call_soon_threadsafe(self.put_nowait, item)
        except RuntimeError:
            # The loop has closed: nobody is left to consume, so count it and move on.
            self._lost_after_loop_closed += 1

    def close_threadsafe(self, error: BaseException | None = None) -> None:
        """End the stream from any thread (see :meth:`close`)."""
        try:
            self._loop.call_soon_threadsafe(self.close, error)
        except RuntimeError:
            pass  # The loop is gone; there is no consumer left to tell.

    def put_nowait(self, item: T) -> None:
        """Add an item; call on the loop thread. Drops and counts the oldest item if full."""
        if self._is_closed:
            return
        if len(self._items) >= self.maxsize:
            self._items.popleft()
            self._overflow_count += 1
        self._items.append(item)
        self._has_items.set()

    def close(self, error: BaseException | None = None) -> None:
        """End the stream; call on the loop thread.

        The consumer still gets the queued items, then ``error`` is raised if given, otherwise
        iteration stops.
        """
        if self._is_closed:
            return
        self._is_closed = True
        self._error = error
        self._has_items.set()

    async def get(self) -> T:
        """Take the oldest item, waiting for one.

        Raises:
            QueueClosed: The queue was closed and is empty.
            BaseException: The error given to :meth:`close`, once the queue is drained.
        """
        while not self._items:
            if self._is_closed:
                if self._error is not None:
                    raise self._error
                raise QueueClosed()
            self._has_items.clear()
            await self._has_items.wait()
        return self._items.popleft()

    def __aiter__(self) -> AsyncFrameQueue[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.get()
        except QueueClosed:
            raise StopAsyncIteration from None


class SampleQueue:
    """Thread-safe FIFO of audio samples for a playback callback.

    The writer appends whole chunks; the device callback takes exactly as many samples as it
    needs. Unbounded on purpose: it holds speech we have already synthesised, which must not be
    dropped; :meth:`clear` empties it at once for barge-in.
    """

    def __init__(self) -> None:
        self._chunks: deque[np.ndarray] = deque()
        self._offset = 0
        self._queued_samples = 0
        self._lock = threading.Lock()

    @property
    def queued_samples(self) -> int:
        """Samples written but not yet read."""
        with self._lock:
            return self._queued_samples

    def write(self, samples: np.ndarray) -> None:
        """Append mono float32 samples (the array is copied)."""
        chunk = np.array(samples, dtype=np.float32, copy=True).reshape(-1)
        if chunk.size == 0:
            return
        with self._lock:
            self._chunks.append(chunk)
            self._queued_samples += chunk.size

    def read_into(self, out: np.ndarray) -> int:
        """Fill ``out`` from the front of the queue; the rest of ``out`` is left untouched.

        Args:
            out: 1-D float32 destination (e.g. one channel of a device buffer).

        Returns:
            How many samples were copied (less than ``len(out)`` when the queue runs dry).
        """
        wanted = out.shape[0]
        copied = 0
        with self._lock:
            while copied < wanted and self._chunks:
                chunk = self._chunks[0]
                take = min(wanted - copied, chunk.size - self._offset)
                out[copied : copied + take] = chunk[self._offset : self._offset + take]
                copied += take
                self._offset += take
                if self._offset == chunk.size:
                    self._chunks.popleft()
                    self._offset = 0
            self._queued_samples -= copied
        return copied

    def clear(self) -> int:
        """Drop everything queued; returns how many samples were dropped."""
        with self._lock:
            dropped = self._queued_samples
            self._chunks.clear()
            self._offset = 0
            self._queued_samples = 0
        return dropped
