"""One way to open an ONNX model for every onnxruntime backend (Silero, Piper, Smart Turn)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from voiceagent.backends._imports import require
from voiceagent.errors import ModelError


def open_onnx_session(path: Path, threads: int, what: str, fix: str) -> Any:
    """An onnxruntime CPU session with explicit thread counts and quiet logs.

    With more than one thread the threads sleep rather than spin between operators: the
    session shares two cores with the LLM, and spinning threads took the LLM's core (Piper on
    two spinning threads next to a generating LLM: 126-210 ms per chunk, against 70-120 ms
    without spinning).

    Any load failure (not ONNX, truncated, corrupt) becomes one ModelError naming ``what``.
    """
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if threads > 1:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(
            f"cannot load {what} {path}: not a valid ONNX model "
            f"({type(exc).__name__}; truncated or corrupt?).",
            fix=fix,
        ) from None
