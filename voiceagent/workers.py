"""One worker thread per heavy model, so the event loop never waits on a model call."""

from __future__ import annotations

import asyncio
import ctypes
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class ModelWorker:
    """A single thread that runs every call for one model, in order.

    Models such as llama.cpp and onnxruntime sessions are not safe to call from several
    threads at once; one thread per model also keeps their thread pools from fighting.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"voiceagent-{name}")
        self._lock = threading.Lock()
        self._unfinished = 0

    @property
    def busy(self) -> bool:
        """A call is running or waiting for the thread."""
        with self._lock:
            return self._unfinished > 0

    def _counted(self, func: Callable[[], R]) -> Callable[[], R]:
        with self._lock:
            self._unfinished += 1

        def run() -> R:
            try:
                return func()
            finally:
                with self._lock:
                    self._unfinished -= 1

        return run

    async def call(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._counted(lambda: func(*args, **kwargs)))

    def submit(self, func: Callable[[], R]) -> Future[R]:
        """Start ``func`` on the worker thread from synchronous code (loading models)."""
        return self._pool.submit(self._counted(func))

    def close(self) -> None:
        """Finish the running call (models stop between tokens when asked) and end the thread."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def _find_malloc_trim() -> Any:
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)
    except OSError:
        return None


# Looked up once, at import: a session then calls it without loading anything.
_MALLOC_TRIM = _find_malloc_trim()


def trim_native_heap() -> bool:
    """Hand the C heap's free pages back to the OS; False where that is not possible (not glibc).

    glibc keeps what the models free (Whisper's buffers, Piper's arena blocks) in each thread's
    heap, scattered between blocks still in use, so resident memory only ever rises. One trim
    per reply takes ~5-25 ms on the TTS worker once the reply is out, and keeps memory at rest
    flat.
    """
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True
