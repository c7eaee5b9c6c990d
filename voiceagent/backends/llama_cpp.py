"""The language model: a GGUF chat model on llama.cpp (llama-cpp-python), streamed token by token.

The prompt is built with the model's own chat template (from the GGUF metadata) and tokens are
pulled one at a time from ``Llama.generate`` on the caller's thread, so the caller can stop
between any two tokens. ``Llama.generate`` keeps the longest common token prefix of the previous
prompt in llama.cpp's KV cache, so a growing conversation only evaluates its new tokens: turn 20
starts about as fast as turn 2 (see ``ConversationHistory`` for why trimming is done in big steps).

A GGUF file is checked in Python (magic, version, header, declared tensor data against the file
size) before llama.cpp sees it, so a broken download becomes one clear ``ModelError``.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import mmap
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from voiceagent.backends._imports import require
from voiceagent.errors import ModelError
from voiceagent.interfaces import ChatMessage, ReplyLimits, Role

_log = logging.getLogger(__name__)
_native_log = logging.getLogger("voiceagent.llama_cpp.native")

# Used only when a GGUF has no chat template. ChatML is what most small instruct models use.
_FALLBACK_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_FIX_REDOWNLOAD = (
    "download it again (for a catalog model: `voiceagent models pull ID`), "
    "or pass another .gguf file."
)


# --------------------------------------------------------------------------------------------
# GGUF header check (pure Python)
# --------------------------------------------------------------------------------------------

# ggml type id -> (elements per block, bytes per block); unknown types only get an offset check.
_GGML_BLOCKS: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176),
    14: (256, 210), 15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98),
    19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1),
    25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
}  # fmt: skip
# GGUF metadata value type -> fixed size in bytes (8 = string, 9 = array are variable).
_GGUF_SCALAR_BYTES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY, _GGUF_UINT32 = 8, 9, 4
_MAX_DIMS = 4
# A history trim's kept turns are shifted into place in the KV cache only when at least this
# many tokens are kept; fewer are cheaper to evaluate again.
_MIN_SHIFTED_TOKENS = 16


@dataclass(frozen=True)
class GgufLayout:
    """What the header of a GGUF file declares."""

    version: int
    tensor_count: int
    kv_count: int
    data_offset_bytes: int
    required_size_bytes: int
    file_size_bytes: int


class _Truncated(Exception):
    pass


class _Reader:
    """Bounds-checked little-endian reads over a memory-mapped file."""

    def __init__(self, data: mmap.mmap | bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, count: int) -> int:
        start = self.pos
        if count < 0 or start + count > len(self.data):
            raise _Truncated
        self.pos = start + count
        return start

    def u32(self) -> int:
        value: int = struct.unpack_from("<I", self.data, self.take(4))[0]
        return value

    def u64(self) -> int:
        value: int = struct.unpack_from("<Q", self.data, self.take(8))[0]
        return value

    def string(self) -> bytes:
        length = self.u64()
        start = self.take(length)
        return bytes(self.data[start : start + length])

    def skip_value(self, value_type: int, depth: int = 0) -> None:
        if value_type in _GGUF_SCALAR_BYTES:
            self.take(_GGUF_SCALAR_BYTES[value_type])
        elif value_type == _GGUF_STRING:
            self.take(self.u64())
        elif value_type == _GGUF_ARRAY and depth < 2:
            item_type, count = self.u32(), self.u64()
            if item_type in _GGUF_SCALAR_BYTES:
                self.take(count * _GGUF_SCALAR_BYTES[item_type])
            else:
                if count > len(self.data):  # every item takes at least one byte
                    raise _Truncated
                for _ in range(count):
                    self.skip_value(item_type, depth + 1)
        else:
            raise ValueError(f"unknown metadata value type {value_type}")


def _describe_non_gguf(head: bytes, path: Path) -> str:
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype", b"<html", b"<?xml", b"<head")):
        return "is an HTML page, not a GGUF model (a failed download?)"
    if path.suffix == ".onnx" or b"onnx" in head or b"pytorch" in head:
        return "is an ONNX model (a voice or VAD model?), not a GGUF language model"
    if not head:
        return "is empty"
    return f"is not a GGUF file (it starts with {head[:8]!r})"


def read_gguf_layout(path: Path) -> GgufLayout:
    """Read and check a GGUF header; raise ModelError for anything llama.cpp should not see.

    Checks the magic, the version, that the metadata and tensor table fit in the file, and that
    the file is at least as long as the tensor data it declares (catches truncated downloads).
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(64)
            if head[:4] != b"GGUF":
                raise ModelError(f"{path} {_describe_non_gguf(head, path)}.", fix=_FIX_REDOWNLOAD)
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _parse_layout(_Reader(data), size, path)
    except OSError as exc:
        raise ModelError(
            f"cannot read {path} ({exc.strerror or exc}).", fix="check the path."
        ) from None
    except _Truncated:
        raise ModelError(
            f"{path} is truncated or corrupt: its GGUF header runs past the end of the file.",
            fix=_FIX_REDOWNLOAD,
        ) from None
    except ValueError as exc:
        raise ModelError(
            f"{path} has a corrupt GGUF header ({exc}).", fix=_FIX_REDOWNLOAD
        ) from None


def _parse_layout(reader: _Reader, size: int, path: Path) -> GgufLayout:
    reader.take(4)  # magic
    version = reader.u32()
    if version not in (2, 3):
        hint = " (a big-endian file?)" if version > 0xFFFF else ""
        raise ModelError(
            f"{path} is GGUF version {version}{hint}; llama.cpp reads versions 2 and 3.",
            fix=_FIX_REDOWNLOAD,
        )
    tensor_count, kv_count = reader.u64(), reader.u64()
    if tensor_count > size or kv_count > size:
        raise ValueError(f"{tensor_count} tensors and {kv_count} metadata entries")
    alignment = 32
    for _ in range(kv_count):
        key = reader.string()
        value_type = reader.u32()
        if key == b"general.alignment" and value_type == _GGUF_UINT32:
            alignment = reader.u32()
            if alignment == 0 or alignment & (alignment - 1):
                raise ValueError(f"alignment {alignment} is not a power of two")
        else:
            reader.skip_value(value_type)
    tensors: list[tuple[int, int]] = []  # (offset, bytes)
    for _ in range(tensor_count):
        reader.string()
        n_dims = reader.u32()
        if n_dims > _MAX_DIMS:
            raise ValueError(f"a tensor with {n_dims} dimensions")
        elements = 1
        for _ in range(n_dims):
            elements *= reader.u64()
        ggml_type, offset = reader.u32(), reader.u64()
        block_elements, block_bytes = _GGML_BLOCKS.get(ggml_type, (1, 0))
        tensors.append((offset, elements // block_elements * block_bytes))
    data_offset = -(-reader.pos // alignment) * alignment
    if tensors:
        required = data_offset + max(offset + nbytes for offset, nbytes in tensors)
    else:
        required = reader.pos
    if required > size:
        raise ModelError(
            f"{path} is truncated: it is {size} bytes but its tensors need {required} bytes.",
            fix=_FIX_REDOWNLOAD,
        )
    return GgufLayout(version, tensor_count, kv_count, data_offset, required, size)


# --------------------------------------------------------------------------------------------
# Native logging
# --------------------------------------------------------------------------------------------

_log_callback: Any = None  # keeps the ctypes callback alive for as long as llama.cpp may call it
_log_lock = threading.Lock()


def _silence_native_logs(llama_cpp: Any) -> None:
    """Route llama.cpp's own log lines to a DEBUG logger instead of the terminal."""
    global _log_callback
    with _log_lock:
        if _log_callback is not None:
            return

        @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
        def forward(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            if _native_log.isEnabledFor(logging.DEBUG):
                _native_log.debug("%s", text.decode("utf-8", "replace").rstrip())

        _log_callback = forward
        llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingOptions:
    """How the next token is picked. Low temperature: short, on-topic spoken answers."""

    temperature: float = 0.3
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int = 1234


class StopReason(StrEnum):
    END_OF_TURN = "end_of_turn"
    MAX_TOKENS = "max_tokens"
    MAX_TIME = "max_time"
    STOPPED = "stopped"
    CONTEXT_FULL = "context_full"


@dataclass
class ReplyStats:
    """What the last ``stream_reply`` did (filled in as it runs)."""

    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    shifted_prompt_tokens: int = 0  # kept in the cache across a history trim (see _close_gap)
    evaluated_prompt_tokens: int = 0
    generated_tokens: int = 0
    first_token_s: float | None = None
    total_s: float = 0.0
    stop_reason: StopReason | None = None
    text_parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    @property
    def tokens_per_s(self) -> float:
        """Generation speed after the first token (prompt evaluation excluded)."""
        if self.first_token_s is None or self.generated_tokens < 2:
            return 0.0
        return (self.generated_tokens - 1) / max(self.total_s - self.first_token_s, 1e-9)


class LlamaLlm:
    """A chat model on llama.cpp. Not thread-safe: use it from one worker thread."""

    def __init__(
        self,
        llama: Any,
        path: Path,
        sampling: SamplingOptions,
        clock: Callable[[], float],
    ) -> None:
        self._llama_or_none: Any = llama
        self.path = path
        self.sampling = sampling
        self.clock = clock  # read between tokens for the time cap; injectable for tests
        self.last_reply = ReplyStats()
        self._llama_cpp = require("llama_cpp")
        chat_format = require("llama_cpp.llama_chat_format")
        self._vocab = self._llama_cpp.llama_model_get_vocab(llama.model)
        template = llama.metadata.get("tokenizer.chat_template") or _FALLBACK_TEMPLATE
        eos, bos = llama.token_eos(), llama.token_bos()
        eos_text = llama._model.token_get_text(eos) if eos != -1 else ""
        bos_text = llama._model.token_get_text(bos) if bos != -1 else ""
        self._bos = bos
        self._add_bos = bool(self._llama_cpp.llama_vocab_get_add_bos(self._vocab)) and bos != -1
        self._reply_formatter = chat_format.Jinja2ChatFormatter(
            template, eos_text, bos_text, add_generation_prompt=True
        )
        self._history_formatter = chat_format.Jinja2ChatFormatter(
            template, eos_text, bos_text, add_generation_prompt=False
        )

    @classmethod
    def load(
        cls,
        path: Path,
        threads: int,
        context_tokens: int = 2048,
        *,
        batch_threads: int | None = None,
        system_prompt: str | None = None,
        sampling: SamplingOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> LlamaLlm:
        """Load a GGUF chat model; with ``system_prompt``, also evaluate it so turn 1 is fast.

        ``threads`` generate tokens; ``batch_threads`` (default: the same) evaluate the prompt,
        which happens while nothing else runs, so it may take every core.
        """
        path = Path(path)
        read_gguf_layout(path)
        llama_module = require("llama_cpp")
        _silence_native_logs(llama_module)
        try:
            llama = llama_module.Llama(
                model_path=str(path),
                n_ctx=context_tokens,
                n_batch=min(512, context_tokens),
                # llama.cpp's scratch buffer is sized for the largest step (its attention scores
                # grow with step x context) and its pages are touched the first time a long
                # prompt is evaluated (after a history trim): 128-token steps make that 25 MiB
                # instead of 99, and evaluate a 370-token prompt as fast (1.33 vs 1.40 s here).
                n_ubatch=min(128, context_tokens),
                n_threads=threads,
                n_threads_batch=batch_threads or threads,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(
                f"llama.cpp cannot load {path} ({exc}).",
                fix="check it is a GGUF language model llama.cpp supports; " + _FIX_REDOWNLOAD,
            ) from None
        llm = cls(llama, path, sampling or SamplingOptions(), clock)
        if system_prompt is not None:
            llm.warm_up(system_prompt)
        return llm

    @property
    def context_tokens(self) -> int:
        # llama.cpp may round its context up; llama-cpp-python's token buffer is the size asked.
        return min(int(self._llama.n_ctx()), len(self._llama.input_ids))

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def prompt_token_ids(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The exact tokens the model sees for ``messages`` (template and reply header included)."""
        return self._tokenize_prompt(self._render(messages, self._reply_formatter))

    def cached_tokens(self) -> int:
        """How many tokens llama.cpp holds in its KV cache right now."""
        return int(self._llama.n_tokens)

    def clear_cache(self) -> None:
        """Forget the evaluated prompt: the next reply evaluates its whole prompt."""
        self._llama.reset()

    def warm_up(self, system_prompt: str) -> None:
        """Leave the system prompt's tokens in the cache and nothing after them (evaluated now
        unless they are there already), so the next reply evaluates only the rest of its prompt."""
        with_user = self.prompt_token_ids(
            [ChatMessage(Role.SYSTEM, system_prompt), ChatMessage(Role.USER, "Hi")]
        )
        system_only = self._tokenize_prompt(
            self._render([ChatMessage(Role.SYSTEM, system_prompt)], self._history_formatter)
        )
        prefix = with_user[: _common_prefix(with_user, system_only)]
        if _common_prefix(self._llama._input_ids, prefix) == len(prefix):
            self._llama.n_tokens = len(prefix)  # eval() drops the cache after this point
            return
        self._llama.reset()
        if prefix:
            self._llama.eval(prefix)

    def prefill(self, messages: Sequence[ChatMessage]) -> int:
        """Evaluate the prompt for ``messages`` up to the end of the last message's words.

        Called with the words the user has said so far, while they are still speaking: the
        reply's prompt then starts with tokens already in llama.cpp's cache, and only its new
        tail (the last words and the reply header) is evaluated once the turn ends.

        Returns:
            How many tokens were evaluated (0 if they were all cached or would not fit).
        """
        if not messages:
            return 0
        *earlier, last = messages
        tokens = self.prompt_token_ids(messages)
        # Only what stays the same when more words follow: the last message's closing
        # template tokens (and a word they might merge with) are left for the reply.
        longer = self.prompt_token_ids([*earlier, ChatMessage(last.role, f"{last.content} and")])
        tokens = tokens[: _common_prefix(tokens, longer)]
        if not tokens or len(tokens) >= self.context_tokens:
            return 0
        self._close_gap(tokens)
        cached = _common_prefix(self._llama._input_ids, tokens)
        if cached == len(tokens):
            return 0
        self._llama.n_tokens = cached  # eval() drops the cache after this point
        try:
            self._llama.eval(tokens[cached:])
        except RuntimeError as exc:
            self._llama.reset()
            raise ModelError(
                f"llama.cpp failed while reading the prompt with {self.path.name} ({exc}).",
                fix="restart; if it happens again, run `voiceagent doctor`.",
            ) from None
        return len(tokens) - cached

    def stream_reply(
        self,
        messages: list[ChatMessage],
        limits: ReplyLimits,
        should_stop: Callable[[], bool],
    ) -> Iterator[str]:
        """Yield text deltas of the reply; stop between tokens at a limit or ``should_stop()``.

        The time cap is checked between tokens; evaluating a long new prompt is not interrupted.
        Stats land in ``last_reply``.
        """
        started = self.clock()
        stats = ReplyStats()
        self.last_reply = stats
        tokens = self.prompt_token_ids(messages)
        stats.prompt_tokens = len(tokens)
        room = self.context_tokens - len(tokens)
        if room < 1:
            raise ModelError(
                f"the conversation ({len(tokens)} tokens) does not fit the model's context "
                f"of {self.context_tokens} tokens.",
                fix="lower history_tokens or raise context_tokens in the settings.",
            )
        if should_stop():
            stats.stop_reason = StopReason.STOPPED
            return
        stats.shifted_prompt_tokens = self._close_gap(tokens)
        cached = min(_common_prefix(self._llama._input_ids, tokens), len(tokens) - 1)
        stats.cached_prompt_tokens = cached
        # Decodes are counted when llama.cpp synchronizes: flush the earlier ones first.
        self._llama_cpp.llama_synchronize(self._llama.ctx)
        self._llama._ctx.reset_timings()
        options = self.sampling
        self._llama.set_seed(options.seed)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        at_start = True
        generator = self._llama.generate(
            tokens,
            top_k=options.top_k,
            top_p=options.top_p,
            min_p=options.min_p,
            temp=options.temperature,
            repeat_penalty=options.repeat_penalty,
        )
        try:
            for token in generator:
                now = self.clock()
                if stats.generated_tokens == 0:
                    stats.first_token_s = now - started
                    stats.evaluated_prompt_tokens = self._evaluated_prompt_tokens()
                stats.total_s = now - started
                if self._ends_turn(token):
                    stats.stop_reason = StopReason.END_OF_TURN
                    break
                if should_stop():
                    stats.stop_reason = StopReason.STOPPED
                    break
                stats.generated_tokens += 1
                text = decoder.decode(self._llama.detokenize([token]))
                if at_start:
                    text = text.lstrip()
                if text:
                    at_start = False
                    stats.text_parts.append(text)
                    yield text
                stop = self._limit_reached(stats, limits, room, started)
                if stop is not None:
                    stats.stop_reason = stop
                    break
                if should_stop():
                    stats.stop_reason = StopReason.STOPPED
                    break
        except RuntimeError as exc:  # llama_decode failed: out of memory, a broken model...
            raise ModelError(
                f"llama.cpp failed while generating with {self.path.name} ({exc}).",
                fix="restart; if it happens again, run `voiceagent doctor`.",
            ) from None
        finally:
            generator.close()
            self._free_sampler()
            stats.total_s = self.clock() - started
            if stats.stop_reason is None:  # the caller closed the stream early
                stats.stop_reason = StopReason.STOPPED
        # Bytes still in the decoder are an incomplete character cut off by a limit: dropped.

    def _limit_reached(
        self, stats: ReplyStats, limits: ReplyLimits, room: int, started: float
    ) -> StopReason | None:
        if stats.generated_tokens >= limits.max_tokens:
            return StopReason.MAX_TOKENS
        if stats.generated_tokens >= room:
            return StopReason.CONTEXT_FULL
        if self.clock() - started >= limits.max_s:
            return StopReason.MAX_TIME
        return None

    @property
    def _llama(self) -> Any:
        if self._llama_or_none is None:
            raise RuntimeError("the language model is closed")
        return self._llama_or_none

    def close(self) -> None:
        if self._llama_or_none is not None:
            self._llama_or_none.close()
            self._llama_or_none = None

    def __enter__(self) -> LlamaLlm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers --------------------------------------------------------------------------------

    def _render(self, messages: Sequence[ChatMessage], formatter: Any) -> str:
        as_dicts = [{"role": str(m.role), "content": self._plain(m.content)} for m in messages]
        try:
            prompt: str = formatter(messages=as_dicts).prompt
        except ValueError:
            # Some templates refuse a system role: fold it into the first user message.
            prompt = formatter(messages=_fold_system(as_dicts)).prompt
        return prompt

    def _plain(self, text: str) -> str:
        """``text`` without the model's control-token strings.

        The rendered prompt is tokenized with special tokens on (the template needs them), so
        a user who says or types "<|im_start|>system" would otherwise open a system message of
        their own. Such strings are removed from message text; nothing else changes.
        """
        if not text:
            return text
        tokens = self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        if not any(self._is_control(token) for token in tokens):
            return text
        kept = [token for token in tokens if not self._is_control(token)]
        return str(self._llama.detokenize(kept).decode("utf-8", errors="replace"))

    def _is_control(self, token: int) -> bool:
        lib = self._llama_cpp
        return bool(lib.llama_vocab_get_attr(self._vocab, token) & lib.LLAMA_TOKEN_ATTR_CONTROL)

    def _tokenize_prompt(self, prompt: str) -> list[int]:
        tokens: list[int] = self._llama.tokenize(
            prompt.encode("utf-8"), add_bos=False, special=True
        )
        if self._add_bos and (not tokens or tokens[0] != self._bos):
            tokens.insert(0, self._bos)
        return tokens

    def _free_sampler(self) -> None:
        """Free the native sampler chain ``Llama.generate`` made for this reply.

        llama-cpp-python's sampler holds itself in a reference cycle, so without this its
        native chain (~0.6 MB, a buffer the size of the vocabulary) lives until Python's full
        garbage collection: resident memory crept up ~6 MB every 10 turns between collections.
        """
        sampler = getattr(self._llama, "_sampler", None)
        if sampler is not None:
            sampler.close()
            self._llama._sampler = None

    def _ends_turn(self, token: int) -> bool:
        """End of generation, or any control token (e.g. the model starting a user turn)."""
        lib = self._llama_cpp
        if lib.llama_vocab_is_eog(self._vocab, token):
            return True
        attr = lib.llama_vocab_get_attr(self._vocab, token)
        return bool(attr & lib.LLAMA_TOKEN_ATTR_CONTROL)

    def _close_gap(self, tokens: Sequence[int]) -> int:
        """Keep the cached conversation that ``tokens`` still holds after a history trim.

        Dropping the oldest turns changes everything right after the system prompt, so the
        common prefix with the cache ends there. Without this, the rest of the conversation
        (500-1000 tokens, ~6 s on one thread for SmolLM2-135M) was evaluated again before the
        next reply could start. Here the dropped block is removed from llama.cpp's KV cache and
        what follows it is shifted back into place (llama.cpp's "context shift"): the kept turns
        then form a common prefix again, and only the new tokens are evaluated. The kept turns'
        cache entries were computed while the dropped turns were still in the context; llama.cpp's
        server makes the same trade when it shifts its context.

        Returns:
            How many cached tokens were kept this way (0 if there was no such gap, or the model's
            cache cannot shift).
        """
        np = require("numpy")
        llama = self._llama
        cached = np.asarray(llama._input_ids)
        wanted = np.asarray(tokens, dtype=cached.dtype)
        start = _common_prefix(cached, wanted)
        if start >= cached.size or start >= wanted.size - 1:
            return 0
        gap, kept = _longest_resumption(cached, wanted, start)
        if kept < _MIN_SHIFTED_TOKENS:
            return 0
        memory = self._llama_cpp.llama_get_memory(llama.ctx)
        if not self._llama_cpp.llama_memory_can_shift(memory):
            return 0
        lib, end = self._llama_cpp, start + gap + kept
        if not lib.llama_memory_seq_rm(memory, 0, start, start + gap):
            return 0
        lib.llama_memory_seq_rm(memory, 0, end, -1)  # what follows the kept run, as eval() would
        lib.llama_memory_seq_add(memory, 0, start + gap, end, -gap)
        llama.input_ids[start : start + kept] = cached[start + gap : end].copy()
        llama.n_tokens = start + kept
        return kept

    def _evaluated_prompt_tokens(self) -> int:
        """Prompt tokens llama.cpp actually evaluated for this reply (from its perf counters)."""
        # llama.cpp counts a multi-token decode in n_p_eval and reports max(1, n) for both
        # counters, so n_p_eval alone is exact whether the new suffix was one token or many.
        perf = self._llama_cpp.llama_perf_context(self._llama.ctx)
        return int(perf.n_p_eval)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share (lists or numpy arrays).

    Vectorised: the reply, every read-ahead (about once a second while the user speaks) and
    the history shift compare the prompt with llama.cpp's ~1000 cached tokens, where a Python
    loop over numpy scalars is needlessly slow.
    """
    np = require("numpy")
    shared = min(len(a), len(b))
    differ = np.flatnonzero(np.asarray(a[:shared]) != np.asarray(b[:shared]))
    return int(differ[0]) if differ.size else shared


def _longest_resumption(cached: Any, wanted: Any, start: int) -> tuple[int, int]:
    """Where ``wanted[start:]`` resumes in ``cached`` after a skipped block.

    Returns ``(gap, kept)``: ``cached[start + gap : start + gap + kept]`` equals
    ``wanted[start : start + kept]``, with ``kept`` as long as possible (``(0, 0)`` if no
    position matches). Both are numpy integer arrays.
    """
    np = require("numpy")
    rest = cached[start + 1 :]
    best_gap, best_kept = 0, 0
    # Every message opens with the same template token, so there are few candidates.
    for offset in np.flatnonzero(rest == wanted[start]):
        gap = int(offset) + 1
        run = min(cached.size - start - gap, wanted.size - start)
        if run <= best_kept:
            continue
        same = cached[start + gap : start + gap + run] == wanted[start : start + run]
        kept = run if same.all() else int(np.argmin(same))
        if kept > best_kept:
            best_gap, best_kept = gap, kept
    return best_gap, best_kept


def _fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if system and rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    elif system:
        rest.insert(0, {"role": "user", "content": system})
    return rest
