"""One worker thread per heavy model, so the event loop never waits on a model call."""

from __future__ import annotations

import asyncio
import ctypes
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

    async def call(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: func(*args, **kwargs))

    def submit(self, func: Callable[[], R]) -> Future[R]:
        """Start ``func`` on the worker thread from synchronous code (loading models)."""
        return self._pool.submit(func)

    def close(self) -> None:
        """Finish the running call (models stop between tokens when asked) and end the thread."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def _find_libc_function(name: str) -> Any:
    try:
        return getattr(ctypes.CDLL(None), name, None)
    except OSError:
        return None


# Looked up once, at import: a session then calls them without loading anything.
_MALLOC_TRIM = _find_libc_function("malloc_trim")
_MALLOPT = _find_libc_function("mallopt")

# glibc's mallopt() parameters (malloc.h) and the values set by map_large_blocks_apart().
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
LARGE_BLOCK_BYTES = 1 << 20
TOP_KEPT_BYTES = 64 << 20


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


def map_large_blocks_apart() -> bool:
    """Give every block of 1 MiB or more its own mapping, returned to the OS when freed; False
    where that is not possible (not glibc). Call it before the models load.

    By default glibc raises its mmap threshold to the largest block freed so far (up to 32 MB),
    so after the first turns the models' per-call buffers of a few MB come from the heaps and
    leave holes there that no trim can return: over a 50-question conversation the heaps grew
    357 -> 537 MB while the blocks in use grew 227 -> 250 MB. With the threshold fixed at 1 MiB
    resident memory grew +34 MB from turn 1 instead of +50.

    Fixing the threshold also stops glibc from raising its trim threshold, which would then stay
    at 128 KB and hand the top of the heap back after almost every call, to be faulted in again
    on the next: that alone made Whisper ~20% slower. So the top of the heap may keep up to
    64 MB (what glibc's own rule allows at most) and :func:`trim_native_heap` after each reply
    returns the rest.
    """
    if _MALLOPT is None:
        return False
    return bool(
        _MALLOPT(_M_TRIM_THRESHOLD, TOP_KEPT_BYTES) and _MALLOPT(_M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES)
    )
