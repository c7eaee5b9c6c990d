"""Speech-to-text with a CTranslate2 Whisper model (through faster-whisper's pieces).

faster-whisper's ``transcribe()`` pads every input to a 30 s window, so a 3 s question pays for
30 s of encoder work (~0.5 s for tiny.en on two cores). The fast path here runs the encoder on
the utterance plus trailing silence, padded up to ``min_window_s``, and bounds the decode by the
audio's length. Short windows make Whisper restart the sentence after it ends ("... modern, in
being comparatively modern, in"), so a too-long, repetitive or low-confidence fast result falls
back to the full 30 s window; ``scripts/measure_stt.py`` measures both and how often that happens.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voiceagent.backends._imports import require
from voiceagent.backends.whisper_decoder import (
    DecoderOutput,
    DraftBook,
    WhisperDecoder,
    acquire_decoder,
    release_decoder,
)
from voiceagent.errors import ModelError
from voiceagent.interfaces import Transcript
from voiceagent.transcript_filter import has_repeated_ngram

if TYPE_CHECKING:
    import numpy as np

_log = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16000
_HOP_SAMPLES = 160  # one mel frame per 10 ms
_FULL_WINDOW_FRAMES = 3000  # Whisper's 30 s window
WINDOW_SAMPLES = _FULL_WINDOW_FRAMES * _HOP_SAMPLES  # longer audio is decoded in windows
_WINDOW_STEP_FRAMES = 100  # the fast path's window: whole seconds (so an even frame count)
_MAX_DECODER_TOKENS = 448
_MIN_SAMPLES = 400  # one FFT window; shorter input is padded with silence
_FIX = (
    "run `voiceagent models verify`, then `voiceagent models pull whisper-tiny.en` "
    "(or pass a CTranslate2 Whisper model folder)."
)


@dataclass(frozen=True)
class WhisperOptions:
    """How :class:`WhisperStt` decodes. The defaults are the measured ones.

    Attributes:
        fast_path: Encode only the utterance (plus padding) instead of a 30 s window.
        trailing_silence_s: Silence appended after the utterance on the fast path, so the
            model hears that the speech has ended.
        min_window_s: The fast path's window is never shorter than this. Shorter windows
            make Whisper start the sentence over once it has finished it: on 44 VAD-cut
            utterances a 10 s floor fell back once, 8 s three times, 5 s seven, none ten.
        max_tokens_per_s: Decode bound on the fast path, per second of audio ...
        extra_tokens: ... plus this. Hitting the bound means a loop, and triggers the fallback.
        beam_size: 1 is greedy. Beam 3 cut the sample set's WER from 4.4% to 2.3% but cost
            36% more time; greedy already beats faster-whisper's default (4.8%).
        long_beam_size: The beam for audio over 30 s (files given to ``transcribe``; a live
            turn is cut before, see ``EndpointingConfig.max_turn_s``), where time matters less
            than the text ...
        long_condition_on_previous_text: ... with each 30 s window's text the prompt of the
            next, as in faster-whisper's default; greedy with each window alone when a window
            loops (a compression ratio over ``compression_ratio_above``). Measured on 7
            recordings of 32-52 s (the turns corpus's long files, the speech clips joined:
            ``scripts/measure_stt.py``), one thread: WER 2.16%, as faster-whisper's default,
            against 2.44% greedy with each window alone (2.30% with beam 5 alone), for 32%
            more time (16.5 s against 12.5 s).
        compression_ratio_above: Fall back when the text's gzip ratio is above this.
        avg_logprob_below: Fall back when the mean token log-probability is below this ...
        no_speech_prob_above: ... unless no-speech is also above this (that is silence, which
            the transcript filter drops).
        repeated_ngram_words: Fall back when any run of this many words occurs twice.
        torch_decoder: Decode the fast path with :mod:`voiceagent.backends.whisper_decoder`
            (int8 on torch, the weights packed once), taking the latest transcript of the
            same utterance's earlier audio as a draft; CTranslate2's decoder when False or
            when it cannot run the model. Measured on ../shared/audio/speech (30 files, one
            thread, median): decoding 90.0 ms on CTranslate2, 86.6 without a draft, 34.0
            with the transcript of all but the last 0.5 s as the draft (38.5: 1 s); WER of
            the fast path 4.41% on CTranslate2, 3.99% here (4.20% with the 1 s draft).
    """

    fast_path: bool = True
    trailing_silence_s: float = 1.0
    min_window_s: float = 10.0
    max_tokens_per_s: float = 8.0
    extra_tokens: int = 12
    beam_size: int = 1
    long_beam_size: int = 5
    long_condition_on_previous_text: bool = True
    compression_ratio_above: float = 2.4
    avg_logprob_below: float = -1.0
    no_speech_prob_above: float = 0.6
    repeated_ngram_words: int = 4
    torch_decoder: bool = True


DEFAULT_WHISPER_OPTIONS = WhisperOptions()


class FallbackReason(StrEnum):
    """Why the full 30 s window was used instead of the fast path's result."""

    DISABLED = "disabled"
    TOO_LONG = "too_long"
    TOKEN_LIMIT = "token_limit"
    COMPRESSION_RATIO = "compression_ratio"
    REPEATED_PHRASE = "repeated_phrase"
    LOW_LOGPROB = "low_logprob"


@dataclass(frozen=True)
class DecodeScores:
    """What the decoder said about one attempt at an utterance."""

    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    hit_token_limit: bool = False
    drafted_tokens: int = 0


@dataclass(frozen=True)
class SttResult:
    """A transcript plus how it was made (for measurement and debugging).

    Attributes:
        transcript: What :meth:`WhisperStt.transcribe` returns.
        fallback: Why the full window was used, or None when the fast path's result stood.
        fast_attempt: The fast path's result, when it ran.
    """

    transcript: Transcript
    fallback: FallbackReason | None
    fast_attempt: DecodeScores | None


def compression_ratio(text: str) -> float:
    """gzip compression ratio of ``text``, as Whisper computes it (loops compress well)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 1.0


def capitalize_first_word(text: str) -> str:
    """Whisper starts a transcript of the same words now with "printing", now with "Printing".
    Always capitalised, the words so far read ahead by the LLM stay a prefix of the final
    prompt, and its cache holds (words like "iPhone" are left alone)."""
    first = text.split(maxsplit=1)[0] if text.strip() else ""
    if not first or not first[0].islower() or any(c.isupper() for c in first):
        return text
    start = text.index(first)
    return text[:start] + first[0].upper() + text[start + 1 :]


def fallback_reason(
    scores: DecodeScores, options: WhisperOptions = DEFAULT_WHISPER_OPTIONS
) -> FallbackReason | None:
    """Decide whether a fast-path result needs the full window. Pure; no model involved."""
    is_silence = (
        scores.no_speech_prob > options.no_speech_prob_above
        and scores.avg_logprob < options.avg_logprob_below
    )
    if is_silence:
        return None  # Whisper's own silence rule; the transcript filter drops it
    if scores.hit_token_limit:
        return FallbackReason.TOKEN_LIMIT
    if scores.compression_ratio > options.compression_ratio_above:
        return FallbackReason.COMPRESSION_RATIO
    if has_repeated_ngram(scores.text, options.repeated_ngram_words):
        return FallbackReason.REPEATED_PHRASE
    if scores.avg_logprob < options.avg_logprob_below:
        return FallbackReason.LOW_LOGPROB
    return None


class WhisperStt:
    """Whisper speech-to-text (English) on CTranslate2. Not thread-safe: call it from one
    worker thread."""

    def __init__(
        self,
        model: Any,
        path: Path,
        options: WhisperOptions,
        decoder: WhisperDecoder | None = None,
        drafts: DraftBook | None = None,
    ) -> None:
        self._model = model
        self.path = path
        self.options = options
        self._decoder = decoder
        self._drafts = drafts
        self._holds_decoder = False  # whether close() releases it (views do not)
        np = require("numpy")
        self._np = np
        self._ctranslate2 = require("ctranslate2")
        transcribe_module = require("faster_whisper.transcribe")
        tokenizer_module = require("faster_whisper.tokenizer")
        self._tokenizer = tokenizer_module.Tokenizer(
            model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en"
        )
        self._prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        self._suppress_tokens = list(transcribe_module.get_suppressed_tokens(self._tokenizer, [-1]))
        # CTranslate2's suppress_blank: neither a space nor the end as the first token.
        self._suppress_first = [*self._tokenizer.encode(" "), self._tokenizer.eot]

    @classmethod
    def load(
        cls,
        path: Path,
        threads: int,
        compute_type: str = "int8",
        options: WhisperOptions = DEFAULT_WHISPER_OPTIONS,
        warm_up_audio: np.ndarray | None = None,
    ) -> WhisperStt:
        """Load a CTranslate2 Whisper model folder.

        Args:
            path: The folder holding ``model.bin``, ``config.json`` and ``tokenizer.json``.
            threads: CPU threads for the model.
            compute_type: CTranslate2 compute type; ``int8`` is fastest on CPU.
            options: Decoding options.
            warm_up_audio: Speech (16 kHz mono float32) to decode once at load on both paths,
                the fast one and the full window; without it, half a second of silence on the
                fast path only.

        Raises:
            ModelError: The folder is not a loadable CTranslate2 Whisper model.
        """
        path = Path(path)
        _check_folder(path)
        faster_whisper = require("faster_whisper")
        try:
            model = faster_whisper.WhisperModel(
                str(path),
                device="cpu",
                compute_type=compute_type,
                cpu_threads=threads,
                num_workers=1,
                local_files_only=True,
            )
        except Exception as exc:  # CTranslate2 and tokenizers raise their own types
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            if isinstance(exc, ValueError) and "compute type" in reason.lower():
                raise ModelError(
                    f"compute type {compute_type!r} does not work on this CPU ({reason}).",
                    fix="use the compute type int8 (the default).",
                ) from None
            raise ModelError(
                f"cannot load the speech-to-text model {path / 'model.bin'}: not a working "
                f"CTranslate2 Whisper model ({reason}).",
                fix=_FIX,
            ) from None
        _thread_lock_for_progress_bars()
        decoder = drafts = None
        if options.torch_decoder and compute_type.startswith("int8"):
            decoder, drafts, reason = acquire_decoder(path, threads)
            if decoder is None:
                release_decoder(path)
                _log.info("CTranslate2 decodes %s (the torch decoder cannot: %s)", path.name, reason)
        stt = cls(model, path, options, decoder, drafts)
        stt._holds_decoder = decoder is not None
        stt._warm_up(warm_up_audio)
        return stt

    def with_options(self, options: WhisperOptions) -> WhisperStt:
        """Another view of the same loaded model that decodes with other options.

        The view shares the model: closing either closes both.
        """
        decoder = self._decoder if options.torch_decoder else None
        return WhisperStt(self._loaded(), self.path, options, decoder, self._drafts)

    def forget_drafts(self) -> None:
        """Forget the transcripts kept as drafts, so the next audio is decoded as if new
        (measurements that transcribe the same audio twice)."""
        if self._drafts is not None:
            self._drafts.clear()

    def transcribe(self, audio_16k: np.ndarray) -> Transcript:
        """Transcribe one utterance of 16 kHz mono float32 audio (any length)."""
        return self.transcribe_detailed(audio_16k).transcript

    def transcribe_detailed(self, audio_16k: np.ndarray) -> SttResult:
        """Like :meth:`transcribe`, and also say whether and why the full window was used."""
        started = time.perf_counter()
        np = self._np
        audio = np.asarray(audio_16k, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"expected mono audio (one dimension), got shape {audio.shape}")
        audio_s = audio.shape[0] / SAMPLE_RATE_HZ
        if audio.shape[0] == 0:
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            empty = Transcript(text="", audio_s=0.0, stt_ms=elapsed_ms, no_speech_prob=1.0)
            return SttResult(transcript=empty, fallback=None, fast_attempt=None)

        fast: DecodeScores | None = None
        reason: FallbackReason | None
        if not self.options.fast_path:
            reason = FallbackReason.DISABLED
        elif _over_one_window(audio):
            reason = FallbackReason.TOO_LONG
        else:
            fast = self._decode_fast(audio)
            reason = fallback_reason(fast, self.options)
        scores = fast if reason is None and fast is not None else self._decode_full(audio)
        transcript = Transcript(
            text=capitalize_first_word(scores.text),
            audio_s=audio_s,
            stt_ms=(time.perf_counter() - started) * 1000.0,
            no_speech_prob=scores.no_speech_prob,
            avg_logprob=scores.avg_logprob,
            compression_ratio=scores.compression_ratio,
            used_full_window=reason is not None,
        )
        return SttResult(transcript=transcript, fallback=reason, fast_attempt=fast)

    def close(self) -> None:
        """Release the model's memory. The instance cannot be used afterwards."""
        model, self._model = self._model, None
        if model is not None:
            model.model.unload_model()
        holds, self._holds_decoder = self._holds_decoder, False
        self._drafts = self._decoder = None
        if holds:
            release_decoder(self.path)

    def __enter__(self) -> WhisperStt:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _loaded(self) -> Any:
        if self._model is None:
            raise RuntimeError("this WhisperStt was closed")
        return self._model

    def _decode_fast(self, audio: np.ndarray) -> DecodeScores:
        """Encode the utterance plus silence (not 30 s) and decode with a bounded length."""
        np = self._np
        model = self._loaded()
        if audio.shape[0] < _MIN_SAMPLES:
            audio = np.pad(audio, (0, _MIN_SAMPLES - audio.shape[0]))
        features = model.feature_extractor(audio)
        content_frames = features.shape[-1] - 1  # the extractor adds one frame of padding
        pad_frames = round(self.options.trailing_silence_s * SAMPLE_RATE_HZ / _HOP_SAMPLES)
        min_frames = round(self.options.min_window_s * SAMPLE_RATE_HZ / _HOP_SAMPLES)
        window = max(content_frames + pad_frames, min_frames)
        # Whole seconds: every new input length makes the encoder keep buffers for that shape,
        # and 200 calls of random 10-20 s lengths grew its memory in use by 225 MB (fixed
        # lengths: flat). On the grid there are at most 21 lengths, for up to 1 s more padding.
        window = math.ceil(window / _WINDOW_STEP_FRAMES) * _WINDOW_STEP_FRAMES
        window = min(window, _FULL_WINDOW_FRAMES)
        # Zeros in the normalised log-mel domain, as faster-whisper pads its 30 s windows.
        mel = np.zeros((1, features.shape[0], window), dtype=np.float32)
        mel[0, :, :content_frames] = features[:, :content_frames]
        encoded = model.model.encode(self._ctranslate2.StorageView.from_array(mel))

        max_new_tokens = self._token_bound(audio.shape[0] / SAMPLE_RATE_HZ)
        if self._decoder is not None and self._drafts is not None:
            return self._decode_drafted(audio, encoded, max_new_tokens)
        result = model.model.generate(
            encoded,
            [self._prompt],
            beam_size=self.options.beam_size,
            max_length=_max_length_for(max_new_tokens, len(self._prompt)),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress_tokens,
        )[0]
        tokens = result.sequences_ids[0]
        text = self._tokenizer.decode(tokens).strip()
        # The score is the mean log-probability over the tokens; Whisper counts the end token.
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        return DecodeScores(
            text=text,
            avg_logprob=avg_logprob,
            no_speech_prob=result.no_speech_prob,
            compression_ratio=compression_ratio(text),
            hit_token_limit=len(tokens) >= max_new_tokens,
        )

    def _decode_drafted(self, audio: np.ndarray, encoded: Any, max_new_tokens: int) -> DecodeScores:
        """The fast path's decode on the torch decoder, drafted by an earlier transcript."""
        assert self._drafts is not None
        out = self._decode_tokens(self._np.asarray(encoded), max_new_tokens, self._drafts.draft_for(audio))
        self._drafts.remember(audio, out.tokens)
        text = self._tokenizer.decode(out.tokens).strip()
        return DecodeScores(
            text=text,
            avg_logprob=out.sum_logprob / (len(out.tokens) + 1),
            no_speech_prob=out.no_speech_prob,
            compression_ratio=compression_ratio(text),
            hit_token_limit=len(out.tokens) >= max_new_tokens,
            drafted_tokens=out.drafted,
        )

    def _decode_tokens(self, encoder_output: Any, max_new_tokens: int, draft: list[int]) -> DecoderOutput:
        """The torch decoder's greedy decode of an encoder output, with this model's prompt
        and suppression rules."""
        assert self._decoder is not None
        tokenizer = self._tokenizer
        return self._decoder.decode(
            encoder_output,
            self._prompt,
            max_new_tokens,
            end_token=tokenizer.eot,
            suppress=self._suppress_tokens,
            suppress_first=self._suppress_first,
            no_speech_token=tokenizer.no_speech,
            draft=draft,
        )

    def _decode_full(self, audio: np.ndarray) -> DecodeScores:
        """faster-whisper's own transcribe(): 30 s windows, no sampling, any length."""
        if not _over_one_window(audio):
            # Timestamps cost about two tokens per segment on top of the text, hence 1.5x.
            bound = self._token_bound(audio.shape[0] / SAMPLE_RATE_HZ, factor=1.5)
            prompt_length = len(self._tokenizer.sot_sequence)
            # faster-whisper passes len(prompt) + max_new_tokens on as CTranslate2's max_length.
            max_new_tokens = _max_length_for(bound, prompt_length) - prompt_length
            return self._transcribe_windows(audio, self.options.beam_size, False, max_new_tokens)
        # CTranslate2 already caps each window's text at 224 tokens, the bound of a full
        # window; and with the last window's text in the prompt, the prompt's length plus a
        # max_new_tokens would pass the model's 448 (a ValueError). So no bound here.
        condition = self.options.long_condition_on_previous_text
        scores = self._transcribe_windows(audio, self.options.long_beam_size, condition, None)
        if scores.compression_ratio <= self.options.compression_ratio_above:
            return scores
        # A window looped. The beam loops where greedy decoding does not (on music: "Thank
        # you so much for watching ... see you in the next video, see you in the" at a mean
        # log-probability of -0.12, where greedy gave "."), and a prompted window passes its
        # loop on to the next. So again greedy, each window alone (faster-whisper's default
        # resets the prompt and samples instead, at random).
        return self._transcribe_windows(audio, self.options.beam_size, False, None)

    def _transcribe_windows(
        self, audio: np.ndarray, beam_size: int, condition: bool, max_new_tokens: int | None
    ) -> DecodeScores:
        segments, _info = self._loaded().transcribe(
            audio,
            language="en",
            beam_size=beam_size,
            condition_on_previous_text=condition,
            # No temperature fallback: it samples at random, so the same audio (noise above
            # all) could give a different transcript on each run.
            temperature=0.0,
            max_new_tokens=max_new_tokens,
            vad_filter=False,
        )
        texts: list[str] = []
        token_count = 0
        logprob_sum = no_speech_sum = 0.0
        worst_ratio = 1.0
        for segment in segments:  # lazy: this loop is where the decoding happens
            weight = len(segment.tokens) + 1
            texts.append(segment.text.strip())
            token_count += weight
            logprob_sum += segment.avg_logprob * weight
            no_speech_sum += segment.no_speech_prob * weight
            worst_ratio = max(worst_ratio, segment.compression_ratio)
        text = " ".join(t for t in texts if t)
        if token_count == 0:
            # faster-whisper skipped every window as silence (or decoded nothing).
            return DecodeScores(text="", avg_logprob=0.0, no_speech_prob=1.0, compression_ratio=1.0)
        return DecodeScores(
            text=text,
            avg_logprob=logprob_sum / token_count,
            no_speech_prob=no_speech_sum / token_count,
            compression_ratio=worst_ratio,
        )

    def _token_bound(self, audio_s: float, factor: float = 1.0) -> int:
        """Most text tokens an utterance of ``audio_s`` seconds can plausibly need."""
        bound = math.ceil(factor * self.options.max_tokens_per_s * audio_s)
        return min(bound + self.options.extra_tokens, _MAX_DECODER_TOKENS // 2 - 1)

    def _warm_up(self, speech: np.ndarray | None) -> None:
        """Decode once at load, so the first utterances do not pay for allocations.

        With ``speech``, on both paths: the full window's buffers (30 s of encoder input, a
        decoder attending over 1500 positions) are the largest Whisper ever needs, and the
        heap they leave behind otherwise appeared during the conversation, at the first
        fallback (+10 to +24 MB in one step, measured). ~0.5 s more at load.
        """
        if speech is None:
            self._decode_fast(self._np.zeros(SAMPLE_RATE_HZ // 2, dtype=self._np.float32))
            return
        self._decode_fast(speech)
        self._decode_full(speech)


def _thread_lock_for_progress_bars() -> None:
    """faster-whisper's transcribe() makes a (disabled) tqdm bar, and tqdm's first bar creates
    a multiprocessing lock: a semaphore file in /dev/shm. A thread lock is all it needs here,
    and the product then writes no file but the ones asked for."""
    import threading

    require("tqdm").tqdm.set_lock(threading.RLock())


def _over_one_window(audio: np.ndarray) -> bool:
    """Whether the audio is longer than Whisper's 30 s window."""
    return audio.shape[0] > WINDOW_SAMPLES


def _max_length_for(max_new_tokens: int, prompt_length: int) -> int:
    """CTranslate2's ``max_length`` that lets Whisper emit exactly ``max_new_tokens`` tokens.

    CTranslate2 caps the text at ``min(max_length // 2, max_length - (prompt_length - 1))``
    tokens (src/models/whisper.cc), not at ``max_length - prompt_length``.
    """
    return min(_MAX_DECODER_TOKENS, max(2 * max_new_tokens, max_new_tokens + prompt_length - 1))


def _check_folder(path: Path) -> None:
    """Refuse what is plainly not a CTranslate2 Whisper folder before CTranslate2 sees it."""
    if not path.exists():
        raise ModelError(f"the speech-to-text model {path} does not exist.", fix=_FIX)
    if not path.is_dir():
        raise ModelError(
            f"{path} is a file, not a CTranslate2 Whisper model folder (with model.bin).",
            fix=_FIX,
        )
    missing = [name for name in ("model.bin", "tokenizer.json") if not (path / name).is_file()]
    if missing:
        raise ModelError(
            f"{path} is not a CTranslate2 Whisper model folder: {', '.join(missing)} missing.",
            fix=_FIX,
        )
