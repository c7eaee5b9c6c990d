"""Lazy imports of heavy libraries, with a one-line hint when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from voiceagent.errors import DependencyError

_PIP_NAMES = {
    "onnxruntime": "onnxruntime",
    "faster_whisper": "faster-whisper",
    "ctranslate2": "ctranslate2",
    "llama_cpp": "llama-cpp-python",
    "piper": "piper-tts",
    "numpy": "numpy",
}


def require(module: str) -> ModuleType:
    """Import ``module`` or raise a DependencyError naming the package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = _PIP_NAMES.get(module.split(".")[0], module)
        raise DependencyError(
            f"the Python package {package} is not installed or fails to import ({exc}).",
            fix=f"run `make talk` or `pip install {package}`.",
        ) from None
