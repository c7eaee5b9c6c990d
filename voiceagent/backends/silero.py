"""Silero VAD through its ONNX model on onnxruntime (~0.4 ms per 32 ms frame on one thread).

The TorchScript model costs 3-7 ms per frame, so torch is never loaded for voice detection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from voiceagent.backends._imports import require
from voiceagent.backends._onnx import open_onnx_session
from voiceagent.errors import ModelError

FRAME_SAMPLES = 512
_CONTEXT_SAMPLES = 64  # Silero v5+ looks at the last 64 samples of the previous frame
_RATE_HZ = 16000


class SileroVad:
    """Speech probability for each 512-sample frame of 16 kHz mono audio. Not thread-safe:
    one instance per audio stream."""

    def __init__(self, session: Any, path: Path) -> None:
        self._session = session
        self.path = path
        np = require("numpy")
        self._np = np
        self._rate = np.array(_RATE_HZ, dtype=np.int64)
        self.reset()

    @classmethod
    def load(cls, path: Path, threads: int = 1) -> SileroVad:
        session = open_onnx_session(
            path,
            threads,
            "the VAD model",
            "run `voiceagent models verify` and `voiceagent models pull silero-vad`.",
        )
        names = {i.name for i in session.get_inputs()}
        if not {"input", "state", "sr"} <= names:
            raise ModelError(
                f"{path} is not a Silero VAD v5/v6 ONNX model.",
                fix="use the silero-vad model from `voiceagent models pull silero-vad`.",
            )
        return cls(session, path)

    def reset(self) -> None:
        np = self._np
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, _CONTEXT_SAMPLES), dtype=np.float32)

    def probability(self, frame: Any) -> float:
        """Speech probability of one frame (512 float32 samples at 16 kHz)."""
        np = self._np
        samples = np.asarray(frame, dtype=np.float32).reshape(1, -1)
        if samples.shape[1] != FRAME_SAMPLES:
            raise ValueError(f"Silero VAD takes {FRAME_SAMPLES}-sample frames")
        x = np.concatenate([self._context, samples], axis=1)
        out, self._state = self._session.run(
            None, {"input": x, "state": self._state, "sr": self._rate}
        )
        self._context = x[:, -_CONTEXT_SAMPLES:]
        return float(out[0][0])

    def close(self) -> None:
        self._session = None
