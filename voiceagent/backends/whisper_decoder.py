"""Whisper's text decoder on torch (int8 fbgemm), read from a CTranslate2 model folder, with
drafted greedy decoding.

Why not CTranslate2's own decoder: on this class of CPU (2 cores, AMD, oneDNN backend), each
decoder step of tiny.en took ~4.5 ms, 61% of it in oneDNN copying the int8 weights into its
packed layout again for every token (CTranslate2 passes a shift compensation, which rules out
oneDNN's matrix-vector path). fbgemm keeps the weights packed once, at load.

What a draft buys: a step of the decoder is bound by reading its ~30 MB of weights, not by
arithmetic, so checking 20 drafted tokens in one batched pass costs about two steps. The words
of a partial transcript of the same utterance (made while the user spoke) are such a draft.
A drafted token is kept only where it is the argmax, and decoding goes on step by step from
the first one that is not. That is greedy decoding's result up to rounding: a pass of many
tokens shares one int8 activation scale, so a near-tie can go the draft's way (see decode()).
"""

from __future__ import annotations

import math
import struct
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voiceagent.backends._imports import require

_DTYPES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
_REALIGN_WINDOW = 8  # draft tokens searched, from the last match on, to pick the draft up again


class UnsupportedModel(Exception):
    """The model folder's decoder cannot be run here (CTranslate2's decoder is used instead)."""


@dataclass(frozen=True)
class DecoderOutput:
    """A greedy decode.

    Attributes:
        tokens: The text tokens, without the end token.
        sum_logprob: Log-probability of the tokens plus the end token (when reached).
        no_speech_prob: Probability of the no-speech token at the start-of-transcript position.
        drafted: How many of ``tokens`` came from the draft (checked, not stepped).
    """

    tokens: list[int]
    sum_logprob: float
    no_speech_prob: float
    drafted: int


def read_ctranslate2_variables(model_bin: Path, prefix: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The variables of a CTranslate2 ``model.bin`` (format 5 or 6) whose names start with
    ``prefix``, as numpy arrays, and the file's aliases."""
    np = require("numpy")
    data = Path(model_bin).read_bytes()
    pos = 0

    def take(fmt: str) -> int:
        nonlocal pos
        (value,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return int(value)

    def text() -> str:
        nonlocal pos
        length = take("<H")
        value = data[pos : pos + length - 1].decode("utf-8")
        pos += length
        return value

    try:
        version = take("<I")
        if version not in (5, 6):
            raise UnsupportedModel(f"model.bin format {version} (known: 5, 6)")
        text()  # the spec's name
        take("<I")  # its revision
        variables: dict[str, Any] = {}
        for _ in range(take("<I")):
            name = text()
            dims = [take("<I") for _ in range(take("<B"))]
            code = take("<B")
            size = take("<I")
            if name.startswith(prefix):
                if code not in _DTYPES or code == 5:
                    raise UnsupportedModel(f"{name}: data type {code}")
                array = np.frombuffer(data, dtype=_DTYPES[code], count=size // np.dtype(_DTYPES[code]).itemsize, offset=pos)
                variables[name] = array.reshape(dims)
            pos += size
        aliases = {text(): text() for _ in range(take("<I"))}
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        raise UnsupportedModel(f"unreadable model.bin ({exc})") from None
    return variables, aliases


class WhisperDecoder:
    """Whisper's decoder (pre-norm transformer, learned positions, tied output projection).

    Thread-safe: the weights are read-only and every call keeps its own state, so the two STT
    copies of a session share one instance.
    """

    def __init__(self, variables: dict[str, Any], aliases: dict[str, str], threads: int) -> None:
        torch = require("torch")
        np = require("numpy")
        self._torch = torch
        torch.set_num_threads(threads)

        def get(name: str) -> Any:
            name = aliases.get(name, name)
            if name not in variables:
                raise UnsupportedModel(f"no variable {name}")
            return variables[name]

        def floats(name: str) -> Any:
            array = get(name)
            scale_name = name + "_scale"
            if array.dtype == np.int8:
                if scale_name not in variables:
                    raise UnsupportedModel(f"{name}: int8 without a scale")
                scale = np.asarray(variables[scale_name], dtype=np.float32)
                array = array.astype(np.float32) / scale.reshape(-1, *([1] * (array.ndim - 1)))
            elif array.dtype.kind != "f":
                raise UnsupportedModel(f"{name}: data type {array.dtype}")
            return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

        def flag(name: str, default: int) -> int:
            return int(variables[name]) if name in variables else default

        if flag("decoder/pre_norm", 1) != 1 or flag("decoder/scale_embeddings", 0) != 0:
            raise UnsupportedModel("not Whisper's decoder layout")
        # CTranslate2's activation codes: 1 GELU (tanh approximation), 3 GELU (exact).
        activation = flag("decoder/activation", 3)
        if activation not in (1, 3):
            raise UnsupportedModel(f"activation {activation} (not GELU)")
        self._gelu_approximate = "tanh" if activation == 1 else "none"
        self.heads = flag("decoder/num_heads", 0)
        embeddings = get("decoder/embeddings/weight")
        self.vocab_size, self.dim = (int(n) for n in embeddings.shape)
        if self.heads <= 0 or self.dim % self.heads:
            raise UnsupportedModel("head count")
        self._head_dim = self.dim // self.heads
        # Token lookups use a few rows per call: kept as stored (float16: half the memory).
        self._embeddings = torch.from_numpy(np.array(embeddings))  # a writable copy
        self._positions = floats("decoder/position_encodings/encodings")
        self.max_positions = int(self._positions.shape[0])
        self._projection = self._pack(floats("decoder/projection/weight"), None)

        self._layers = []
        index = 0
        while f"decoder/layer_{index}/self_attention/linear_0/weight" in variables:
            base = f"decoder/layer_{index}"
            layer = {
                "self_norm": self._norm(floats, f"{base}/self_attention/layer_norm"),
                "self_qkv": self._linear(floats, f"{base}/self_attention/linear_0", variables),
                "self_out": self._linear(floats, f"{base}/self_attention/linear_1", variables),
                "cross_norm": self._norm(floats, f"{base}/attention/layer_norm"),
                "cross_q": self._linear(floats, f"{base}/attention/linear_0", variables),
                "cross_kv": self._linear(floats, f"{base}/attention/linear_1", variables),
                "cross_out": self._linear(floats, f"{base}/attention/linear_2", variables),
                "ffn_norm": self._norm(floats, f"{base}/ffn/layer_norm"),
                "ffn_in": self._linear(floats, f"{base}/ffn/linear_0", variables),
                "ffn_out": self._linear(floats, f"{base}/ffn/linear_1", variables),
            }
            self._layers.append(layer)
            index += 1
        if not self._layers:
            raise UnsupportedModel("no decoder layers")
        self._final_norm = self._norm(floats, "decoder/layer_norm")

    @classmethod
    def load(cls, model_folder: Path, threads: int) -> WhisperDecoder:
        """Read the decoder of a CTranslate2 Whisper folder.

        Raises:
            UnsupportedModel: The file or the layout is not one this class runs, or torch's
                int8 kernels are missing; the caller keeps CTranslate2's decoder.
        """
        variables, aliases = read_ctranslate2_variables(Path(model_folder) / "model.bin", "decoder/")
        try:
            return cls(variables, aliases, threads)
        except (RuntimeError, AttributeError, TypeError) as exc:  # torch without fbgemm, ...
            raise UnsupportedModel(f"torch cannot run it ({str(exc).splitlines()[0][:120]})") from None

    def _pack(self, weight: Any, bias: Any) -> Any:
        torch = self._torch
        scale = (weight.abs().amax(dim=1).clamp(min=1e-8) / 127.0).double()
        zero = torch.zeros(weight.shape[0], dtype=torch.long)
        with warnings.catch_warnings():
            # torch marks its quantized tensor types as deprecated; load() falls back if they go.
            warnings.simplefilter("ignore")
            quantized = torch.quantize_per_channel(weight, scale, zero, 0, torch.qint8)
            return torch.ops.quantized.linear_prepack(quantized, bias)

    def _linear(self, floats: Any, name: str, variables: dict[str, Any]) -> Any:
        bias = floats(name + "/bias") if name + "/bias" in variables else None
        return self._pack(floats(name + "/weight"), bias)

    @staticmethod
    def _norm(floats: Any, name: str) -> tuple[Any, Any]:
        return floats(name + "/gamma"), floats(name + "/beta")

    def decode(
        self,
        encoder_output: Any,
        prompt: Sequence[int],
        max_new_tokens: int,
        end_token: int,
        suppress: Sequence[int],
        suppress_first: Sequence[int],
        no_speech_token: int | None,
        draft: Sequence[int] = (),
    ) -> DecoderOutput:
        """Greedy decoding of one utterance's encoder output (a float32 array [1, T, dim]).

        ``suppress`` is never emitted, ``suppress_first`` not as the first token. ``draft``
        tokens are checked in one pass and kept only where they are the argmax. A wrong draft
        leaves the result as it is without one; a right one can change it slightly, as int8
        activations are scaled per call (a pass of many tokens shares one scale): on the 30
        recordings of ../shared/audio/speech, 3 transcripts differed, WER 3.99% either way.
        """
        torch = self._torch
        with torch.inference_mode():
            return _Decoding(self, encoder_output, prompt, max_new_tokens).run(
                end_token, suppress, suppress_first, no_speech_token, draft
            )

    def _linear_apply(self, x: Any, packed: Any) -> Any:
        return self._torch.ops.quantized.linear_dynamic(x, packed, False)


class _Decoding:
    """One decode's state: the cross-attention keys and values, and the self-attention cache."""

    def __init__(self, decoder: WhisperDecoder, encoder_output: Any, prompt: Sequence[int], max_new: int) -> None:
        torch = decoder._torch
        self.d = decoder
        self.torch = torch
        self.prompt = list(prompt)
        self.max_new = max(0, min(max_new, decoder.max_positions - len(self.prompt)))
        memory = torch.as_tensor(encoder_output, dtype=torch.float32)
        if memory.ndim == 3:
            memory = memory[0]
        # One size for every decode: buffers of ever new sizes fragmented the heap (soak).
        capacity = decoder.max_positions
        heads, head_dim = decoder.heads, decoder._head_dim
        self.cross: list[tuple[Any, Any]] = []
        self.cache: list[tuple[Any, Any]] = []
        for layer in decoder._layers:
            keys, values = decoder._linear_apply(memory, layer["cross_kv"]).split(decoder.dim, dim=-1)
            self.cross.append((self._heads(keys), self._heads(values)))
            self.cache.append(
                (torch.empty(heads, capacity, head_dim), torch.empty(heads, capacity, head_dim))
            )
        self.length = 0  # positions held in the self-attention cache

    def _heads(self, x: Any) -> Any:
        return x.reshape(x.shape[0], self.d.heads, self.d._head_dim).transpose(0, 1).contiguous()

    def forward(self, tokens: Sequence[int]) -> Any:
        """Hidden states (after the final norm) of ``tokens`` at the next positions."""
        torch, d = self.torch, self.d
        functional = torch.nn.functional
        count = len(tokens)
        start = self.length
        ids = torch.tensor(list(tokens), dtype=torch.long)
        x = d._embeddings[ids].float() + d._positions[start : start + count]
        scale = 1.0 / math.sqrt(d._head_dim)
        mask = None
        if count > 1:
            mask = torch.ones(count, start + count, dtype=torch.bool).tril(diagonal=start)
        for layer, (cross_k, cross_v), (cache_k, cache_v) in zip(d._layers, self.cross, self.cache):
            h = functional.layer_norm(x, (d.dim,), *layer["self_norm"])
            q, k, v = d._linear_apply(h, layer["self_qkv"]).split(d.dim, dim=-1)
            cache_k[:, start : start + count] = self._heads(k)
            cache_v[:, start : start + count] = self._heads(v)
            keys, values = cache_k[:, : start + count], cache_v[:, : start + count]
            scores = torch.matmul(self._heads(q), keys.transpose(1, 2)) * scale
            if mask is not None:
                scores = scores.masked_fill(~mask, -math.inf)
            attended = torch.matmul(scores.softmax(dim=-1), values)
            x = x + d._linear_apply(attended.transpose(0, 1).reshape(count, d.dim), layer["self_out"])

            h = functional.layer_norm(x, (d.dim,), *layer["cross_norm"])
            q = self._heads(d._linear_apply(h, layer["cross_q"]))
            attended = torch.matmul((torch.matmul(q, cross_k.transpose(1, 2)) * scale).softmax(dim=-1), cross_v)
            x = x + d._linear_apply(attended.transpose(0, 1).reshape(count, d.dim), layer["cross_out"])

            h = functional.layer_norm(x, (d.dim,), *layer["ffn_norm"])
            x = x + d._linear_apply(functional.gelu(d._linear_apply(h, layer["ffn_in"]), approximate=d._gelu_approximate), layer["ffn_out"])
        self.length = start + count
        return functional.layer_norm(x, (d.dim,), *d._final_norm)

    def logits(self, hidden: Any) -> Any:
        return self.d._linear_apply(hidden, self.d._projection)

    def run(
        self,
        end_token: int,
        suppress: Sequence[int],
        suppress_first: Sequence[int],
        no_speech_token: int | None,
        draft: Sequence[int],
    ) -> DecoderOutput:
        torch = self.torch
        prompt = self.prompt
        draft = [t for t in draft if 0 <= t < self.d.vocab_size][: self.max_new]
        suppressed = torch.tensor(sorted(set(suppress)), dtype=torch.long)
        first_suppressed = torch.tensor(sorted(set(suppress_first)), dtype=torch.long)
        # The prompt apart from the draft: activations are quantized per call, and the
        # start-of-transcript position's are far larger than the text's.
        hidden = self.forward(prompt)
        first = self.logits(hidden[[0, -1]])
        no_speech = 0.0
        if no_speech_token is not None and 0 <= no_speech_token < self.d.vocab_size:
            no_speech = float(first[0].softmax(dim=-1)[no_speech_token])
        # rows[i] predicts the token after what the cache holds plus spec[:i].
        spec = draft
        rows = first[1:]
        if spec:
            rows = torch.cat([rows, self.logits(self.forward(spec))])
        tokens: list[int] = []
        total = 0.0
        drafted = 0
        base = 0  # spec is draft[base:...]
        cursor = 0  # the draft is followed in order: where the next match may start
        while True:
            finished = False
            for i, row in enumerate(rows):
                row = row.clone()
                if len(suppressed):
                    row[suppressed] = -math.inf
                if not tokens and len(first_suppressed):
                    row[first_suppressed] = -math.inf
                logprobs = row.log_softmax(dim=-1)
                token = int(logprobs.argmax())
                total += float(logprobs[token])
                if token == end_token:
                    finished = True
                    break
                tokens.append(token)
                if len(tokens) >= self.max_new:
                    finished = True
                    break
                if i < len(spec) and spec[i] == token:
                    drafted += 1  # the next row was computed with this very token: read on
                    continue
                break
            if finished:
                break
            if spec:
                cursor = base + i  # the draft's index that the last token stood against
            # The cache holds the prompt and tokens[:-1]; any speculation beyond is dropped.
            self.length = len(prompt) + len(tokens) - 1
            spec, base = _follow(draft, tokens, cursor, self.max_new - len(tokens))
            rows = self.logits(self.forward([tokens[-1], *spec]))
        return DecoderOutput(tokens=tokens, sum_logprob=total, no_speech_prob=no_speech, drafted=drafted)


def _follow(draft: Sequence[int], tokens: Sequence[int], cursor: int, room: int) -> tuple[list[int], int]:
    """Where the decode left the draft (a word Whisper cased or spelt otherwise, a comma it
    added), find its last tokens again a little further on in the draft and propose what
    follows them there. Returns the proposal and the draft index it starts at."""
    if room <= 0 or not draft:
        return [], cursor
    window = range(cursor, min(len(draft), cursor + _REALIGN_WINDOW))
    if len(tokens) >= 2:
        for j in window:
            if j > 0 and draft[j] == tokens[-1] and draft[j - 1] == tokens[-2]:
                return list(draft[j + 1 : j + 1 + room]), j + 1
    for j in window:
        if draft[j] == tokens[-1]:
            return list(draft[j + 1 : j + 1 + room]), j + 1
    return [], cursor


class DraftBook:
    """The latest transcripts (audio and tokens) of one model, shared by its copies: a new
    utterance that extends a recent one's audio gets that one's tokens as its draft."""

    def __init__(self, keep: int = 4) -> None:
        self._keep = keep
        self._entries: list[tuple[Any, list[int]]] = []
        self._lock = threading.Lock()

    def remember(self, audio: Any, tokens: Sequence[int]) -> None:
        entry = (audio.copy(), list(tokens))
        with self._lock:
            self._entries = [*self._entries[-(self._keep - 1) :], entry] if self._keep > 1 else [entry]

    def clear(self) -> None:
        with self._lock:
            self._entries = []

    def draft_for(self, audio: Any) -> list[int]:
        """The tokens of the longest remembered audio that ``audio`` begins with."""
        np = require("numpy")
        with self._lock:
            entries = list(self._entries)
        best: tuple[int, list[int]] = (0, [])
        for known, tokens in entries:
            n = known.shape[0]
            if best[0] < n <= audio.shape[0] and np.array_equal(audio[:n], known):
                best = (n, tokens)
        return list(best[1])


class _Shared:
    def __init__(self, decoder: WhisperDecoder | None, reason: str) -> None:
        self.decoder = decoder
        self.reason = reason
        self.drafts = DraftBook()
        self.users = 0


_shared: dict[Path, _Shared] = {}
_shared_lock = threading.Lock()


def acquire_decoder(model_folder: Path, threads: int) -> tuple[WhisperDecoder | None, DraftBook, str]:
    """The process's decoder and draft book for a model folder, loaded on first use and kept
    until every user has called :func:`release_decoder`.

    Returns (None, book, reason) when the decoder cannot run here.
    """
    key = Path(model_folder).resolve()
    with _shared_lock:
        shared = _shared.get(key)
        if shared is None:
            try:
                shared = _Shared(WhisperDecoder.load(key, threads), "")
            except UnsupportedModel as exc:
                shared = _Shared(None, str(exc))
            _shared[key] = shared
        shared.users += 1
        return shared.decoder, shared.drafts, shared.reason


def release_decoder(model_folder: Path) -> None:
    key = Path(model_folder).resolve()
    with _shared_lock:
        shared = _shared.get(key)
        if shared is not None:
            shared.users -= 1
            if shared.users <= 0:
                del _shared[key]
