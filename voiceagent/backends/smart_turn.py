"""Smart Turn v3.2 (BSD-2): a model-based end-of-turn detector on the last 8 s of a turn.

It hears prosody the transcript cannot show: a falling "...today." versus a hanging
"...the, um". Its answer is a hint layered on the silence policy, never a replacement.
Input: Whisper-style 80-bin log-mel features of the last 8 s (zero-padded in front),
computed from a waveform normalised to zero mean and unit variance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from voiceagent.backends._imports import require
from voiceagent.backends._onnx import open_onnx_session
from voiceagent.errors import ModelError

WINDOW_SAMPLES = 8 * 16000


class SmartTurn:
    def __init__(self, session: Any, features: Any) -> None:
        self._session = session
        self._features = features
        self._np = require("numpy")

    @classmethod
    def load(cls, path: Path, threads: int = 1) -> SmartTurn:
        feature_extractor = require("faster_whisper.feature_extractor")
        session = open_onnx_session(
            path, threads, "the turn model", "run `voiceagent models pull smart-turn-v3.2`."
        )
        if [i.name for i in session.get_inputs()] != ["input_features"]:
            raise ModelError(
                f"{path} is not a Smart Turn v3 model.",
                fix="use `voiceagent models pull smart-turn-v3.2`.",
            )
        turn = cls(session, feature_extractor.FeatureExtractor(feature_size=80))
        turn.warm_up()
        return turn

    def warm_up(self) -> None:
        """Run the model twice on silence, as every later call does on 8 s of audio.

        onnxruntime's arena grew on the first two calls (+38 MB here) and never after, so
        without this the first pauses of a conversation paid for those allocations and resident
        memory climbed during the first turns instead of at load.
        """
        silence = self._np.zeros(WINDOW_SAMPLES, dtype=self._np.float32)
        for _ in range(2):
            self.end_probability(silence)

    def end_probability(self, audio_16k: Any) -> float:
        """Probability (0-1) that the speaker has finished, from the turn's audio so far."""
        np = self._np
        audio = np.asarray(audio_16k, dtype=np.float32)[-WINDOW_SAMPLES:]
        if audio.size < WINDOW_SAMPLES:
            audio = np.pad(audio, (WINDOW_SAMPLES - audio.size, 0))
        audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
        features = self._features(audio, padding=0)[:, :800].astype(np.float32)
        output = self._session.run(None, {"input_features": features[np.newaxis]})[0]
        return float(np.clip(np.asarray(output).reshape(-1)[0], 0.0, 1.0))

    def close(self) -> None:
        self._session = None
