"""Text to speech with a Piper voice (piper-tts) on onnxruntime.

We build the onnxruntime session ourselves (the way ``PiperVoice.load`` does) so the number of
intra-op threads is explicit: Piper's own loader leaves it to onnxruntime, which takes every core
and fights the language model for them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from voiceagent.backends._imports import require
from voiceagent.backends._onnx import open_onnx_session
from voiceagent.errors import ModelError

_PIPER_INPUTS = {"input", "input_lengths", "scales"}
# onnxruntime run option: at the end of the run, free the arena's regions no tensor uses.
_SHRINK_ARENA = "memory.enable_memory_arena_shrinkage"
_FIX_VOICE = (
    "pass a Piper voice (.onnx with its .onnx.json beside it), or run "
    "`voiceagent models pull piper-en_US-joe-medium`."
)


class PiperTts:
    """A Piper voice. ``synthesize`` yields one float32 chunk per sentence.

    Not thread-safe: use it from one worker thread.
    """

    def __init__(self, voice: Any, path: Path) -> None:
        self._voice = voice
        self.path = path
        self.sample_rate_hz: int = int(voice.config.sample_rate)
        self._np = require("numpy")

    @classmethod
    def load(cls, path: Path, threads: int = 1, *, warm_up: bool = True) -> PiperTts:
        """Load a voice; with ``warm_up``, synthesize one word so the first reply is not slow."""
        path = Path(path)
        config = _read_config(path)
        piper = require("piper")
        try:
            piper_config = piper.PiperConfig.from_dict(config)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                f"{_config_path(path)} is not a Piper voice config (bad or missing {exc}).",
                fix=_FIX_VOICE,
            ) from None
        session = open_onnx_session(path, threads, "the voice", _FIX_VOICE)
        names = {i.name for i in session.get_inputs()}
        if not _PIPER_INPUTS <= names:
            raise ModelError(
                f"{path} is an ONNX model but not a Piper voice "
                f"(inputs: {', '.join(sorted(names))}).",
                fix=_FIX_VOICE,
            )
        tts = cls(piper.PiperVoice(session=session, config=piper_config), path)
        if warm_up:
            try:
                tts.warm_up()
            except Exception as exc:  # a voice that loads but cannot run is a broken voice
                raise ModelError(
                    f"the voice {path} loads but fails to synthesize ({type(exc).__name__}: "
                    f"{exc}).",
                    fix=_FIX_VOICE,
                ) from None
        return tts

    @property
    def threads(self) -> int:
        """onnxruntime intra-op threads of this voice's session."""
        return int(self._voice.session.get_session_options().intra_op_num_threads)

    def warm_up(self) -> None:
        """Run the phonemizer and the model once: their first call is several times slower."""
        for _ in self.synthesize("Hi."):
            pass

    def synthesize(self, text: str) -> Iterator[Any]:
        """Yield float32 mono chunks at ``sample_rate_hz``, one per sentence of ``text``.

        Empty or blank text yields nothing.
        """
        if self._voice is None:
            raise RuntimeError("the voice is closed")
        if not text.strip():
            return
        np = self._np
        for chunk in self._voice.synthesize(text):
            audio = np.asarray(chunk.audio_float_array, dtype=np.float32).reshape(-1)
            if audio.size:
                yield audio

    def release_memory(self) -> None:
        """Give back the memory the last sentences needed: call it between replies.

        onnxruntime's arena keeps every block it ever took, and what a sentence needs grows with
        its length (~23 MB per second of audio: ~300 MB for a 40-word sentence), so resident
        memory climbed in steps whenever a reply held a longer sentence than any before. A run
        on a near-empty input with arena shrinkage frees the blocks; the next reply's first
        chunk takes its few back (~7 ms here).
        """
        if self._voice is None:
            return
        ort = require("onnxruntime")
        options = ort.RunOptions()
        options.add_run_config_entry(_SHRINK_ARENA, "cpu:0")
        self._voice.session.run(None, self._pause_feeds(), options)

    def _pause_feeds(self) -> dict[str, Any]:
        """Inputs for the shortest utterance: start, one pause, end."""
        np = self._np
        config = self._voice.config
        ids = [i for symbol in "^_$" for i in config.phoneme_id_map[symbol]]
        scales = [config.noise_scale, config.length_scale, config.noise_w_scale]
        feeds = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array(scales, dtype=np.float32),
        }
        if config.num_speakers > 1:
            feeds["sid"] = np.array([config.default_speaker_id], dtype=np.int64)
        return feeds

    def close(self) -> None:
        self._voice = None

    def __enter__(self) -> PiperTts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _config_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _read_config(path: Path) -> dict[str, Any]:
    """Check the voice file and return its JSON config, with a clear error for each mistake."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except FileNotFoundError:
        raise ModelError(f"voice file {path} does not exist.", fix=_FIX_VOICE) from None
    except OSError as exc:
        raise ModelError(f"cannot read {path} ({exc.strerror or exc}).", fix=_FIX_VOICE) from None
    if head.startswith(b"GGUF"):
        raise ModelError(f"{path} is a GGUF language model, not a Piper voice.", fix=_FIX_VOICE)
    if head.lstrip().lower().startswith((b"<!doctype", b"<html")):
        raise ModelError(
            f"{path} is an HTML page, not a Piper voice (a failed download?).", fix=_FIX_VOICE
        )
    config_path = _config_path(path)
    if not config_path.is_file():
        raise ModelError(
            f"the voice {path} has no config: {config_path.name} is missing beside it.",
            fix="put the voice's .onnx.json next to the .onnx file (same name + .json).",
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(
            f"cannot read the voice config {config_path} ({exc}).", fix=_FIX_VOICE
        ) from None
    if not isinstance(config, dict):
        raise ModelError(f"{config_path} is not a Piper voice config.", fix=_FIX_VOICE)
    return config
