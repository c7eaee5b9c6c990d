"""One worker thread per heavy model, so the event loop never waits on a model call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

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

    async def call(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: func(*args, **kwargs))

    def submit(self, func: Callable[[], R]) -> Future[R]:
        """Start ``func`` on the worker thread from synchronous code (loading models)."""
        return self._pool.submit(func)

    def close(self) -> None:
        """Finish the running call (models stop between tokens when asked) and end the thread."""
        self._pool.shutdown(wait=True, cancel_futures=True)
